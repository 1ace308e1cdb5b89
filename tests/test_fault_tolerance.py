"""Preemption, damaged checkpoints, unwritable workdirs and non-finite losses."""

import pathlib
import signal
import subprocess
import sys

import numpy as np
import pytest

from fakejax import sharding
from fakejax.train import checkpoints, gan_trainer
from tests.conftest import (GANS, REPO_ROOT, TINY_STEPS, TWO_DEVICES,
                            assert_same_final_parameters, main_command, run_main,
                            wait_for_checkpoint)


def test_sigterm_saves_a_checkpoint_exits_and_the_same_command_resumes(finished_run,
                                                                       tfds_data_dir, tmp_path):
  reference_dir, _ = finished_run
  process = subprocess.Popen(main_command(tmp_path, tfds_data_dir), cwd=REPO_ROOT,
                             env=TWO_DEVICES, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
  wait_for_checkpoint(tmp_path / GANS[0] / 'checkpoints', process)
  process.send_signal(signal.SIGTERM)
  _, stderr = process.communicate(timeout=300)
  assert process.returncode == 143, stderr[-3000:]
  assert f'{GANS[0]} stopped by SIGTERM at step' in stderr
  stopped_at = int(stderr.split('stopped by SIGTERM at step ')[1].split(';')[0])
  assert stopped_at < TINY_STEPS
  assert (tmp_path / GANS[0] / 'checkpoints' / str(stopped_at) / 'state').is_dir()

  result = run_main(tmp_path, tfds_data_dir)
  assert f'Resumed from the checkpoint of step {stopped_at}' in result.stderr
  assert_same_final_parameters(tmp_path, reference_dir)


def small_state(value: float):
  return {'w': np.full((4, 3), value, np.float32), 'step': np.full((), value, np.int32)}


def saved_steps(directory, steps=(1, 2, 3)):
  manager = checkpoints.checkpoint_manager(directory, max_to_keep=None, save_interval_steps=1)
  for step in steps:
    checkpoints.save(manager, step, small_state(step), {'next_index': step})
  manager.wait_until_finished()
  return checkpoints.checkpoint_manager(directory, max_to_keep=None, save_interval_steps=1)


def data_files(step_dir: pathlib.Path) -> list[pathlib.Path]:
  return [p for p in (step_dir / 'state').rglob('*') if p.is_file() and p.parent.name == 'd']


def test_checkpoint_with_flipped_bytes_falls_back_to_the_previous_step(tmp_path, caplog):
  manager = saved_steps(tmp_path)
  for path in data_files(tmp_path / '3'):
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
  state, data_state, step = checkpoints.restore_latest_good(manager, small_state(0))
  assert step == 2 and data_state == {'next_index': 2}
  np.testing.assert_array_equal(state['w'], small_state(2)['w'])
  assert any('cannot be restored' in r.getMessage() and '/3' in r.getMessage()
             for r in caplog.records)


def test_checkpoint_with_missing_files_falls_back_to_the_previous_step(tmp_path):
  manager = saved_steps(tmp_path)
  for path in data_files(tmp_path / '3'):
    path.unlink()
  _, _, step = checkpoints.restore_latest_good(manager, small_state(0))
  assert step == 2


def test_no_intact_checkpoint_is_an_error_naming_each(tmp_path):
  manager = saved_steps(tmp_path, steps=(1, 2))
  for step in (1, 2):
    for path in data_files(tmp_path / str(step)):
      path.unlink()
  with pytest.raises(checkpoints.CheckpointCorruptError) as error:
    checkpoints.restore_latest_good(manager, small_state(0))
  assert str(tmp_path / '1') in str(error.value) and str(tmp_path / '2') in str(error.value)


def test_incomplete_checkpoint_is_ignored_with_a_warning(tmp_path, caplog):
  manager = saved_steps(tmp_path, steps=(1,))
  (tmp_path / '2.orbax-checkpoint-tmp-1234').mkdir()  # What a kill during a write leaves.
  _, _, step = checkpoints.restore_latest_good(manager, small_state(0))
  assert step == 1
  assert any('incomplete checkpoint' in r.getMessage() for r in caplog.records)


def test_unwritable_workdir_fails_before_any_work(tmp_path):
  blocker = tmp_path / 'a_file'
  blocker.write_text('')
  with pytest.raises(checkpoints.WorkdirNotWritableError, match='not writable'):
    checkpoints.check_workdir_writable(blocker / 'workdir', needed_bytes=0)


def test_workdir_without_room_for_checkpoints_fails_before_any_work(tmp_path):
  with pytest.raises(checkpoints.WorkdirNotWritableError, match='MiB free'):
    checkpoints.check_workdir_writable(tmp_path, needed_bytes=2**62)


def test_non_finite_loss_stops_training_naming_step_and_metric(tiny_config, tmp_path):
  del tiny_config.gans['dcgan_radford']
  # Adam moves each weight by ~learning_rate per step: 1e30 overflows within a few steps.
  tiny_config.gans.dcgan_tf.optimizer.learning_rate = 1e30
  images = np.random.default_rng(0).integers(0, 255, (256, 28, 28, 1), dtype=np.uint8)
  with pytest.raises(FloatingPointError, match=r'Non-finite .*loss.* at step (\d+)') as error:
    gan_trainer.train_gan(tiny_config, 'dcgan_tf', images, tmp_path, sharding.build_mesh())
  failed_at = int(str(error.value).split(' at step ')[1].split(' ')[0])
  saved = [int(p.name) for p in (tmp_path / 'dcgan_tf' / 'checkpoints').iterdir()
           if p.name.isdigit()]
  assert all(step < failed_at for step in saved)


def test_fault_injection_tool_survives_random_kills(finished_run, tfds_data_dir, tmp_path):
  sys.path.insert(0, str(REPO_ROOT / 'tools'))
  import fault_injection  # pylint: disable=g-import-not-at-top
  reference_dir, _ = finished_run
  trials = fault_injection.run_trials(2, tfds_data_dir, tmp_path, seed=3,
                                      reference_dir=reference_dir)
  assert [t.survived for t in trials] == [True, True], [t.detail for t in trials]
