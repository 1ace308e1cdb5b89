r"""Standalone evaluation of a workdir's checkpoints, without training, for every study.

  python -m fakejax.evaluate --workdir=runs/dcgan_fmnist             # latest checkpoints
  python -m fakejax.evaluate --workdir=runs/dcgan_fmnist --steps=all # every kept checkpoint
  python -m fakejax.evaluate --workdir=runs/detectors_fmnist         # classifiers too

Every detector of the workdir is scored and its reports (and the study's tables) are
written again, by the same code as at the end of training. The config is the workdir's
own `config.json` unless --config is given.
"""

from absl import app, flags, logging
from ml_collections import config_flags

from fakejax import errors, runtime

FLAGS = flags.FLAGS
runtime.define_runtime_flags()
config_flags.DEFINE_config_file('config', None, 'Config file (default: <workdir>/config.json).',
                                lock_config=True)
flags.DEFINE_string('workdir', None, 'A workdir written by fakejax.main.', required=True)
flags.DEFINE_string('steps', 'latest', "'latest', 'all', or comma-separated checkpoint steps.")


@errors.exit_on_user_error
def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  runtime.setup(FLAGS)
  # Imported after the runtime flags took effect (XLA reads its flags once).
  from fakejax import sharding, studies  # pylint: disable=g-import-not-at-top
  from fakejax.evaluation import restore  # pylint: disable=g-import-not-at-top
  from fakejax.workdir import Workdir  # pylint: disable=g-import-not-at-top
  workdir = Workdir(FLAGS.workdir)
  config = FLAGS.config if FLAGS.config is not None else restore.workdir_config(workdir)
  mesh = sharding.build_mesh()
  studies.validate(config, num_devices=mesh.size)
  results = studies.study_of(config).evaluate(config, workdir, FLAGS.steps, mesh)
  runtime.leave_distributed()
  logging.info('Evaluated the %s study in %s: %s.', config.experiment, workdir.root,
               sorted(results))


if __name__ == '__main__':
  app.run(main)
