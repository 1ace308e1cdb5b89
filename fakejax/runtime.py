"""Process setup shared by the entry points: quiet library logs, TensorFlow off accelerators."""

import os

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


def enable_compilation_cache(cache_dir: str) -> None:
  """Keeps compiled XLA programs on disk: a resumed or repeated run skips recompiling."""
  if not cache_dir:
    return
  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update('jax_compilation_cache_dir', os.path.expanduser(cache_dir))
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)


def setup(compilation_cache_dir: str = '') -> None:
  logging.get_absl_handler().addFilter(_QuietLibraryInfo())
  hide_accelerators_from_tensorflow()
  enable_compilation_cache(compilation_cache_dir)
