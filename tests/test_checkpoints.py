"""Orbax checkpoints of the GAN state and the data position."""

import jax
import numpy as np

from configs import dcgan_fmnist
from fakejax import sharding
from fakejax.models import build_gan
from fakejax.train import checkpoints, gan_trainer, optimizers


def test_state_and_data_position_round_trip(tmp_path):
  config = dcgan_fmnist.dcgan_radford()
  models = build_gan(config.architecture)
  tx = optimizers.from_config(config.optimizer)
  mesh = sharding.build_mesh()
  state = gan_trainer.init_sharded_state(models, tx, config.latent_dim, 3, mesh)
  state = state.replace(step=state.step + 17)
  manager = checkpoints.checkpoint_manager(tmp_path, max_to_keep=2, save_interval_steps=1)
  checkpoints.save(manager, 17, state, {'next_index': 17})
  manager.wait_until_finished()

  blank = gan_trainer.init_sharded_state(models, tx, config.latent_dim, 4, mesh)
  fresh_manager = checkpoints.checkpoint_manager(tmp_path, max_to_keep=2, save_interval_steps=1)
  assert fresh_manager.latest_step() == 17
  restored, data_state = checkpoints.restore(fresh_manager, 17, blank)
  assert data_state == {'next_index': 17}
  assert jax.tree.structure(restored) == jax.tree.structure(state)
  for got, want in zip(jax.tree.leaves(restored), jax.tree.leaves(state)):
    np.testing.assert_array_equal(got, want)
    assert got.sharding == want.sharding


def test_only_the_last_checkpoints_are_kept(tmp_path):
  manager = checkpoints.checkpoint_manager(tmp_path, max_to_keep=2, save_interval_steps=1)
  for step in (1, 2, 3):
    checkpoints.save(manager, step, {'w': np.full(3, step, np.float32)}, {'next_index': step})
  manager.wait_until_finished()
  assert sorted(manager.all_steps()) == [2, 3]


def test_replicated_state_restores_onto_a_different_device_count(tmp_path):
  config = dcgan_fmnist.dcgan_tf()
  models = build_gan(config.architecture)
  tx = optimizers.from_config(config.optimizer)
  assert jax.device_count() > 1
  every = sharding.build_mesh(jax.devices())
  one = sharding.build_mesh(jax.devices()[:1])
  state = gan_trainer.init_sharded_state(models, tx, config.latent_dim, 5, every)
  manager = checkpoints.checkpoint_manager(tmp_path, max_to_keep=1, save_interval_steps=1)
  checkpoints.save(manager, 1, state, {'next_index': 1})
  manager.wait_until_finished()

  like = gan_trainer.init_sharded_state(models, tx, config.latent_dim, 0, one)
  restored, _, step = checkpoints.restore_latest_good(
      checkpoints.checkpoint_manager(tmp_path, max_to_keep=1, save_interval_steps=1), like)
  assert step == 1
  for got, want in zip(jax.tree.leaves(restored), jax.tree.leaves(state)):
    assert got.sharding.mesh.size == 1
    np.testing.assert_array_equal(got, want)
