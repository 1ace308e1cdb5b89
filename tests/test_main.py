"""The main job end to end on the tiny config, through the real command line."""

import json
import pathlib
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator

from fakejax.studies import common
from fakejax.workdir import Workdir
from tests.conftest import GANS, REPO_ROOT, TINY_STEPS, run_main


def assert_is_a_drawn_picture(path: pathlib.Path) -> None:
  """A PNG of some size, not one flat colour."""
  with Image.open(path) as image:
    assert image.format == 'PNG' and min(image.size) >= 100
    assert np.asarray(image.convert('L')).std() > 1.0


def test_main_job_writes_checkpoints_tensorboard_and_detector_numbers(finished_run):
  workdir = finished_run
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
    assert '| generated |' in (eval_dir / 'report.md').read_text()
    for name in ('confusion_matrices.png', 'roc_curves.png', 'score_histograms.png',
                 'most_confident_mistakes.png'):
      assert_is_a_drawn_picture(eval_dir / name)
    report = json.loads((eval_dir / 'report.json').read_text())
    assert report['step'] == TINY_STEPS
    splits = report['splits']
    assert set(splits) == {'own_fakes_vs_reals', 'anomaly_class_reals', 'seen_class_reals',
                           'other_gan_fakes'}
    assert splits['own_fakes_vs_reals']['support'] == {'real': 320, 'generated': 128}
    assert splits['other_gan_fakes']['fake_sets'] == [f'gan:{g}' for g in GANS if g != gan]
    assert splits['anomaly_class_reals']['paired_with'] == 'own fakes'
    for split in splits.values():  # Accuracy is the confusion matrix's diagonal share.
      at_half = split['at_threshold']['default_0.5']
      confusion = np.asarray(at_half['confusion_matrix'])
      assert at_half['accuracy'] == pytest.approx(np.trace(confusion) / confusion.sum())
      assert confusion.sum() == sum(split['support'].values())
  summary = (workdir / 'report.md').read_text()
  assert 'study (better DCGAN)' in summary and 'review load' in summary
  assert json.loads((workdir / 'config.json').read_text())['batch_size'] == 32
  timing = json.loads((workdir / 'timing.json').read_text())
  assert list(timing) == ['training', 'quality', 'evaluation', 'total']
  stages = timing['training'] + timing['quality'] + timing['evaluation']
  assert min(timing.values()) > 0 and timing['total'] >= stages


def test_running_the_same_command_again_resumes_and_reproduces_the_evaluation(
    finished_run, tfds_data_dir, tmp_path):
  """No step is trained again; the evaluation, removed, comes back the same. (The
  `fakejax.evaluate` command is tested on the other studies: test_detectors.py.)"""
  workdir = tmp_path / 'copy'  # The session's run is shared: it stays as it is.
  shutil.copytree(finished_run, workdir, ignore=shutil.ignore_patterns('eval', 'report.md'))
  result = run_main(workdir, tfds_data_dir)
  for gan in GANS:
    assert f'Resumed from the checkpoint of step {TINY_STEPS} in {workdir / gan}' in result.stderr
  assert 'step 4:' not in result.stderr  # No training step was run again.
  for gan in GANS:
    relative = pathlib.Path(gan) / 'eval' / str(TINY_STEPS) / 'report.json'
    assert (workdir / relative).read_text() == (finished_run / relative).read_text()
  assert (workdir / 'report.md').read_text() == (finished_run / 'report.md').read_text()
  # The copy's wall time adds this invocation's to the finished run's.
  before, after = (json.loads((w / 'timing.json').read_text()) for w in (finished_run, workdir))
  assert after['total'] > before['total'] and after['evaluation'] > before['evaluation']
  assert f'Wall time in {workdir}, summed over its invocations: training' in result.stderr


def test_timed_stages_add_up_and_count_a_block_that_was_stopped(tmp_path):
  workdir = Workdir(tmp_path)
  with common.timed_stage(workdir, 'training'):
    time.sleep(0.1)
  with pytest.raises(KeyboardInterrupt):  # As a preempted stage stops: its time counts.
    with common.timed_stage(workdir, 'training'):
      time.sleep(0.1)
      raise KeyboardInterrupt
  seconds = common.stage_seconds(workdir)
  assert list(seconds) == ['training'] and 0.2 <= seconds['training'] < 2.0
  assert common.timing_summary(workdir).startswith('training 0.0 min')
  workdir.timing_json.write_text('[1, 2]')  # Not a record of seconds: it warns, no more.
  with pytest.raises(KeyboardInterrupt):
    with common.timed_stage(workdir, 'training'):
      raise KeyboardInterrupt
  assert common.timing_summary(workdir).startswith('not recorded (')
  with common.timed_stage(Workdir(tmp_path / 'never_made'), 'total'):
    pass  # A study that failed before making its workdir leaves nothing behind.
  assert not (tmp_path / 'never_made').exists()


def test_compare_runs_tool_tabulates_each_gans_latest_report(finished_run):
  workdir = finished_run
  result = subprocess.run(
      [sys.executable, 'tools/compare_runs.py', str(workdir), str(workdir), '--labels=a,b'],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
  assert result.returncode == 0, result.stderr
  table, differences = result.stdout.split('\n\n')
  assert 'No figure has per-seed values' in differences  # One seed each: nothing to test.
  rows = [line.split(' | ') for line in table.splitlines()[2:]]
  assert [(row[0], row[1]) for row in rows] == [(f'| {gan}', label) for gan in sorted(GANS)
                                                for label in 'ab']
  for row in rows:
    report = json.loads((workdir / row[0][2:] / 'eval' / str(TINY_STEPS) /
                         'report.json').read_text())
    own = report['splits']['own_fakes_vs_reals']
    assert row[2] == str(TINY_STEPS)
    assert row[3] == f"{own['at_threshold']['default_0.5']['accuracy']:.3f}"
    assert row[6] == f"{own['threshold_free']['roc_auc']:.3f}"
