"""Process-wide settings made when `fakejax` is imported (XLA flags, the filter of failed
checkpoint reads' echoes); imports without TensorFlow; the CPU's description."""

import asyncio
import gc
import os
import subprocess
import sys

import pytest

from fakejax import runtime
from tests.conftest import REPO_ROOT

COMPILE_A_CONVOLUTION = '''
import fakejax, jax, jax.numpy as jnp
conv = jax.jit(lambda x, w: jax.lax.conv_general_dilated(
    x, w, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC')))
hlo = conv.lower(jnp.ones((64, 14, 14, 64)), jnp.ones((5, 5, 64, 128))).compile().as_text()
print('XLA_FLAGS=' + __import__('os').environ['XLA_FLAGS'])
print('ynn' if '__ynn_fusion' in hlo else 'eigen')
'''


def compiled_with(xla_flags: str | None) -> tuple[str, str]:
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  if xla_flags is not None:
    env['XLA_FLAGS'] = xla_flags
  result = subprocess.run([sys.executable, '-c', COMPILE_A_CONVOLUTION], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, check=True)
  flags_line, backend = result.stdout.strip().splitlines()[-2:]
  return flags_line.removeprefix('XLA_FLAGS='), backend


@pytest.mark.parametrize('user_flags', [None, '--xla_force_host_platform_device_count=2'])
def test_importing_fakejax_leaves_convolutions_to_eigen(user_flags):
  flags, backend = compiled_with(user_flags)
  assert '--xla_cpu_experimental_ynn_fusion_type=-individual_convolution' in flags
  assert (user_flags or '') in flags
  assert backend == 'eigen'


def test_a_users_own_ynnpack_choice_is_kept():
  own = '--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION'
  flags, backend = compiled_with(own)
  assert flags == own
  assert backend == 'ynn'  # So the check above can tell the two apart.


IMPORT_WITHOUT_TENSORFLOW = '''
import sys

class HideTensorFlow:  # As if TensorFlow were not installed.
  def find_spec(self, name, path=None, target=None):
    if name == 'tensorflow' or name.startswith('tensorflow.'):
      raise ModuleNotFoundError(f'No module named {name!r}', name=name)

sys.meta_path.insert(0, HideTensorFlow())

import importlib.util

def load_tool(name):
  spec = importlib.util.spec_from_file_location(name, f'tools/{name}.py')
  module = importlib.util.module_from_spec(spec)
  sys.modules[name] = module  # Its dataclasses look their module up.
  spec.loader.exec_module(module)
  return module

load_tool('benchmark')  # First: it imports PyTorch (where installed) before JAX.
load_tool('benchmark_layers')
from fakejax import detectors, studies
from fakejax.evaluation import discriminators, restore, scoring
from fakejax.studies import autogan, dcgan, dedicated
from fakejax.train import autoencoder_trainer, classifier_trainer, gan_trainer, loop
print('imported')
'''


def test_models_steps_and_tools_import_without_tensorflow():
  """TensorFlow serves only TensorBoard files: accelerator images without it still run the
  benchmarks and everything short of writing summaries."""
  result = subprocess.run([sys.executable, '-c', IMPORT_WITHOUT_TENSORFLOW], cwd=REPO_ROOT,
                          capture_output=True, text=True)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip().endswith('imported')


def test_speed_reports_name_the_cpu(tmp_path):
  """Model name, family and model numbers, and vector units from /proc/cpuinfo's first core."""
  from fakejax import runtime  # pylint: disable=g-import-not-at-top
  cpuinfo = tmp_path / 'cpuinfo'
  cpuinfo.write_text('processor\t: 0\nmodel name\t: AMD EPYC\ncpu family\t: 25\nmodel\t\t: 1\n'
                     'flags\t\t: fpu sse2 avx avx2 fma\n\nprocessor\t: 1\nmodel name\t: other\n')
  assert runtime.cpu_description(str(cpuinfo)).startswith('AMD EPYC (family 25, model 1; AVX2; ')
  assert runtime.cpu_description(str(tmp_path / 'absent')) == 'cpu'


def a_coroutine_failing_on_close(filename: str):
  """A started coroutine, defined in `filename`, that raises when garbage collection closes it."""
  namespace = {}
  exec(compile('async def read(wait):\n  try:\n    await wait\n  finally:\n'
               '    raise ValueError("a read that outlived its loop")\n', filename, 'exec'),
       namespace)
  coroutine = namespace['read'](asyncio.sleep(0))
  coroutine.send(None)
  return coroutine


class CallsAClosedLoopWhenDeleted:
  def __init__(self):
    self.loop = asyncio.new_event_loop()
    self.loop.close()

  def __del__(self):
    self.loop.call_soon_threadsafe(print)


def test_only_the_echoes_of_a_failed_checkpoint_read_are_dropped(monkeypatch):
  reported = []
  monkeypatch.setattr(sys, 'unraisablehook', runtime.without_abandoned_checkpoint_reads(
      lambda unraisable: reported.append(unraisable.exc_value)))
  orbax_read = a_coroutine_failing_on_close('/site-packages/orbax/checkpoint/serialization.py')
  own_coroutine = a_coroutine_failing_on_close('/work/fakejax/somewhere.py')
  late_callback = CallsAClosedLoopWhenDeleted()
  del orbax_read, own_coroutine, late_callback
  gc.collect()
  assert [str(error) for error in reported] == ['a read that outlived its loop']


def test_importing_fakejax_installs_the_filter_once():
  check = ('import sys, fakejax, fakejax.runtime as r; hook = sys.unraisablehook; '
           'r.drop_abandoned_checkpoint_reads(); '
           'print(hook.drops_abandoned_checkpoint_reads, hook is sys.unraisablehook)')
  result = subprocess.run([sys.executable, '-c', check], cwd=REPO_ROOT, capture_output=True,
                          text=True, check=True)
  assert result.stdout.split() == ['True', 'True']
