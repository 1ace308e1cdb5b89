r"""Standalone evaluation of a workdir's checkpoints, without training.

  python -m fakejax.evaluate --workdir=runs/dcgan_fmnist             # latest checkpoints
  python -m fakejax.evaluate --workdir=runs/dcgan_fmnist --steps=all # every kept checkpoint

The config is the workdir's own `config.json` unless --config is given.
"""

import json
import pathlib

import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags


FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Config file (default: <workdir>/config.json).',
                                lock_config=True)
flags.DEFINE_string('compilation_cache_dir', '~/.cache/fakejax/xla',
                    "Where compiled XLA programs are kept between runs ('' to disable).")
flags.DEFINE_string('workdir', None, 'A workdir written by fakejax.main.', required=True)
flags.DEFINE_string('steps', 'latest', "'latest', 'all', or comma-separated checkpoint steps.")


def workdir_config(workdir: pathlib.Path) -> ml_collections.ConfigDict:
  path = workdir / 'config.json'
  if not path.is_file():
    raise app.UsageError(f'{path} does not exist: is {workdir} a workdir of fakejax.main? '
                         'Pass --config otherwise.')
  return ml_collections.ConfigDict(json.loads(path.read_text()))


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  from fakejax import experiment, runtime, sharding  # pylint: disable=g-import-not-at-top
  runtime.setup(FLAGS.compilation_cache_dir)
  from fakejax.config import validate_config  # pylint: disable=g-import-not-at-top
  from fakejax.evaluation import evaluator  # pylint: disable=g-import-not-at-top
  from fakejax.models import GAN_ARCHITECTURES  # pylint: disable=g-import-not-at-top
  workdir = pathlib.Path(FLAGS.workdir)
  config = FLAGS.config if FLAGS.config is not None else workdir_config(workdir)
  mesh = sharding.build_mesh()
  validate_config(config, num_devices=mesh.size, architectures=GAN_ARCHITECTURES)
  reports = evaluator.evaluate_workdir(config, workdir, FLAGS.steps, mesh=mesh)
  experiment.write_reports(config, workdir, reports)
  logging.info('Evaluated %s.', {name: [r['step'] for r in rs] for name, rs in reports.items()})


if __name__ == '__main__':
  app.run(main)
