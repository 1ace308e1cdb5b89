"""Process setup shared by the entry points: XLA flags, quiet library logs and failed-read
echoes, TensorFlow off accelerators."""

import functools
import os
import pathlib
import sys

from absl import flags, logging


DEFAULT_COMPILATION_CACHE_DIR = '~/.cache/fakejax/xla'
# JAX's own variable for the least compile time of a stored program.
MIN_CACHED_COMPILE_SECS_ENV = 'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'
YNN_FUSION_FLAG = '--xla_cpu_experimental_ynn_fusion_type'


def use_eigen_cpu_convolutions() -> None:
  """Leaves XLA:CPU convolutions to Eigen instead of YNNPACK (dots stay with YNNPACK).

  On the 2-core AVX-512 CPUs this project is measured on, YNNPACK's convolutions made
  the DCGAN train steps 1.4-1.6x slower. XLA reads XLA_FLAGS when JAX creates its CPU
  backend, so this runs when `fakejax` is imported. A YNNPACK choice already in XLA_FLAGS
  is kept; other backends ignore the flag.
  """
  xla_flags = os.environ.get('XLA_FLAGS', '')
  if YNN_FUSION_FLAG not in xla_flags:
    os.environ['XLA_FLAGS'] = f'{xla_flags} {YNN_FUSION_FLAG}=-individual_convolution'.strip()


class _QuietLibraryInfo(logging.logging.Filter):
  """Drops INFO lines of Orbax (dozens per checkpoint) so progress lines stay readable."""

  def filter(self, record) -> bool:
    return record.levelno > logging.logging.INFO or '/orbax/' not in record.pathname


def without_abandoned_checkpoint_reads(previous_hook):
  """`sys.unraisablehook` that drops the echoes of a checkpoint read that failed.

  When one of Orbax's concurrent array reads fails, it closes its event loop with the other
  reads in flight. Those fail in turn, as unraisable exceptions printed with tracebacks at
  random moments (garbage collection, exit), after the error naming the damaged checkpoint
  has been reported. They say nothing more; every other unraisable goes to `previous_hook`.
  """
  def hook(unraisable) -> None:
    if not _is_abandoned_checkpoint_read(unraisable):
      previous_hook(unraisable)
  hook.drops_abandoned_checkpoint_reads = True  # So that it is installed once.
  return hook


def drop_abandoned_checkpoint_reads() -> None:
  """Installs `without_abandoned_checkpoint_reads` once per process."""
  if not getattr(sys.unraisablehook, 'drops_abandoned_checkpoint_reads', False):
    sys.unraisablehook = without_abandoned_checkpoint_reads(sys.unraisablehook)


def _is_abandoned_checkpoint_read(unraisable) -> bool:
  error = unraisable.exc_value
  if isinstance(error, RuntimeError) and str(error) == 'Event loop is closed':
    return True  # A read finishing after its loop was closed.
  coroutine_code = getattr(unraisable.object, 'cr_code', None)
  return coroutine_code is not None and '/orbax/' in coroutine_code.co_filename


@functools.cache  # Once: TensorFlow refuses to change devices after its first use.
def hide_accelerators_from_tensorflow() -> None:
  """TensorFlow is only here for TensorBoard files: keep it off GPUs and TPUs.

  Called where TensorFlow is first needed (the TensorBoard writer), before it touches a
  device; commands that write no TensorBoard files never import it.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], 'GPU')
  tf.config.set_visible_devices([], 'TPU')


def enable_compilation_cache(cache_dir: str) -> None:
  """Keeps compiled XLA programs on disk: a resumed or repeated run skips recompiling."""
  if not cache_dir:
    return
  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update('jax_compilation_cache_dir', os.path.expanduser(cache_dir))
  # Programs that compile in under 0.5 s are not stored, unless the environment says
  # otherwise (the tests store all: their many small programs then load in each process).
  if MIN_CACHED_COMPILE_SECS_ENV not in os.environ:
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)


def initialize_distributed(coordinator_address: str, num_processes: int, process_id: int) -> None:
  """Joins the processes of a multi-host run into one JAX runtime.

  With no arguments JAX finds its peers itself on Cloud TPU VMs and under SLURM or Open
  MPI; elsewhere (and for tests on one machine) pass all three. On CPUs, cross-process
  collectives go through gloo.
  """
  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(
      coordinator_address=coordinator_address or None,
      num_processes=num_processes if num_processes > 0 else None,
      process_id=process_id if process_id >= 0 else None)
  logging.info('Joined a run of %d processes as process %d: %d local of %d devices.',
               jax.process_count(), jax.process_index(), jax.local_device_count(),
               jax.device_count())


def leave_distributed() -> None:
  """Leaves a multi-host run once this process's work is done (no-op otherwise).

  JAX would leave at interpreter exit, while other libraries' threads are being torn
  down; there the coordinator's service can abort the process after all work is saved.
  Leaving explicitly, with the process whole, keeps the exit status clean.
  """
  import jax  # pylint: disable=g-import-not-at-top
  if jax.distributed.is_initialized():
    jax.distributed.shutdown()


def setup(flags) -> None:
  """Logging, the compilation cache and (if asked) the multi-host runtime.

  Args:
    flags: the parsed absl flags, holding those of `define_runtime_flags`.
  """
  logging.get_absl_handler().addFilter(_QuietLibraryInfo())
  enable_compilation_cache(flags.compilation_cache_dir)
  if flags.multihost or flags.coordinator_address:
    initialize_distributed(flags.coordinator_address, flags.num_processes, flags.process_id)


def define_runtime_flags() -> None:
  """The flags every entry point shares."""
  flags.DEFINE_string('compilation_cache_dir', DEFAULT_COMPILATION_CACHE_DIR,
                      "Where compiled XLA programs are kept between runs ('' to disable).")
  flags.DEFINE_bool('multihost', False,
                    'Initialise jax.distributed (peers found automatically on Cloud TPU VMs, '
                    'SLURM, Open MPI).')
  flags.DEFINE_string('coordinator_address', '',
                      'host:port of process 0, for multi-host runs outside TPU VMs/SLURM.')
  flags.DEFINE_integer('num_processes', 0, 'Processes of a multi-host run (with --coordinator_address).')
  flags.DEFINE_integer('process_id', -1, 'This process index (with --coordinator_address).')


def cpu_description(cpuinfo: str = '/proc/cpuinfo') -> str:
  """This CPU as /proc/cpuinfo names it: model, family and model numbers, vector units.

  Speed figures depend on it: this project's machines have changed CPU kind.
  """
  try:
    first_core = pathlib.Path(cpuinfo).read_text().split('\n\n')[0]
  except OSError:
    return 'cpu'
  info = {key.strip(): value.strip() for key, value in
          (line.split(':', 1) for line in first_core.splitlines() if ':' in line)}
  flags = set(info.get('flags', '').split())
  vectors = 'AVX-512' if 'avx512f' in flags else 'AVX2' if 'avx2' in flags else 'no AVX2'
  return (f"{info.get('model name', 'cpu')} (family {info.get('cpu family', '?')}, model "
          f"{info.get('model', '?')}; {vectors}; {os.cpu_count()} cores)")


def device_description(device) -> str:
  """A JAX device for speed reports: the CPU's model, or the accelerator's kind."""
  return cpu_description() if device.platform == 'cpu' else device.device_kind
