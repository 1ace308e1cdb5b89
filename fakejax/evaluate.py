r"""Standalone evaluation of a workdir's checkpoints, without training.

  python -m fakejax.evaluate --workdir=runs/dcgan_fmnist             # latest checkpoints
  python -m fakejax.evaluate --workdir=runs/dcgan_fmnist --steps=all # every kept checkpoint

The config is the workdir's own `config.json` unless --config is given.
"""

import pathlib

from absl import app, flags, logging
from ml_collections import config_flags

from fakejax import runtime


FLAGS = flags.FLAGS
runtime.define_runtime_flags()
config_flags.DEFINE_config_file('config', None, 'Config file (default: <workdir>/config.json).',
                                lock_config=True)
flags.DEFINE_string('workdir', None, 'A workdir written by fakejax.main.', required=True)
flags.DEFINE_string('steps', 'latest', "'latest', 'all', or comma-separated checkpoint steps.")


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  from fakejax import experiment, sharding  # pylint: disable=g-import-not-at-top
  runtime.setup(FLAGS)
  from fakejax.config import validate_config  # pylint: disable=g-import-not-at-top
  from fakejax.evaluation import evaluator  # pylint: disable=g-import-not-at-top
  from fakejax.models import GAN_ARCHITECTURES  # pylint: disable=g-import-not-at-top
  workdir = pathlib.Path(FLAGS.workdir)
  try:
    config = FLAGS.config if FLAGS.config is not None else evaluator.workdir_config(workdir)
  except FileNotFoundError as error:
    raise app.UsageError(f'{error} Pass --config otherwise.') from None
  mesh = sharding.build_mesh()
  validate_config(config, num_devices=mesh.size, architectures=GAN_ARCHITECTURES)
  if config.experiment != 'dcgan_detectors':
    raise app.UsageError(
        f'{workdir} holds the {config.experiment} study, whose detectors fakejax.main '
        'evaluates: run its command again (finished training is not repeated).')
  reports = evaluator.evaluate_workdir(config, workdir, FLAGS.steps, mesh=mesh)
  experiment.write_reports(config, workdir, reports)
  runtime.leave_distributed()
  logging.info('Evaluated %s.', {name: [r['step'] for r in rs] for name, rs in reports.items()})


if __name__ == '__main__':
  app.run(main)
