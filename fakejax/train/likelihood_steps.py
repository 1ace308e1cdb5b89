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
import optax

from fakejax.train import classifier_steps, gan_steps
from fakejax.train.classifier_steps import ClassifierState


def pixel_log_probs(model: nn.Module, params: dict, images_uint8: jax.Array) -> jax.Array:
  """Log-probabilities [N, H, W, C, 256] of every grey level of every pixel."""
  logits = model.apply({'params': params}, gan_steps.to_model_range(images_uint8))
  return jax.nn.log_softmax(logits, axis=-1)


def coding_cost_bits(log_probs: jax.Array, images_uint8: jax.Array) -> jax.Array:
  """[N]: the images' negative log-likelihood in bits."""
  taken = jnp.take_along_axis(log_probs, images_uint8.astype(jnp.int32)[..., None], axis=-1)
  return -jnp.sum(taken, axis=(1, 2, 3, 4)) / jnp.log(2.0)


def surprise(log_probs: jax.Array, images_uint8: jax.Array) -> jax.Array:
  """[N]: (coding cost - its expectation) / its standard deviation, under the model."""
  probs = jnp.exp(log_probs)
  bits = -log_probs / jnp.log(2.0)
  entropy = jnp.sum(probs * bits, axis=-1)  # Expected bits per pixel and channel.
  variance = jnp.sum(probs * bits**2, axis=-1) - entropy**2
  gap = coding_cost_bits(log_probs, images_uint8) - jnp.sum(entropy, axis=(1, 2, 3))
  return gap / jnp.sqrt(jnp.sum(variance, axis=(1, 2, 3)) + 1e-6)


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
    log_probs = pixel_log_probs(model, scoring_variables['params'], images_uint8)
    return 1.0 / (1.0 + jnp.abs(surprise(log_probs, images_uint8)))
  return score
