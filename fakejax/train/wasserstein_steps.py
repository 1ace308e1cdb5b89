"""WGAN-GP's pure step (Gulrajani et al. 2017): the critic every step, the generator every
`CRITIC_STEPS` steps.

The critic descends E[C(fake)] - E[C(real)] + `PENALTY_WEIGHT` * E[(|grad C(mix)| - 1)^2],
`mix` a random point between a real and a fake image; the generator descends -E[C(G(z))].
Each step reads one batch of reals, so a generator update follows every `CRITIC_STEPS`
batches, as in the paper's loop over critic iterations.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from fakejax.models import GanModels
from fakejax.train.gan_state import GanState
from fakejax.train.gan_steps import Metrics, keep_if_finite, to_model_range

CRITIC_STEPS = 5
PENALTY_WEIGHT = 10.0


def gradient_penalty(critic: Callable[[jax.Array], jax.Array], real: jax.Array,
                     fake: jax.Array, key: jax.Array) -> jax.Array:
  """E[(|grad C(mix)| - 1)^2] over random points `mix` between paired reals and fakes."""
  share = jax.random.uniform(key, (real.shape[0], 1, 1, 1))
  mix = share * real + (1.0 - share) * fake
  grads = jax.grad(lambda images: critic(images).sum())(mix)
  norms = jnp.sqrt(jnp.sum(grads ** 2, axis=(1, 2, 3)) + 1e-12)
  return jnp.mean((norms - 1.0) ** 2)


def _critic_update(models: GanModels, tx: optax.GradientTransformation, state: GanState,
                   real: jax.Array, fake: jax.Array, penalty_key: jax.Array
                   ) -> tuple[GanState, Metrics]:
  def loss(d_params):
    critic = lambda images: models.discriminator.apply({'params': d_params}, images, train=True)
    real_scores, fake_scores = critic(real), critic(fake)
    penalty = gradient_penalty(critic, real, fake, penalty_key)
    distance = real_scores.mean() - fake_scores.mean()
    return -distance + PENALTY_WEIGHT * penalty, {
        'wasserstein_estimate': distance, 'gradient_penalty': penalty,
        # The generator's loss against this critic, every step (it updates less often).
        'g_loss': -fake_scores.mean()}

  (d_loss, metrics), d_grads = jax.value_and_grad(loss, has_aux=True)(state.d_params)
  updates, d_opt_state = tx.update(d_grads, state.d_opt_state, state.d_params)
  state = state.replace(d_params=optax.apply_updates(state.d_params, updates),
                        d_opt_state=d_opt_state)
  return state, {'d_loss': d_loss, 'd_grad_norm': optax.global_norm(d_grads),
                 'd_update_norm': optax.global_norm(updates), **metrics}


def _generator_update(models: GanModels, tx: optax.GradientTransformation, state: GanState,
                      latents: jax.Array) -> tuple[GanState, jax.Array]:
  """One generator step against the (just updated) critic; returns its update's norm."""
  def loss(g_params):
    fake, updates = models.generator.apply(
        {'params': g_params, 'batch_stats': state.g_batch_stats}, latents, train=True,
        mutable=['batch_stats'])
    scores = models.discriminator.apply({'params': state.d_params}, fake, train=True)
    return -scores.mean(), updates.get('batch_stats', {})

  g_grads, g_batch_stats = jax.grad(loss, has_aux=True)(state.g_params)
  updates, g_opt_state = tx.update(g_grads, state.g_opt_state, state.g_params)
  state = state.replace(g_params=optax.apply_updates(state.g_params, updates),
                        g_batch_stats=g_batch_stats, g_opt_state=g_opt_state)
  return state, optax.global_norm(updates)


def make_train_step(models: GanModels, tx: optax.GradientTransformation, latent_dim: int,
                    skip_nonfinite: bool = False
                    ) -> Callable[[GanState, jax.Array], tuple[GanState, Metrics]]:
  """Returns WGAN-GP's `train_step(state, real_uint8) -> (state, metrics)`, pure and jittable.

  With `skip_nonfinite`, a step whose losses or updates are not all finite leaves the
  state as it was but for the step count (metric `skipped_update`: 1).
  """
  def train_step(state: GanState, real_uint8: jax.Array) -> tuple[GanState, Metrics]:
    step_key = jax.random.fold_in(state.rng, state.step)
    latent_key, penalty_key = jax.random.split(step_key)
    latents = jax.random.normal(latent_key, (real_uint8.shape[0], latent_dim))
    # Batch statistics, as the generator trains with; they update with its own step.
    fake, _ = models.generator.apply(
        {'params': state.g_params, 'batch_stats': state.g_batch_stats}, latents, train=True,
        mutable=['batch_stats'])
    updated, metrics = _critic_update(models, tx, state, to_model_range(real_uint8), fake,
                                      penalty_key)
    updated, g_update_norm = jax.lax.cond(
        state.step % CRITIC_STEPS == CRITIC_STEPS - 1,
        lambda s: _generator_update(models, tx, s, latents),
        lambda s: (s, jnp.zeros(())), updated)
    updated = updated.replace(step=state.step + 1)
    finite = jnp.all(jnp.isfinite(jnp.stack([
        metrics['d_loss'], metrics.pop('d_update_norm'), g_update_norm])))
    if skip_nonfinite:
      updated = keep_if_finite(updated, state, finite)
    metrics['skipped_update'] = jnp.logical_and(skip_nonfinite, ~finite).astype(jnp.float32)
    return updated, metrics

  return train_step
