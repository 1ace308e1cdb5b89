"""The VAE's pure steps: the negative evidence lower bound, and sampling from the prior.

The decoder's output is the mean of a Gaussian of fixed scale `DECODER_SCALE` on images in
[-1, 1], so the reconstruction term is the squared error over 2 * scale**2, summed over
pixels like the KL term, both averaged over the batch.
"""

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax

from fakejax.models.vae import Vae
from fakejax.train import generator_state
from fakejax.train.gan_steps import to_model_range
from fakejax.train.generator_state import GeneratorState

# The decoder's standard deviation in [-1, 1] units: about 25 grey levels of 255.
DECODER_SCALE = 0.2
OPTIONS_SCHEMA = {'latent_dim': int, 'kl_weight': float}


def model_options(options: ml_collections.ConfigDict) -> dict:
  """The options the model itself takes (models.build_generator)."""
  return {'latent_dim': options.latent_dim}


def latent_dim(options: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> int:
  del image_shape
  return options.latent_dim


def init_params(model: Vae, key: jax.Array, image_shape: tuple[int, int, int]) -> dict:
  images = jnp.zeros((1, *image_shape))
  return model.init(key, images, jnp.zeros((1, model.latent_dim)))['params']


def negative_elbo(model: Vae, params: dict, images: jax.Array, noise: jax.Array,
                  kl_weight: float) -> tuple[jax.Array, dict]:
  reconstruction, mean, log_variance = model.apply({'params': params}, images, noise)
  squared_error = jnp.sum((reconstruction - images)**2, axis=(1, 2, 3)) / (2 * DECODER_SCALE**2)
  kl = 0.5 * jnp.sum(mean**2 + jnp.exp(log_variance) - 1.0 - log_variance, axis=-1)
  loss = jnp.mean(squared_error + kl_weight * kl)
  return loss, {'reconstruction': jnp.mean(squared_error), 'kl': jnp.mean(kl)}


def make_train_step(model: Vae, tx: optax.GradientTransformation,
                    options: ml_collections.ConfigDict, ema_decay: float,
                    skip_nonfinite: bool) -> generator_state.TrainStep:
  """`train_step(state, real_uint8) -> (state, metrics)`: one step on the negative ELBO."""
  kl_weight = options.kl_weight

  def train_step(state: GeneratorState, real_uint8: jax.Array):
    images = to_model_range(real_uint8)
    noise = jax.random.normal(generator_state.step_key(state),
                              (images.shape[0], model.latent_dim))
    return generator_state.descend(
        state, tx, lambda p: negative_elbo(model, p, images, noise, kl_weight), ema_decay,
        skip_nonfinite)

  return train_step


@functools.cache
def _decode(model: Vae) -> Callable[[dict, jax.Array], jax.Array]:
  return lambda variables, latents: model.apply(variables, latents, method=Vae.decode)


def make_generate(model: Vae, options: ml_collections.ConfigDict,
                  image_shape: tuple[int, int, int]) -> Callable[[dict, jax.Array], jax.Array]:
  """`generate(variables, latents) -> images in [-1, 1]`: the decoder's means at prior draws
  (one function per model, so that compiled samplers are reused)."""
  del options, image_shape
  return _decode(model)
