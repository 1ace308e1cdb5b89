"""The GAN train step: each player's update lowers its loss; sharding does not change it."""

import pickle
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fakejax import sharding
from fakejax.data import fashion_mnist
from fakejax.models import GAN_ARCHITECTURES, build_gan
from fakejax.train import gan_state, gan_steps, gan_trainer, optimizers
from configs import dcgan_fmnist
from tests.conftest import REPO_ROOT, devices_env

BATCH = 32
# Initial states compiled as one program (op by op, they take seconds), on one device.
ONE_DEVICE = sharding.build_mesh(jax.devices()[:1])


def read_real_batch() -> np.ndarray:
  return fashion_mnist.read_idx_split('/usr/share/datasets/fashion-mnist', 'test').images[:BATCH]


@pytest.fixture(scope='module')
def real_batch() -> np.ndarray:
  return read_real_batch()


def gan_config(architecture):
  return getattr(dcgan_fmnist, architecture)()


def fixed_losses(models):
  """(D loss, G loss) of a state on a fixed batch and fixed latents, without dropout."""
  @jax.jit
  def losses(state, real_uint8, latents):
    fake = models.generator.apply(gan_state.generator_variables(state), latents, train=True,
                                  mutable=['batch_stats'])[0]
    d_vars = gan_state.discriminator_variables(state)
    score = lambda x: models.discriminator.apply(d_vars, x, train=False,
                                                 mutable=['batch_stats'])[0]
    real_logits, fake_logits = score(gan_steps.to_model_range(real_uint8)), score(fake)
    bce = lambda logits, label: optax.sigmoid_binary_cross_entropy(
        logits, jnp.full_like(logits, label)).mean()
    return bce(real_logits, 1.0) + bce(fake_logits, 0.0), bce(fake_logits, 1.0)
  return lambda *args: tuple(map(float, losses(*args)))


# Architectures whose players both update every step (WGAN-GP: test_wasserstein.py).
NON_SATURATING = sorted(name for name, spec in GAN_ARCHITECTURES.items()
                        if spec.objective == 'non_saturating')


@pytest.mark.parametrize('architecture', NON_SATURATING)
def test_each_step_lowers_each_players_loss_on_a_fixed_batch(architecture, real_batch):
  config = gan_config(architecture)
  models = build_gan(architecture)
  tx = optimizers.from_config(config.optimizer)
  state = gan_trainer.init_sharded_state(models, tx, config.latent_dim, 0, ONE_DEVICE)
  step = jax.jit(gan_steps.make_train_step(models, tx, config.latent_dim))
  latents = jax.random.normal(jax.random.PRNGKey(7), (BATCH, config.latent_dim))
  losses = fixed_losses(models)
  for _ in range(3):
    new_state, metrics = step(state, real_batch)
    assert all(np.isfinite(float(v)) for v in metrics.values())
    d_before, g_before = losses(state, real_batch, latents)
    # D's update, judged against the old generator; G's, against the old discriminator.
    d_after, _ = losses(state.replace(d_params=new_state.d_params), real_batch, latents)
    _, g_after = losses(state.replace(g_params=new_state.g_params), real_batch, latents)
    assert d_after < d_before
    assert g_after < g_before
    state = new_state


@pytest.mark.parametrize('architecture', sorted(GAN_ARCHITECTURES))
def test_bfloat16_step_keeps_a_float32_state_and_agrees_with_float32(architecture, real_batch):
  config = gan_config(architecture)
  tx = optimizers.from_config(config.optimizer)
  results = {}
  for dtype in ('float32', 'bfloat16'):
    models = build_gan(architecture, dtype)
    state = gan_trainer.init_sharded_state(models, tx, config.latent_dim, 0, ONE_DEVICE)
    step = jax.jit(gan_trainer.make_train_step(models, tx, config.latent_dim))
    results[dtype] = step(state, real_batch)
  (full_state, full), (mixed_state, mixed) = results['float32'], results['bfloat16']
  assert jax.tree.map(lambda leaf: leaf.dtype, mixed_state) == jax.tree.map(
      lambda leaf: leaf.dtype, full_state)
  for name in ('d_loss', 'g_loss'):
    assert abs(float(mixed[name]) - float(full[name])) < 0.01, name
  for name in {'d_grad_norm', 'g_grad_norm'} & set(full):
    assert float(mixed[name]) == pytest.approx(float(full[name]), rel=0.05), name


def run_steps(architecture, devices, batches, tx):
  config = gan_config(architecture)
  models = build_gan(architecture)
  mesh = sharding.build_mesh(devices)
  state = gan_trainer.init_sharded_state(models, tx, config.latent_dim, 0, mesh)
  step = jax.jit(gan_trainer.make_train_step(models, tx, config.latent_dim),
                 in_shardings=(sharding.replicated(mesh), sharding.batch_sharded(mesh)),
                 out_shardings=sharding.replicated(mesh), donate_argnums=0)
  metrics = []
  for batch in batches:
    state, step_metrics = step(state, sharding.global_batch(mesh, batch))
    metrics.append(step_metrics)
  return jax.device_get(state), jax.device_get(metrics)


# Three steps on one device and on all 8 of a process of 8 CPU devices (the suite's own
# processes have 2), as on a TPU host: a global batch of 32 split 8 ways.
SHARDED_RUNS = """
import pickle, sys
import jax, numpy as np, optax
from tests.test_train_step import read_real_batch, run_steps
architecture, out = sys.argv[1:]
real_batch = read_real_batch()
batches = [real_batch, real_batch[::-1], np.roll(real_batch, 5, axis=0)]
runs = {}
for count in (1, jax.device_count()):
  # Plain SGD: parameter differences are then gradient differences. (Adam turns float
  # noise in near-zero gradients into full-size steps of either sign.)
  state, metrics = run_steps(architecture, jax.devices()[:count], batches, optax.sgd(0.01))
  runs[count] = (jax.tree.leaves(state), metrics)
with open(out, 'wb') as f:
  pickle.dump(runs, f)
"""


@pytest.mark.parametrize('architecture', sorted(GAN_ARCHITECTURES))
def test_step_sharded_over_8_devices_matches_one_device(architecture, tmp_path):
  out = tmp_path / 'runs.pickle'
  result = subprocess.run([sys.executable, '-c', SHARDED_RUNS, architecture, str(out)],
                          cwd=REPO_ROOT, env=devices_env(8), capture_output=True, text=True,
                          timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  runs = pickle.loads(out.read_bytes())
  assert sorted(runs) == [1, 8]
  (state_1, metrics_1), (state_8, metrics_8) = runs[1], runs[8]
  for name in metrics_1[0]:
    np.testing.assert_allclose(metrics_8[0][name], metrics_1[0][name], rtol=1e-5)
  for step_8, step_1 in zip(metrics_8, metrics_1):
    for name in step_1:
      np.testing.assert_allclose(step_8[name], step_1[name], rtol=1e-4)
  for leaf_8, leaf_1 in zip(state_8, state_1, strict=True):
    np.testing.assert_allclose(leaf_8, leaf_1, rtol=1e-4, atol=1e-5)
