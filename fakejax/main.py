r"""Entry point: flags -> config -> the study.

  python -m fakejax.main --config=configs/dcgan_fmnist.py --workdir=runs/dcgan_fmnist
"""

from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Experiment config file.', lock_config=True)
flags.DEFINE_string('workdir', None, 'Where checkpoints, TensorBoard files and reports go.')
flags.mark_flags_as_required(['config', 'workdir'])


def hide_accelerators_from_tensorflow() -> None:
  """TensorFlow is only here for TensorBoard files: keep it off GPUs and TPUs."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], 'GPU')
  tf.config.set_visible_devices([], 'TPU')


class _QuietLibraryInfo(logging.logging.Filter):
  """Drops INFO lines of Orbax (dozens per checkpoint) so progress lines stay readable."""

  def filter(self, record) -> bool:
    return record.levelno > logging.logging.INFO or '/orbax/' not in record.pathname


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  logging.get_absl_handler().addFilter(_QuietLibraryInfo())
  hide_accelerators_from_tensorflow()
  from fakejax import experiment  # pylint: disable=g-import-not-at-top
  logging.info('Config:\n%s', FLAGS.config)
  experiment.train_and_evaluate(FLAGS.config, FLAGS.workdir)


if __name__ == '__main__':
  app.run(main)
