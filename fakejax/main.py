r"""Entry point: flags -> config -> the study its `experiment` key names.

  python -m fakejax.main --config=configs/dcgan_fmnist.py --workdir=runs/dcgan_fmnist
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from fakejax import errors, runtime
from fakejax.workdir import Workdir

FLAGS = flags.FLAGS
runtime.define_runtime_flags()
config_flags.DEFINE_config_file('config', None, 'Experiment config file.', lock_config=True)
flags.DEFINE_string('workdir', None, 'Where checkpoints, TensorBoard files and reports go.')
flags.mark_flags_as_required(['config', 'workdir'])

# 128 + SIGTERM, as if killed by it: schedulers see an unfinished run and may requeue it.
PREEMPTED_EXIT_CODE = 143


@errors.exit_on_user_error
def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  runtime.setup(FLAGS)
  # Imported after the runtime flags took effect (XLA reads its flags once).
  import jax  # pylint: disable=g-import-not-at-top
  from fakejax import studies  # pylint: disable=g-import-not-at-top
  from fakejax.studies import common  # pylint: disable=g-import-not-at-top
  from fakejax.train import loop  # pylint: disable=g-import-not-at-top
  logging.info('Config:\n%s', FLAGS.config)
  studies.validate(FLAGS.config, num_devices=jax.device_count())
  workdir = Workdir(FLAGS.workdir)
  try:
    with common.timed_stage(workdir, 'total'):
      studies.study_of(FLAGS.config).run(FLAGS.config, FLAGS.workdir)
  except loop.Preempted as preempted:
    logging.warning('%s', preempted)
    runtime.leave_distributed()
    sys.exit(PREEMPTED_EXIT_CODE)
  if jax.process_index() == 0:
    logging.info('Wall time in %s, summed over its invocations: %s', FLAGS.workdir,
                 common.timing_summary(workdir))
  runtime.leave_distributed()


if __name__ == '__main__':
  app.run(main)
