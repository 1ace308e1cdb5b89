"""Process setup shared by the entry points: quiet library logs, TensorFlow off accelerators."""

from absl import logging


class _QuietLibraryInfo(logging.logging.Filter):
  """Drops INFO lines of Orbax (dozens per checkpoint) so progress lines stay readable."""

  def filter(self, record) -> bool:
    return record.levelno > logging.logging.INFO or '/orbax/' not in record.pathname


def hide_accelerators_from_tensorflow() -> None:
  """TensorFlow is only here for TensorBoard files: keep it off GPUs and TPUs."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], 'GPU')
  tf.config.set_visible_devices([], 'TPU')


def setup() -> None:
  logging.get_absl_handler().addFilter(_QuietLibraryInfo())
  hide_accelerators_from_tensorflow()
