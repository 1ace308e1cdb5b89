"""Pure GAN step functions: one generator forward pass feeds both players' updates.

Both players are updated simultaneously from the same generated batch (as in the
TensorFlow DCGAN tutorial): D descends its loss on real and generated images, G descends
the non-saturating loss -log D(G(z)).
"""

import functools
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from fakejax.models import GanModels
from fakejax.train.gan_state import GanState

Metrics = dict[str, jax.Array]


def to_model_range(images_uint8: jax.Array) -> jax.Array:
  """uint8 [0, 255] -> float32 [-1, 1], the generators' tanh range."""
  return images_uint8.astype(jnp.float32) / 127.5 - 1.0


def to_uint8(images: jax.Array) -> jax.Array:
  """float [-1, 1] -> uint8 [0, 255]."""
  return jnp.clip(jnp.round((images + 1.0) * 127.5), 0, 255).astype(jnp.uint8)


def bce(logits: jax.Array, label: float) -> jax.Array:
  return optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, label)).mean()


def step_keys(state: GanState) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Latent, dropout-on-real and dropout-on-fake keys of this step."""
  return tuple(jax.random.split(jax.random.fold_in(state.rng, state.step), 3))


# (fake_logits, fake) -> (the producer's loss, extra metrics).
ProducerLoss = Callable[[jax.Array, jax.Array], tuple[jax.Array, Metrics]]
# producer params -> (fake images, updated producer batch statistics).
Produce = Callable[[dict], tuple[jax.Array, dict]]


def keep_if_finite(updated, state, finite: jax.Array):
  """`updated` where `finite`, else `state` with only its step advanced (a skipped update)."""
  kept = state.replace(step=state.step + 1)
  return jax.tree.map(lambda new, old: jnp.where(finite, new, old), updated, kept)


def _update_players(state: GanState, tx: optax.GradientTransformation, grads: tuple,
                    batch_stats: tuple, losses: tuple, skip_nonfinite: bool
                    ) -> tuple[GanState, jax.Array]:
  """Both players' optimiser steps; with `skip_nonfinite`, kept out where not all finite."""
  (g_grads, d_grads), (g_batch_stats, d_batch_stats) = grads, batch_stats
  g_updates, g_opt_state = tx.update(g_grads, state.g_opt_state, state.g_params)
  d_updates, d_opt_state = tx.update(d_grads, state.d_opt_state, state.d_params)
  updated = state.replace(
      step=state.step + 1,
      g_params=optax.apply_updates(state.g_params, g_updates),
      g_batch_stats=g_batch_stats,
      g_opt_state=g_opt_state,
      d_params=optax.apply_updates(state.d_params, d_updates),
      d_batch_stats=d_batch_stats,
      d_opt_state=d_opt_state,
  )
  finite = jnp.all(jnp.isfinite(jnp.stack([
      *losses, optax.global_norm(g_updates), optax.global_norm(d_updates)])))
  if not skip_nonfinite:
    return updated, finite
  return keep_if_finite(updated, state, finite), finite


def adversarial_update(state: GanState, real: jax.Array, produce: Produce,
                       producer_loss: ProducerLoss, discriminator: nn.Module,
                       tx: optax.GradientTransformation, dropout_keys: tuple[jax.Array, jax.Array],
                       skip_nonfinite: bool) -> tuple[GanState, Metrics]:
  """One simultaneous update of the producer (`g_*`) and the discriminator (`d_*`).

  The producer makes fakes (a generator from latents, an autoencoder from reals) once;
  one pass of D over reals and fakes gives D's loss and the producer's loss, and their
  gradients come from two vector-Jacobian products of that pass. With `skip_nonfinite`,
  a step whose losses or updates are not all finite leaves the parameters, statistics
  and optimiser states as they were (metric `skipped_update`: 1).
  """
  real_dropout_key, fake_dropout_key = dropout_keys

  def losses(d_params, fake):
    def discriminate(images, batch_stats, key):
      logits, updates = discriminator.apply(
          {'params': d_params, 'batch_stats': batch_stats}, images, train=True,
          rngs={'dropout': key}, mutable=['batch_stats'])
      return logits, updates.get('batch_stats', batch_stats)
    real_logits, batch_stats = discriminate(real, state.d_batch_stats, real_dropout_key)
    fake_logits, batch_stats = discriminate(fake, batch_stats, fake_dropout_key)
    d_loss = bce(real_logits, 1.0) + bce(fake_logits, 0.0)
    g_loss, g_metrics = producer_loss(fake_logits, fake)
    return (d_loss, g_loss), (batch_stats, real_logits, fake_logits, g_metrics)

  fake, produce_vjp, g_batch_stats = jax.vjp(produce, state.g_params, has_aux=True)
  (d_loss, g_loss), losses_vjp, (d_batch_stats, real_logits, fake_logits, g_metrics) = jax.vjp(
      losses, state.d_params, fake, has_aux=True)
  one, zero = jnp.ones_like(d_loss), jnp.zeros_like(d_loss)
  d_grads, _ = losses_vjp((one, zero))
  _, fake_cotangent = losses_vjp((zero, one))
  (g_grads,) = produce_vjp(fake_cotangent)

  new_state, finite = _update_players(state, tx, (g_grads, d_grads), (g_batch_stats, d_batch_stats),
                                      (d_loss, g_loss), skip_nonfinite)
  metrics = {
      'd_loss': d_loss,
      'g_loss': g_loss,
      'd_real': jax.nn.sigmoid(real_logits).mean(),
      'd_fake': jax.nn.sigmoid(fake_logits).mean(),
      'g_grad_norm': optax.global_norm(g_grads),
      'd_grad_norm': optax.global_norm(d_grads),
      'skipped_update': jnp.logical_and(skip_nonfinite, ~finite).astype(jnp.float32),
      **g_metrics,
  }
  return new_state, metrics


def make_train_step(models: GanModels, tx: optax.GradientTransformation, latent_dim: int,
                    skip_nonfinite: bool = False
                    ) -> Callable[[GanState, jax.Array], tuple[GanState, Metrics]]:
  """Returns the GAN's `train_step(state, real_uint8) -> (state, metrics)`, pure and jittable.

  G descends the non-saturating loss -log D(G(z)); see `adversarial_update`.
  """
  def train_step(state: GanState, real_uint8: jax.Array) -> tuple[GanState, Metrics]:
    latent_key, *dropout_keys = step_keys(state)
    latents = jax.random.normal(latent_key, (real_uint8.shape[0], latent_dim))

    def generate(g_params):
      fake, updates = models.generator.apply(
          {'params': g_params, 'batch_stats': state.g_batch_stats}, latents, train=True,
          mutable=['batch_stats'])
      return fake, updates.get('batch_stats', {})

    non_saturating = lambda fake_logits, fake: (bce(fake_logits, 1.0), {})
    return adversarial_update(state, to_model_range(real_uint8), generate, non_saturating,
                              models.discriminator, tx, tuple(dropout_keys), skip_nonfinite)

  return train_step


@functools.cache
def make_generate(models: GanModels) -> Callable[[dict, jax.Array], jax.Array]:
  """Returns `generate(g_variables, latents) -> images in [-1, 1]` (inference mode)."""
  def generate(g_variables: dict, latents: jax.Array) -> jax.Array:
    return models.generator.apply(g_variables, latents, train=False)
  return generate


@functools.cache
def make_score(models: GanModels) -> Callable[[dict, jax.Array], jax.Array]:
  """Returns `score(d_variables, images_uint8) -> P(real)` per image (inference mode)."""
  def score(d_variables: dict, images_uint8: jax.Array) -> jax.Array:
    logits = models.discriminator.apply(d_variables, to_model_range(images_uint8), train=False)
    return jax.nn.sigmoid(logits)
  return score
