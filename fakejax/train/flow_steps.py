"""The flow's pure steps: exact log-likelihood of dequantised images (in bits per
dimension), and sampling by the inverse map from Gaussian latents at a temperature.

Images are dequantised (uniform noise on each grey level), scaled into
(LOGIT_MARGIN, 1 - LOGIT_MARGIN) and mapped to logit space; the log-determinants of those
maps join the flow's, so bits per dimension are those of the 8-bit images.
"""

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax

from fakejax.models.flow import LOGIT_MARGIN, RealNvp
from fakejax.train import generator_state
from fakejax.train.generator_state import GeneratorState

OPTIONS_SCHEMA = {'steps_per_level': int, 'temperature': float}


def model_options(options: ml_collections.ConfigDict) -> dict:
  """The options the model itself takes (models.build_generator)."""
  return {'steps_per_level': options.steps_per_level}


def latent_dim(options: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> int:
  del options
  return math.prod(image_shape)


def init_params(model: RealNvp, key: jax.Array, image_shape: tuple[int, int, int]) -> dict:
  return model.init(key, jnp.zeros((1, *image_shape)))['params']


def to_logits(images_uint8: jax.Array, noise: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Dequantised uint8 images in logit space, and the log|det| of that map per image."""
  unit = (images_uint8.astype(jnp.float32) + noise) / 256.0
  p = LOGIT_MARGIN + (1.0 - 2.0 * LOGIT_MARGIN) * unit
  log_det = jnp.log(1.0 - 2.0 * LOGIT_MARGIN) - jnp.log(256.0) - jnp.log(p) - jnp.log1p(-p)
  return jnp.log(p) - jnp.log1p(-p), jnp.sum(log_det, axis=(1, 2, 3))


def from_logits(logits: jax.Array) -> jax.Array:
  """Logit-space images -> images in [-1, 1]."""
  unit = (jax.nn.sigmoid(logits) - LOGIT_MARGIN) / (1.0 - 2.0 * LOGIT_MARGIN)
  return jnp.clip(2.0 * unit - 1.0, -1.0, 1.0)


def bits_per_dim(model: RealNvp, params: dict, images_uint8: jax.Array,
                 noise: jax.Array) -> jax.Array:
  """The negative log-likelihood of the images, in bits per pixel (batch mean)."""
  logits, preprocess_log_det = to_logits(images_uint8, noise)
  latents, flow_log_det = model.apply({'params': params}, logits)
  log_prior = -0.5 * jnp.sum(latents**2 + jnp.log(2.0 * jnp.pi), axis=-1)
  log_likelihood = log_prior + flow_log_det + preprocess_log_det
  return -jnp.mean(log_likelihood) / (latents.shape[-1] * jnp.log(2.0))


def make_train_step(model: RealNvp, tx: optax.GradientTransformation,
                    options: ml_collections.ConfigDict, ema_decay: float,
                    skip_nonfinite: bool) -> generator_state.TrainStep:
  """`train_step(state, real_uint8) -> (state, metrics)`: one step on bits per dimension."""
  del options

  def train_step(state: GeneratorState, real_uint8: jax.Array):
    noise = jax.random.uniform(generator_state.step_key(state), real_uint8.shape)
    return generator_state.descend(
        state, tx, lambda p: (bits_per_dim(model, p, real_uint8, noise), {}), ema_decay,
        skip_nonfinite)

  return train_step


@functools.cache
def _inverse(model: RealNvp, temperature: float) -> Callable[[dict, jax.Array], jax.Array]:
  return lambda variables, latents: from_logits(
      model.apply(variables, temperature * latents, method=RealNvp.inverse))


def make_generate(model: RealNvp, options: ml_collections.ConfigDict,
                  image_shape: tuple[int, int, int]) -> Callable[[dict, jax.Array], jax.Array]:
  """`generate(variables, latents) -> images in [-1, 1]`: the inverse map of latents
  scaled by the temperature (below 1: fewer, cleaner samples, as in Glow)."""
  del image_shape
  return _inverse(model, float(options.temperature))
