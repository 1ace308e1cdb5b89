"""Diffusion's pure steps: DDPM training by noise prediction (Ho et al. 2020), and DDIM
sampling (Song et al. 2021) whose whole loop is one `lax.scan` inside the compiled program.

With eta = 0, DDIM is deterministic given its starting noise: that noise is the
sampler's latent vector (the image's size), so samples are a function of the seed like
every other generator's.
"""

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from fakejax.models.unet import NoiseUNet
from fakejax.train import generator_state
from fakejax.train.gan_steps import to_model_range
from fakejax.train.generator_state import GeneratorState

OPTIONS_SCHEMA = {'num_timesteps': int, 'noise_schedule': str, 'sampling_steps': int}
NOISE_SCHEDULES = ('cosine', 'linear')


def model_options(options: ml_collections.ConfigDict) -> dict:
  """The options the model itself takes (models.build_generator): none beyond its widths."""
  del options
  return {}


def latent_dim(options: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> int:
  del options
  return math.prod(image_shape)


def init_params(model: NoiseUNet, key: jax.Array, image_shape: tuple[int, int, int]) -> dict:
  return model.init(key, jnp.zeros((1, *image_shape)), jnp.zeros((1,), jnp.int32))['params']


def alphas_cumprod(schedule: str, num_timesteps: int) -> np.ndarray:
  """The share of signal left after each step t = 0..T-1 (a float64 NumPy constant).

  'linear': betas from 1e-4 to 0.02 (Ho et al. 2020); 'cosine': Nichol & Dhariwal (2021),
  whose images keep signal longer, with betas capped at 0.999.
  """
  if schedule == 'linear':
    return np.cumprod(1.0 - np.linspace(1e-4, 0.02, num_timesteps))
  if schedule != 'cosine':
    raise ValueError(f'Unknown noise schedule {schedule!r}; known: {NOISE_SCHEDULES}.')
  f = lambda t: np.cos((t / num_timesteps + 0.008) / 1.008 * np.pi / 2)**2
  t = np.arange(num_timesteps + 1)
  betas = np.minimum(1.0 - f(t[1:]) / f(t[:-1]), 0.999)
  return np.cumprod(1.0 - betas)


def noise_loss(model: NoiseUNet, params: dict, images: jax.Array, key: jax.Array,
               signal: jax.Array) -> jax.Array:
  """The mean squared error of the predicted noise at uniformly drawn steps."""
  step_key, noise_key = jax.random.split(key)
  timesteps = jax.random.randint(step_key, (images.shape[0],), 0, len(signal))
  noise = jax.random.normal(noise_key, images.shape)
  kept = signal[timesteps][:, None, None, None]
  noisy = jnp.sqrt(kept) * images + jnp.sqrt(1.0 - kept) * noise
  return jnp.mean((model.apply({'params': params}, noisy, timesteps) - noise)**2)


def make_train_step(model: NoiseUNet, tx: optax.GradientTransformation,
                    options: ml_collections.ConfigDict, ema_decay: float,
                    skip_nonfinite: bool) -> generator_state.TrainStep:
  """`train_step(state, real_uint8) -> (state, metrics)`: one step on the noise loss."""
  signal = jnp.asarray(alphas_cumprod(options.noise_schedule, options.num_timesteps),
                       jnp.float32)

  def train_step(state: GeneratorState, real_uint8: jax.Array):
    images = to_model_range(real_uint8)
    key = generator_state.step_key(state)
    return generator_state.descend(
        state, tx, lambda p: (noise_loss(model, p, images, key, signal), {}), ema_decay,
        skip_nonfinite)

  return train_step


def ddim_timesteps(num_timesteps: int, sampling_steps: int) -> tuple[np.ndarray, np.ndarray]:
  """The steps DDIM visits, from noisiest, and the step each goes to (-1: the image)."""
  steps = np.linspace(0, num_timesteps - 1, min(sampling_steps, num_timesteps)).round()
  steps = np.unique(steps.astype(np.int32))[::-1]
  return steps, np.append(steps[1:], -1).astype(np.int32)


@functools.cache
def _ddim_sampler(model: NoiseUNet, schedule: str, num_timesteps: int,
                  sampling_steps: int, image_shape: tuple[int, ...]):
  signal = np.append(alphas_cumprod(schedule, num_timesteps), 1.0)  # [-1]: no noise left.
  steps, next_steps = ddim_timesteps(num_timesteps, sampling_steps)
  kept, kept_next = (jnp.asarray(signal[s], jnp.float32) for s in (steps, next_steps))

  def generate(variables: dict, latents: jax.Array) -> jax.Array:
    def denoise(x, visit):
      step, a, a_next = visit
      timesteps = jnp.full((x.shape[0],), step, jnp.int32)
      noise = model.apply(variables, x, timesteps)
      # The clean image implied by the predicted noise, kept in range; the noise it implies.
      clean = jnp.clip((x - jnp.sqrt(1.0 - a) * noise) / jnp.sqrt(a), -1.0, 1.0)
      noise = (x - jnp.sqrt(a) * clean) / jnp.sqrt(1.0 - a)
      return jnp.sqrt(a_next) * clean + jnp.sqrt(1.0 - a_next) * noise, None
    start = latents.reshape(latents.shape[0], *image_shape)
    images, _ = jax.lax.scan(denoise, start, (jnp.asarray(steps), kept, kept_next))
    return images

  return generate


def make_generate(model: NoiseUNet, options: ml_collections.ConfigDict,
                  image_shape: tuple[int, int, int]) -> Callable[[dict, jax.Array], jax.Array]:
  """`generate(variables, noise [B, H*W*C]) -> images in [-1, 1]` by deterministic DDIM."""
  return _ddim_sampler(model, options.noise_schedule, options.num_timesteps,
                       options.sampling_steps, tuple(image_shape))
