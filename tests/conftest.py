"""Shared fixtures: 2 forced CPU devices, a real Fashion-MNIST TFDS dataset, and one
trained workdir of each kind of detector, built once per test run.

The suite runs on 3 pytest-xdist workers (pyproject's addopts): the session's trained
workdirs are built by whichever worker asks first while the others wait (`shared_folder`),
so no worker trains what another already has.
"""

import contextlib
import fcntl
import gzip
import importlib.util
import os

# The tests' programs are tiny and mostly compiled once: at LLVM's cheapest optimisation
# level they compile faster (a tiny study ran in 80 s instead of 105 s on 2 cores) and
# still run fast enough. The compilation cache keys on XLA flags, so these
# programs never mix with those of real runs.
TEST_COMPILE_FLAGS = '--xla_backend_optimization_level=0'


def devices_env(count: int) -> dict[str, str]:
  """The environment of a command the tests start, with `count` CPU devices."""
  return {**os.environ,
          'XLA_FLAGS': f'--xla_force_host_platform_device_count={count} {TEST_COMPILE_FLAGS}'}


# Before JAX is imported anywhere: 2 CPU devices, so sharded code is exercised, as in the
# commands the tests start. XLA:CPU compiles and runs a program sharded 8 ways much more
# slowly (two test files took 224 s on 8 devices, 156 s on 4, 138 s on 2), so the tests
# that need more devices start a process with them. A process started with a device
# count (such as those) keeps it.
IN_PROCESS_DEVICES = 2
_flags = os.environ.get('XLA_FLAGS', '')
if 'xla_force_host_platform_device_count' not in _flags:
  _flags += f' --xla_force_host_platform_device_count={IN_PROCESS_DEVICES}'
os.environ['XLA_FLAGS'] = f'{_flags} {TEST_COMPILE_FLAGS}'.strip()
# Every compiled program stored, however quick to compile: the commands the tests start
# (which inherit this) compile the same small programs again and again. A tiny DCGAN
# run with a warm cache took 57 s so, 61 s when only programs of 0.5 s or more were kept.
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
os.environ.setdefault('CUDA_VISIBLE_DEVICES', '')

import json
import pathlib
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence

import jax
import numpy as np
import pytest
from PIL import Image

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

from configs import dcgan_fmnist  # noqa: E402
from fakejax import runtime  # noqa: E402
from fakejax.data import fashion_mnist  # noqa: E402
from fakejax.train import checkpoints  # noqa: E402

DEBIAN_DIR = '/usr/share/datasets/fashion-mnist'
# As the commands the tests start do by default: programs that tests compile again (each
# jit of a new function object) load from disk instead of compiling anew.
runtime.enable_compilation_cache(runtime.DEFAULT_COMPILATION_CACHE_DIR)


@contextlib.contextmanager
def _exclusive(lock_path: pathlib.Path):
  with open(lock_path, 'w') as handle:
    fcntl.flock(handle, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(handle, fcntl.LOCK_UN)


def shared_folder(tmp_path_factory, name: str, build) -> pathlib.Path:
  """Folder `name`, filled by `build(folder)` once per test run, whichever worker asks first."""
  root = tmp_path_factory.getbasetemp()
  if os.environ.get('PYTEST_XDIST_WORKER'):
    root = root.parent  # The run's own folder, above each worker's.
  folder, done = root / name, root / f'{name}.done'
  with _exclusive(root / f'{name}.lock'):
    if not done.exists():
      shutil.rmtree(folder, ignore_errors=True)
      folder.mkdir()
      build(folder)
      done.touch()
  return folder


# The first images of each split: more than any tiny config reads (train[:640],
# test[:320]), and TFDS builds them in 2 s where the whole set took 35 s.
TEST_IDX_COUNTS = {'train': 2000, 'test': 1000}


def write_idx_prefix(source_dir: str, target_dir: pathlib.Path, counts: dict[str, int]) -> None:
  """The first `counts[split]` examples of each split, as gzipped IDX files."""
  for split, count in counts.items():
    data = fashion_mnist.read_idx_split(source_dir, split)
    images_name, labels_name = fashion_mnist.IDX_FILES[split]
    images, labels = data.images[:count], data.labels[:count].astype(np.uint8)
    header = np.array([fashion_mnist.IDX_IMAGES_MAGIC, count, *images.shape[1:3]], '>i4')
    with gzip.open(target_dir / images_name, 'wb') as f:
      f.write(header.tobytes() + images.tobytes())
    with gzip.open(target_dir / labels_name, 'wb') as f:
      f.write(np.array([fashion_mnist.IDX_LABELS_MAGIC, count], '>i4').tobytes() + labels.tobytes())


@pytest.fixture(scope='session')
def idx_dir(tmp_path_factory) -> str:
  """The tests' Fashion-MNIST: `TEST_IDX_COUNTS` of the Debian IDX files, as IDX files."""
  if not fashion_mnist.has_local_files(DEBIAN_DIR):
    pytest.fail(f'The tests need the Fashion-MNIST IDX files in {DEBIAN_DIR}: '
                'apt-get install dataset-fashion-mnist')
  build = lambda folder: write_idx_prefix(DEBIAN_DIR, folder, TEST_IDX_COUNTS)
  return str(shared_folder(tmp_path_factory, 'fashion_mnist_idx', build))


@pytest.fixture(scope='session')
def tfds_data_dir(idx_dir, tmp_path_factory) -> str:
  """A TFDS data dir holding fashion_mnist, built once by the offline builder from `idx_dir`."""
  build = lambda folder: fashion_mnist.prepare(str(folder), idx_dir, allow_download=False)
  return str(shared_folder(tmp_path_factory, 'tensorflow_datasets', build))


@pytest.fixture
def tiny_config(tfds_data_dir):
  config = dcgan_fmnist.get_config('tiny')
  config.data.data_dir = tfds_data_dir
  config.data.allow_download = False
  return config


# In training order (ConfigDict keeps keys sorted).
GANS = tuple(dcgan_fmnist.get_config('tiny').gans.keys())
TINY_STEPS = 12  # 1 epoch of 12 batches of 32 (the tiny config's 640 train examples).


def main_command(workdir, data_dir, *overrides, variant='tiny', config_file='dcgan_fmnist.py'):
  return [sys.executable, '-m', 'fakejax.main', f'--config=configs/{config_file}:{variant}',
          f'--workdir={workdir}', f'--config.data.data_dir={data_dir}',
          '--config.data.allow_download=False', *overrides]


# Two devices: sharded, yet compiled 2x faster than with the 8 of the in-process tests.
TWO_DEVICES = devices_env(2)


def run_main(workdir, data_dir, *overrides, config_file='dcgan_fmnist.py', variant='tiny'
             ) -> subprocess.CompletedProcess:
  result = subprocess.run(main_command(workdir, data_dir, *overrides, variant=variant,
                                       config_file=config_file),
                          cwd=REPO_ROOT, env=TWO_DEVICES, capture_output=True, text=True,
                          timeout=900)
  assert result.returncode == 0, result.stderr[-5000:]
  return result


def final_state(checkpoint_dir: pathlib.Path) -> dict:
  """The latest state as NumPy arrays, whatever devices and processes wrote it."""
  step = max(int(p.name) for p in checkpoint_dir.iterdir() if p.name.isdigit())
  return checkpoints.read_state_as_numpy(checkpoint_dir / str(step) / 'state')


@pytest.fixture(scope='session')
def finished_run(tfds_data_dir, tmp_path_factory) -> pathlib.Path:
  """The tiny DCGAN study, trained and evaluated. Tests that run it again use a copy."""
  return shared_folder(tmp_path_factory, 'finished_run',
                       lambda workdir: run_main(workdir, tfds_data_dir))


# The classifier studies of the session, both on the GANs of `finished_run`: one trained
# workdir of each kind of detector (discriminators, dedicated and autoencoder-study
# classifiers), shared by every test that needs one.
@pytest.fixture(scope='session')
def detectors_study(finished_run, tfds_data_dir, tmp_path_factory) -> pathlib.Path:
  """Trained from a folder outside the checkout, with the config given by its path."""
  def build(workdir):
    command = main_command(workdir, tfds_data_dir, f'--config.gan_workdir={finished_run}')
    command[3] = f'--config={REPO_ROOT / "configs" / "detectors_fmnist.py"}:tiny,real_only,fusion'
    result = subprocess.run(command, cwd=tmp_path_factory.mktemp('elsewhere'),
                            env=TWO_DEVICES, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-5000:]

  return shared_folder(tmp_path_factory, 'detectors_study', build)


def rerun_evaluation(workdir: pathlib.Path, copy: pathlib.Path, *produced: str,
                     drop: Sequence[str] = ()) -> None:
  """Copies a workdir without its evaluations and `produced` files; evaluates the copy.
  The config groups in `drop` (e.g. 'fusions') leave the copy's config and folders."""
  shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns('eval', *produced, *drop))
  if drop:
    config_json = copy / 'config.json'
    config = json.loads(config_json.read_text())
    config_json.write_text(json.dumps({**config, **{group: {} for group in drop}}))
  result = subprocess.run([sys.executable, '-m', 'fakejax.evaluate', f'--workdir={copy}'],
                          cwd=REPO_ROOT, env=TWO_DEVICES, capture_output=True, text=True,
                          timeout=600)
  assert result.returncode == 0, result.stderr[-5000:]


# The autoencoder-GAN study's classifiers: the image, and the residual under each
# autoencoder (every input kind is tested on its own in test_autogan.py).
AUTOGAN_INPUTS = ('image', 'residual')


@pytest.fixture(scope='session')
def autogan_study(finished_run, tfds_data_dir, tmp_path_factory) -> pathlib.Path:
  build = lambda workdir: run_main(workdir, tfds_data_dir, f'--config.gan_workdir={finished_run}',
                                   f'--config.classifier.inputs={AUTOGAN_INPUTS}',
                                   config_file='autogan_fmnist.py')
  return shared_folder(tmp_path_factory, 'autogan_study', build)


def wait_for_checkpoint(checkpoint_dir: pathlib.Path, process, timeout_s=300) -> int:
  deadline = time.monotonic() + timeout_s
  while time.monotonic() < deadline:
    assert process.poll() is None, 'the run ended before it could be killed'
    if checkpoint_dir.is_dir():
      steps = [int(p.name) for p in checkpoint_dir.iterdir() if p.name.isdigit()]
      if steps:
        return max(steps)
    time.sleep(0.02)
  raise TimeoutError(f'no checkpoint in {checkpoint_dir} after {timeout_s} s')


def assert_same_final_parameters(workdir: pathlib.Path, reference_dir: pathlib.Path,
                                 gans=GANS) -> None:
  """The GANs' final parameters and batch statistics are bit-identical to the reference's."""
  for gan in gans:
    got_state = final_state(workdir / gan / 'checkpoints')
    want_state = final_state(reference_dir / gan / 'checkpoints')
    for name in ('g_params', 'd_params', 'g_batch_stats', 'd_batch_stats'):
      for got, want in zip(jax.tree.leaves(got_state[name]), jax.tree.leaves(want_state[name]),
                           strict=True):
        np.testing.assert_array_equal(got, want)


def load_tool(name: str):
  """tools/<name>.py as a module (tools/ is a folder of scripts, not a package)."""
  spec = importlib.util.spec_from_file_location(name, REPO_ROOT / 'tools' / f'{name}.py')
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module  # Its dataclasses look their module up.
  spec.loader.exec_module(module)
  return module


def write_image(path, array):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(array).save(path)


def make_face_folder(root, num_per_class=80):
  """Dark noisy 'reals' and bright checkered 'fakes', 64x64 RGB, and one corrupt file."""
  rng = np.random.default_rng(0)
  checker = (np.indices((64, 64)).sum(0) % 2 * 60)[..., None].astype(np.uint8)
  for index in range(num_per_class):
    write_image(root / 'real' / f'{index}.png',
                rng.integers(0, 100, (64, 64, 3), dtype=np.uint8))
    write_image(root / 'fake' / f'{index}.jpg',
                rng.integers(150, 195, (64, 64, 3), dtype=np.uint8) + checker)
  (root / 'fake' / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n not an image')
