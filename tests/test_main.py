"""The main job end to end on the tiny config, through the real command line."""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from tensorboard.backend.event_processing import event_accumulator

from configs import dcgan_fmnist
from tests.conftest import REPO_ROOT

# In training order (ConfigDict keeps keys sorted).
GANS = tuple(dcgan_fmnist.get_config('tiny').gans.keys())
TINY_STEPS = 24  # 2 epochs of 12 batches of 32 (the tiny config's 640 train examples).


def main_command(workdir, data_dir, *overrides):
  return [sys.executable, '-m', 'fakejax.main', '--config=configs/dcgan_fmnist.py:tiny',
          f'--workdir={workdir}', f'--config.data.data_dir={data_dir}',
          '--config.data.allow_download=False', *overrides]


# Two devices: sharded, yet compiled 2x faster than with the 8 of the in-process tests.
TWO_DEVICES = {**os.environ, 'XLA_FLAGS': '--xla_force_host_platform_device_count=2'}


def run_main(workdir, data_dir, *overrides) -> subprocess.CompletedProcess:
  result = subprocess.run(main_command(workdir, data_dir, *overrides), cwd=REPO_ROOT,
                          env=TWO_DEVICES, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-5000:]
  return result


def final_state(checkpoint_dir: pathlib.Path) -> dict:
  step = max(int(p.name) for p in checkpoint_dir.iterdir() if p.name.isdigit())
  return ocp.StandardCheckpointer().restore(checkpoint_dir / str(step) / 'state')


@pytest.fixture(scope='module')
def finished_run(tfds_data_dir, tmp_path_factory):
  workdir = tmp_path_factory.mktemp('finished_run')
  result = run_main(workdir, tfds_data_dir)
  return workdir, result


def test_main_job_writes_checkpoints_tensorboard_and_detector_numbers(finished_run):
  workdir, _ = finished_run
  for gan in GANS:
    run_dir = workdir / gan
    assert (run_dir / 'checkpoints' / str(TINY_STEPS) / 'state').is_dir()
    events = event_accumulator.EventAccumulator(
        str(run_dir / 'tensorboard'), size_guidance={event_accumulator.TENSORS: 0})
    events.Reload()
    tags = set(events.Tags()['tensors'])
    assert {'d_loss', 'g_loss', 'd_real', 'd_fake', 'g_grad_norm', 'd_grad_norm',
            'steps_per_sec', 'samples'} <= tags
    assert {'eval/own_fakes_vs_reals/accuracy', 'eval/anomaly_class_reals/real_recall',
            'eval/other_gan_fakes/generated_recall', 'eval/review_load/youden'} <= tags
    eval_dir = run_dir / 'eval' / str(TINY_STEPS)
    for name in ('report.md', 'confusion_matrices.png', 'roc_curves.png',
                 'score_histograms.png', 'most_confident_mistakes.png'):
      assert (eval_dir / name).stat().st_size > 0
    report = json.loads((eval_dir / 'report.json').read_text())
    assert report['step'] == TINY_STEPS
    splits = report['splits']
    assert set(splits) == {'own_fakes_vs_reals', 'anomaly_class_reals', 'seen_class_reals',
                           'other_gan_fakes'}
    assert splits['own_fakes_vs_reals']['support'] == {'real': 320, 'generated': 128}
    assert splits['other_gan_fakes']['fake_sets'] == [f'gan:{g}' for g in GANS if g != gan]
    assert splits['anomaly_class_reals']['paired_with'] == 'own fakes'
    for split in splits.values():
      assert 0.0 <= split['at_threshold']['default_0.5']['accuracy'] <= 1.0
      assert 0.0 <= split['threshold_free']['roc_auc'] <= 1.0
  summary = (workdir / 'report.md').read_text()
  assert 'study (better DCGAN)' in summary and 'review load' in summary
  assert json.loads((workdir / 'config.json').read_text())['batch_size'] == 32


def test_standalone_evaluation_reproduces_the_end_of_training_numbers(finished_run, tmp_path):
  workdir, _ = finished_run
  copy = tmp_path / 'copy'
  shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns('eval', 'report.md'))
  result = subprocess.run(
      [sys.executable, '-m', 'fakejax.evaluate', f'--workdir={copy}'], cwd=REPO_ROOT,
      env=TWO_DEVICES, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-5000:]
  for gan in GANS:
    relative = pathlib.Path(gan) / 'eval' / str(TINY_STEPS) / 'report.json'
    assert (copy / relative).read_text() == (workdir / relative).read_text()
  assert (copy / 'report.md').read_text() == (workdir / 'report.md').read_text()


def test_running_the_same_command_again_resumes_instead_of_restarting(finished_run,
                                                                      tfds_data_dir):
  workdir, _ = finished_run
  report = lambda gan: workdir / gan / 'eval' / str(TINY_STEPS) / 'report.json'
  before = {gan: report(gan).read_text() for gan in GANS}
  result = run_main(workdir, tfds_data_dir)
  assert result.stderr.count(f'Resumed from the checkpoint of step {TINY_STEPS}') == 2
  assert 'step 4:' not in result.stderr  # No training step was run again.
  for gan in GANS:
    assert report(gan).read_text() == before[gan]


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


def test_run_killed_mid_training_resumes_to_the_same_parameters(finished_run, tfds_data_dir,
                                                               tmp_path):
  reference_dir, _ = finished_run
  process = subprocess.Popen(main_command(tmp_path, tfds_data_dir), cwd=REPO_ROOT,
                             env=TWO_DEVICES, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  try:
    killed_after = wait_for_checkpoint(tmp_path / GANS[0] / 'checkpoints', process)
    os.kill(process.pid, signal.SIGKILL)
  finally:
    process.wait()
  assert killed_after < TINY_STEPS
  assert not (tmp_path / GANS[1]).exists()

  result = run_main(tmp_path, tfds_data_dir)
  assert f'Resumed from the checkpoint of step {killed_after}' in result.stderr
  for gan in GANS:
    resumed = final_state(tmp_path / gan / 'checkpoints')
    reference = final_state(reference_dir / gan / 'checkpoints')
    for name in ('g_params', 'd_params', 'g_batch_stats', 'd_batch_stats'):
      for got, want in zip(jax.tree.leaves(resumed[name]), jax.tree.leaves(reference[name]),
                           strict=True):
        np.testing.assert_array_equal(got, want)
