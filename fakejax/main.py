r"""Entry point: flags -> config -> the study (train every GAN, then evaluate).

  python -m fakejax.main --config=configs/dcgan_fmnist.py --workdir=runs/dcgan_fmnist
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from fakejax import runtime

FLAGS = flags.FLAGS
runtime.define_runtime_flags()
config_flags.DEFINE_config_file('config', None, 'Experiment config file.', lock_config=True)
flags.DEFINE_string('workdir', None, 'Where checkpoints, TensorBoard files and reports go.')
flags.mark_flags_as_required(['config', 'workdir'])

# 128 + SIGTERM, as if killed by it: schedulers see an unfinished run and may requeue it.
PREEMPTED_EXIT_CODE = 143


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  from fakejax import experiment  # pylint: disable=g-import-not-at-top
  from fakejax.train import loop  # pylint: disable=g-import-not-at-top
  runtime.setup(FLAGS)
  logging.info('Config:\n%s', FLAGS.config)
  try:
    experiment.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except loop.Preempted as preempted:
    logging.warning('%s', preempted)
    sys.exit(PREEMPTED_EXIT_CODE)


if __name__ == '__main__':
  app.run(main)
