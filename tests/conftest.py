"""Shared fixtures: 8 forced CPU devices and a real Fashion-MNIST TFDS dataset."""

import os

# Before JAX is imported anywhere: 8 CPU devices, so sharded code is exercised.
os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=8').strip()
os.environ.setdefault('CUDA_VISIBLE_DEVICES', '')

import pathlib
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from configs import dcgan_fmnist  # noqa: E402
from fakejax.data import fashion_mnist  # noqa: E402

DEBIAN_DIR = '/usr/share/datasets/fashion-mnist'


@pytest.fixture(scope='session')
def tfds_data_dir(tmp_path_factory) -> str:
  """A TFDS data dir holding fashion_mnist, built once from the Debian IDX files."""
  if not fashion_mnist.has_local_files(DEBIAN_DIR):
    pytest.fail(f'The tests need the Fashion-MNIST IDX files in {DEBIAN_DIR}: '
                'apt-get install dataset-fashion-mnist')
  data_dir = str(tmp_path_factory.mktemp('tensorflow_datasets'))
  fashion_mnist.prepare(data_dir, DEBIAN_DIR, allow_download=False)
  return data_dir


@pytest.fixture
def tiny_config(tfds_data_dir):
  config = dcgan_fmnist.get_config('tiny')
  config.data.data_dir = tfds_data_dir
  config.data.allow_download = False
  return config
