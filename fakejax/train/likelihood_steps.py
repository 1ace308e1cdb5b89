"""A model of real images as a detector: trained on reals alone, it flags what it cannot
explain (after ZED, Cozzolino et al. 2024).

The model gives each pixel's grey level a distribution. An image's coding cost under it
(its negative log-likelihood, in bits) is compared with the cost the model itself expects
for an image like it: the sum of each pixel's entropy. The gap, in units of the cost's
standard deviation under the model, is the image's surprise `z`; a real image of the kind
trained on costs what the model expects (z near 0), and so does a simple or a busy one,
which a raw likelihood would confuse with a fake. A model of reals cannot know in which
direction an unseen generator departs, so both directions are surprising: the score is
P(real) = 1 / (1 + |z|). Its thresholds come from validation reals alone (review budgets).
"""

import functools
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from fakejax.train import classifier_steps, gan_steps
from fakejax.train.classifier_steps import ClassifierState

# Keeps the surprise finite for a model certain of every pixel (1e-6 bits², in nats²).
NATS_VARIANCE_FLOOR = 1e-6 * np.log(2.0)**2


def pixel_logits(model: nn.Module, params: dict, images_uint8: jax.Array) -> jax.Array:
  """Logits [N, H, W, C, 256] of every grey level of every pixel."""
  return model.apply({'params': params}, gan_steps.to_model_range(images_uint8))


def pixel_log_probs(model: nn.Module, params: dict, images_uint8: jax.Array) -> jax.Array:
  """Log-probabilities [N, H, W, C, 256] of every grey level of every pixel."""
  return jax.nn.log_softmax(pixel_logits(model, params, images_uint8), axis=-1)


def coding_cost_bits(log_probs: jax.Array, images_uint8: jax.Array) -> jax.Array:
  """[N]: the images' negative log-likelihood in bits."""
  taken = jnp.take_along_axis(log_probs, images_uint8.astype(jnp.int32)[..., None], axis=-1)
  return -jnp.sum(taken, axis=(1, 2, 3, 4)) / jnp.log(2.0)


def surprise(logits: jax.Array, images_uint8: jax.Array) -> jax.Array:
  """[N]: (coding cost - its expectation) / its standard deviation, under the model of
  per-pixel `logits` [N, H, W, C, 256] (log-probabilities are logits too).

  A pixel's cost is -log p of its level, in nats; its expectation is the entropy
  -sum p log p, its variance sum p (log p)^2 - entropy^2. Computed over the pixels as
  rows of a matrix, with one exp: on CPUs, XLA's reductions over the last axis of the
  5-d array took twice as long.
  """
  num_images, levels = logits.shape[0], logits.shape[-1]
  log_probs = jax.nn.log_softmax(logits.reshape(-1, levels), axis=-1)  # [pixels, levels]
  probs = jnp.exp(log_probs)
  mean_log_prob = jnp.sum(probs * log_probs, axis=-1)
  variance = jnp.maximum(jnp.sum(probs * log_probs**2, axis=-1) - mean_log_prob**2, 0.0)
  taken = jnp.take_along_axis(log_probs, images_uint8.reshape(-1, 1).astype(jnp.int32), axis=-1)
  gap = jnp.sum((mean_log_prob - taken[:, 0]).reshape(num_images, -1), axis=1)  # Nats.
  spread = jnp.sum(variance.reshape(num_images, -1), axis=1)
  return gap / jnp.sqrt(spread + NATS_VARIANCE_FLOOR)


def make_train_step(model: nn.Module, tx: optax.GradientTransformation,
                    skip_nonfinite: bool = False):
  """Returns `train_step(state, {'image': uint8, 'label': int}) -> (state, metrics)`: one
  step on the bits per dimension of the batch's reals (any fakes in it are ignored)."""
  def train_step(state: ClassifierState, batch: dict):
    images = batch['image']
    is_real = (batch['label'] == classifier_steps.REAL_LABEL).astype(jnp.float32)

    def loss_fn(params):
      bits = coding_cost_bits(pixel_log_probs(model, params, images), images)
      return jnp.sum(bits * is_real) / jnp.maximum(jnp.sum(is_real), 1.0) / images[0].size

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    updated = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                            opt_state=opt_state)
    finite = jnp.isfinite(loss) & jnp.isfinite(optax.global_norm(updates))
    if skip_nonfinite:
      updated = gan_steps.keep_if_finite(updated, state, finite)
    return updated, {
        'bits_per_dim': loss, 'grad_norm': optax.global_norm(grads),
        'skipped_update': jnp.logical_and(skip_nonfinite, ~finite).astype(jnp.float32)}

  return train_step


@functools.cache
def make_score(model: nn.Module) -> Callable[[dict, jax.Array], jax.Array]:
  """Returns `score(variables, images_uint8) -> 1 / (1 + |surprise|)` per image (the
  detectors' P(real) convention: low is flagged). One function per model: compiled once."""
  def score(scoring_variables: dict, images_uint8: jax.Array) -> jax.Array:
    logits = pixel_logits(model, scoring_variables['params'], images_uint8)
    return 1.0 / (1.0 + jnp.abs(surprise(logits, images_uint8)))
  return score
