"""Preemption, damaged checkpoints, unwritable workdirs and non-finite losses."""

import json
import pathlib
import signal
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fakejax import errors, sharding
from fakejax.models import build_gan
from fakejax.train import checkpoints, gan_steps, gan_trainer, loop
from fakejax.workdir import Workdir
from tests.conftest import (GANS, REPO_ROOT, TINY_STEPS, TWO_DEVICES, load_tool,
                            assert_same_final_parameters, main_command, run_main,
                            wait_for_checkpoint)


# The kill-and-resume runs train one GAN, which trains alike whichever others a run
# trains: compared with that GAN of the session's finished run.
ONE_GAN = (GANS[0],)
ONE_GAN_VARIANT = f'tiny,gans={GANS[0]}'
TRAIN_ONLY = '--config.train_only=True'
# Initial states compiled as one program (op by op, they take seconds), on one device.
ONE_DEVICE = sharding.build_mesh(jax.devices()[:1])


def test_sigterm_saves_a_checkpoint_exits_and_the_same_command_resumes(request, tfds_data_dir,
                                                                       tmp_path):
  """Training only: the resumed study's evaluation is test_main.py's."""
  process = subprocess.Popen(main_command(tmp_path, tfds_data_dir, TRAIN_ONLY,
                                          variant=ONE_GAN_VARIANT),
                             cwd=REPO_ROOT, env=TWO_DEVICES, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
  wait_for_checkpoint(tmp_path / GANS[0] / 'checkpoints', process)
  process.send_signal(signal.SIGTERM)
  _, stderr = process.communicate(timeout=300)
  assert process.returncode == 143, stderr[-3000:]
  assert f'{GANS[0]} stopped by SIGTERM at step' in stderr
  stopped_at = int(stderr.split('stopped by SIGTERM at step ')[1].split(';')[0])
  assert stopped_at < TINY_STEPS
  assert (tmp_path / GANS[0] / 'checkpoints' / str(stopped_at) / 'state').is_dir()
  stopped = json.loads((tmp_path / 'timing.json').read_text())  # The stopped run's time.
  assert list(stopped) == ['training', 'total'] and stopped['total'] >= stopped['training'] > 0

  result = run_main(tmp_path, tfds_data_dir, TRAIN_ONLY, variant=ONE_GAN_VARIANT)
  assert f'Resumed from the checkpoint of step {stopped_at}' in result.stderr
  assert not (tmp_path / 'quality').exists() and not (tmp_path / 'report.md').exists()
  resumed = json.loads((tmp_path / 'timing.json').read_text())
  assert resumed['training'] > stopped['training'] and resumed['total'] > stopped['total']
  # Asked for only now: these runs go on while another worker trains the reference.
  reference_dir = request.getfixturevalue('finished_run')
  assert_same_final_parameters(tmp_path, reference_dir, gans=ONE_GAN)


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


def train_tiny_gan(config, name, images, workdir):
  """Trains GAN `name` of `config` in `workdir`, as the DCGAN study does."""
  return gan_trainer.train_gan(name, config.gans[name], loop.LoopSettings.from_config(config),
                               images, Workdir(workdir).gan(name), sharding.build_mesh())


def test_non_finite_loss_stops_training_naming_step_and_metric(tiny_config, tmp_path):
  del tiny_config.gans['dcgan_radford']
  # Adam moves each weight by ~learning_rate per step: 1e30 overflows within a few steps.
  tiny_config.gans.dcgan_tf.optimizer.learning_rate = 1e30
  images = np.random.default_rng(0).integers(0, 255, (256, 28, 28, 1), dtype=np.uint8)
  with pytest.raises(FloatingPointError, match=r'Non-finite .*loss.* at step (\d+)') as error:
    train_tiny_gan(tiny_config, 'dcgan_tf', images, tmp_path)
  # One clear message (no traceback from `main`), naming the run and what to change.
  assert isinstance(error.value, errors.UserError)
  assert str(error.value).startswith('dcgan_tf (') and 'learning rate' in str(error.value)
  failed_at = int(str(error.value).split(' at step ')[1].split(' ')[0])
  saved = [int(p.name) for p in (tmp_path / 'dcgan_tf' / 'checkpoints').iterdir()
           if p.name.isdigit()]
  assert all(step < failed_at for step in saved)


def test_fault_injection_tool_survives_random_kills(finished_run, tfds_data_dir, tmp_path):
  fault_injection = load_tool('fault_injection')
  reference_dir = finished_run
  # Seed 4 draws SIGKILL while a checkpoint is being written: the hardest moment. That
  # moment does not depend on the run's length, given here only to bound the waits.
  trials = fault_injection.run_trials(1, tfds_data_dir, tmp_path, seed=4,
                                      reference_dir=reference_dir, gans=ONE_GAN,
                                      run_seconds=60.0)
  assert [(t.signal_name, t.moment, t.survived) for t in trials] == [
      ('SIGKILL', 'during_save', True)], [t.detail for t in trials]


@pytest.fixture
def batch() -> np.ndarray:
  return np.random.default_rng(0).integers(0, 255, (16, 28, 28, 1), dtype=np.uint8)


def nan_updates_at(bad_step: int) -> optax.GradientTransformation:
  """Adam whose update of step `bad_step` (0-based) is NaN: a blow-up on one batch."""
  def update(updates, state, params=None):
    del params
    poison = jnp.where(state == bad_step, jnp.nan, 0.0)
    return jax.tree.map(lambda u: u + poison, updates), state + 1
  return optax.chain(optax.adam(1e-4), optax.GradientTransformation(
      lambda params: jnp.zeros([], jnp.int32), update))


def test_skip_nonfinite_updates_keeps_the_state_and_continues(batch):
  models = build_gan('dcgan_tf')
  # Same optimiser-state layout; the first poisons its first update, the other never does.
  poisoned, healthy = nan_updates_at(0), nan_updates_at(99)
  before = gan_trainer.init_sharded_state(models, poisoned, 100, 0, ONE_DEVICE)
  skipping_step = lambda tx: jax.jit(gan_steps.make_train_step(models, tx, 100,
                                                               skip_nonfinite=True))
  after_bad, bad_metrics = skipping_step(poisoned)(before, batch)
  after_good, good_metrics = skipping_step(healthy)(after_bad, batch)

  same = lambda a, b: all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a),
                                                               jax.tree.leaves(b)))
  assert float(bad_metrics['skipped_update']) == 1.0
  assert int(after_bad.step) == 1
  for part in ('g_params', 'd_params', 'g_batch_stats', 'd_opt_state', 'g_opt_state'):
    assert same(getattr(after_bad, part), getattr(before, part)), part  # No trace left...
  assert float(good_metrics['skipped_update']) == 0.0
  assert not same(after_good.g_params, after_bad.g_params)  # ...and training goes on.
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(after_good.g_params))


def test_without_skipping_a_nonfinite_update_poisons_the_state(batch):
  models = build_gan('dcgan_tf')
  tx = nan_updates_at(0)
  state = gan_trainer.init_sharded_state(models, tx, 100, 0, ONE_DEVICE)
  state, metrics = jax.jit(gan_steps.make_train_step(models, tx, 100))(state, batch)
  assert float(metrics['skipped_update']) == 0.0
  assert np.isnan(jax.tree.leaves(state.g_params)[0]).any()  # What the log-step check catches.


def test_skipping_stops_when_every_update_between_log_steps_is_skipped(tiny_config, tmp_path):
  del tiny_config.gans['dcgan_radford']
  tiny_config.skip_nonfinite_updates = True
  tiny_config.gans.dcgan_tf.optimizer.learning_rate = 1e30  # Every update soon overflows.
  images = np.random.default_rng(0).integers(0, 255, (256, 28, 28, 1), dtype=np.uint8)
  with pytest.raises(FloatingPointError, match=r'Every update of steps \d+-\d+ was non-finite'):
    train_tiny_gan(tiny_config, 'dcgan_tf', images, tmp_path)
