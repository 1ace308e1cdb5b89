"""Expected user errors: one clear message, exit status 1, no traceback, and soon."""

import subprocess
import sys
import time

import pytest

from fakejax.data import fashion_mnist
from tests.conftest import REPO_ROOT, TWO_DEVICES


def test_without_data_or_network_the_advice_comes_at_once(tmp_path, monkeypatch):
  # A host name that never resolves (RFC 2606): as on a machine without internet.
  monkeypatch.setattr(fashion_mnist, 'DOWNLOAD_HOST', 'fashion-mnist.invalid')
  start = time.monotonic()
  with pytest.raises(fashion_mnist.DatasetUnavailableError,
                     match=r'(?s)fashion-mnist.invalid.*apt-get install dataset-fashion-mnist'):
    fashion_mnist.prepare(str(tmp_path / 'tfds'), str(tmp_path / 'no_idx_files'),
                          allow_download=True)
  assert time.monotonic() - start < 30


def run_main_elsewhere(tmp_path, *overrides) -> subprocess.CompletedProcess:
  """The main job from a folder outside the checkout, with the config given by its path."""
  command = [sys.executable, '-m', 'fakejax.main',
             f'--config={REPO_ROOT / "configs" / "detectors_fmnist.py"}:tiny',
             f'--workdir={tmp_path / "run"}', *overrides]
  return subprocess.run(command, cwd=tmp_path, env=TWO_DEVICES, capture_output=True, text=True,
                        timeout=120)


def test_missing_data_is_one_message_without_a_traceback(tmp_path):
  start = time.monotonic()
  result = run_main_elsewhere(tmp_path, f'--config.data.data_dir={tmp_path / "tfds"}',
                              f'--config.data.local_dir={tmp_path / "nothing"}',
                              '--config.data.allow_download=False')
  assert time.monotonic() - start < 30
  assert result.returncode == 1
  assert 'error: Fashion-MNIST is not available' in result.stderr
  assert 'apt-get install dataset-fashion-mnist' in result.stderr
  assert 'Traceback' not in result.stderr


def test_an_unknown_experiment_is_one_message_without_a_traceback(tmp_path):
  result = run_main_elsewhere(tmp_path, '--config.experiment=detector')
  assert result.returncode == 1
  assert "'experiment' is 'detector'; known experiments" in result.stderr
  assert 'Traceback' not in result.stderr


def test_evaluating_a_folder_that_is_no_workdir_says_so(tmp_path):
  result = subprocess.run([sys.executable, '-m', 'fakejax.evaluate', f'--workdir={tmp_path}'],
                          cwd=tmp_path, env=TWO_DEVICES, capture_output=True, text=True,
                          timeout=120)
  assert result.returncode == 1
  assert f'{tmp_path / "config.json"} does not exist' in result.stderr
  assert 'Traceback' not in result.stderr


def test_a_benchmark_tool_given_a_folder_that_is_no_workdir_says_so(tmp_path):
  result = subprocess.run([sys.executable, str(REPO_ROOT / 'tools' / 'benchmark_predict.py'),
                           f'--workdir={tmp_path}', '--num_images=1'],
                          cwd=tmp_path, env=TWO_DEVICES, capture_output=True, text=True,
                          timeout=120)
  assert result.returncode == 1
  assert f'{tmp_path / "config.json"} does not exist' in result.stderr
  assert 'Traceback' not in result.stderr
