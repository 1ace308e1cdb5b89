"""WGAN-GP: its gradient penalty, its critic-to-generator schedule, and resuming mid-cycle."""

import shutil

import jax
import jax.numpy as jnp
import numpy as np

from configs import dcgan_fmnist
from fakejax import sharding
from fakejax.models import build_gan
from fakejax.train import gan_trainer, loop, optimizers, wasserstein_steps
from fakejax.workdir import Workdir
from tests.conftest import final_state

ONE_DEVICE = sharding.build_mesh(jax.devices()[:1])


def test_gradient_penalty_of_a_linear_critic_is_its_slope_norm_less_one_squared():
  real, fake = jax.random.normal(jax.random.PRNGKey(0), (2, 6, 4, 4, 1))
  for scale in (0.5, 1.0, 3.0):
    slope = scale * jnp.ones((4, 4, 1)) / 4.0  # Its norm is `scale`.
    critic = lambda x, slope=slope: jnp.sum(x * slope, axis=(1, 2, 3))
    penalty = wasserstein_steps.gradient_penalty(critic, real, fake, jax.random.PRNGKey(1))
    np.testing.assert_allclose(penalty, (scale - 1.0) ** 2, rtol=1e-5, atol=1e-9)


def test_critic_learns_every_step_and_the_generator_every_fifth():
  config = dcgan_fmnist.wgan_gp()
  models = build_gan('wgan_gp')
  tx = optimizers.from_config(config.optimizer)
  state = gan_trainer.init_sharded_state(models, tx, config.latent_dim, 0, ONE_DEVICE)
  step = jax.jit(gan_trainer.make_train_step(models, tx, config.latent_dim))
  # Dark reals: a critic soon tells them from the generator's mid-grey start.
  reals = np.random.default_rng(0).integers(0, 40, (8, 28, 28, 1), np.uint8)
  changed = lambda a, b: any(np.any(x != y) for x, y in zip(jax.tree.leaves(a),
                                                           jax.tree.leaves(b)))
  estimates, generator_moved = [], []
  for _ in range(2 * wasserstein_steps.CRITIC_STEPS):
    new_state, metrics = step(state, reals)
    assert changed(new_state.d_params, state.d_params)
    generator_moved.append(changed(new_state.g_params, state.g_params))
    estimates.append(float(metrics['wasserstein_estimate']))
    state = new_state
  assert generator_moved == [False] * 4 + [True] + [False] * 4 + [True]
  assert estimates[-1] > estimates[0] + 1.0  # Reals now score well above fakes.


def test_killed_mid_cycle_it_resumes_to_the_parameters_of_an_uninterrupted_run(tmp_path):
  config = dcgan_fmnist.get_config('tiny,gans=wgan_gp')
  # Batches of 8: the double backward pass of the penalty is the costliest step here.
  config.batch_size, config.checkpoint_every_steps, config.sample_every_steps = 8, 4, 100
  config.num_epochs = 2
  settings = loop.LoopSettings.from_config(config)
  images = np.random.default_rng(0).integers(0, 255, (48, 28, 28, 1), np.uint8)
  train = lambda root: gan_trainer.train_gan('wgan_gp', config.gans.wgan_gp, settings, images,
                                             Workdir(root).gan('wgan_gp'), sharding.build_mesh())
  uninterrupted = train(tmp_path / 'uninterrupted')
  assert uninterrupted.num_steps == 12
  # A run killed after its step-8 checkpoint leaves no later one: 8 is mid-cycle (8 % 5).
  shutil.copytree(tmp_path / 'uninterrupted', tmp_path / 'killed')
  shutil.rmtree(tmp_path / 'killed' / 'wgan_gp' / 'checkpoints' / '12')
  resumed = train(tmp_path / 'killed')
  assert resumed.resumed_from_step == 8
  got = final_state(tmp_path / 'killed' / 'wgan_gp' / 'checkpoints')
  want = final_state(tmp_path / 'uninterrupted' / 'wgan_gp' / 'checkpoints')
  for name in ('step', 'rng', 'g_params', 'd_params', 'g_batch_stats', 'g_opt_state',
               'd_opt_state'):
    for a, b in zip(jax.tree.leaves(got[name]), jax.tree.leaves(want[name]), strict=True):
      np.testing.assert_array_equal(a, b)
