"""Training one autoencoder-GAN on real images, and its reconstructions as fakes."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh

from fakejax import sharding
from fakejax.models import build_autoencoder, build_gan
from fakejax.models.autoencoder import AutoEncoder
from fakejax.train import autoencoder_gan, checkpoints, gan_steps, loop, optimizers
from fakejax.workdir import RunDir

NUM_IMAGES_IN_GRID = 32
RECONSTRUCTION_BATCH = 1000


def autoencoder_of(ae_config: ml_collections.ConfigDict) -> AutoEncoder:
  """The autoencoder a config's `autoencoders.<name>` group describes."""
  return build_autoencoder(depth=ae_config.depth, base_features=ae_config.base_features,
                           latent_features=ae_config.latent_features,
                           upsampler=ae_config.upsampler)


def autoencoder_job(name: str, ae_config: ml_collections.ConfigDict, grid_images: np.ndarray,
                    skip_nonfinite: bool, mesh: Mesh) -> loop.Job:
  """The loop's job for autoencoder `name`: its GAN step, and reconstruction grids."""
  autoencoder = autoencoder_of(ae_config)
  discriminator = build_gan(ae_config.discriminator).discriminator
  tx = optimizers.from_config(ae_config.optimizer)
  image_shape = grid_images.shape[1:]
  reconstruct = jax.jit(
      lambda params: gan_steps.to_uint8(autoencoder.apply(
          {'params': params}, gan_steps.to_model_range(jnp.asarray(grid_images)))),
      out_shardings=sharding.replicated(mesh))

  def images(state) -> dict[str, np.ndarray]:
    # Each original with its reconstruction on its right.
    pairs = np.concatenate([grid_images, np.asarray(reconstruct(state.g_params))], axis=2)
    return {'reconstructions': loop.image_grid(pairs, columns=4)}

  return loop.Job(
      name=f'autoencoder {name}',
      init=lambda key: autoencoder_gan.init_state(autoencoder, discriminator, tx, image_shape, key),
      train_step=autoencoder_gan.make_train_step(
          autoencoder, discriminator, tx, reconstruction_loss=ae_config.reconstruction_loss,
          reconstruction_weight=ae_config.reconstruction_weight,
          adversarial_weight=ae_config.adversarial_weight, skip_nonfinite=skip_nonfinite),
      images=images,
      metadata={'autoencoder': ae_config.to_dict(), 'image_shape': list(image_shape)})


def train_autoencoder(name: str, ae_config: ml_collections.ConfigDict,
                      settings: loop.LoopSettings, reals: np.ndarray, grid_images: np.ndarray,
                      run: RunDir, mesh: Mesh) -> dict:
  """Trains (or resumes) autoencoder `name` on uint8 `reals`; returns its parameters."""
  job = autoencoder_job(name, ae_config, grid_images, settings.skip_nonfinite_updates, mesh)
  return loop.train(job, settings, reals, run, mesh).state.g_params


@functools.cache
def _reconstruct_fn(autoencoder: AutoEncoder):
  """Compiled once per autoencoder architecture (modules compare by their fields)."""
  return jax.jit(lambda params, images: gan_steps.to_uint8(
      autoencoder.apply({'params': params}, gan_steps.to_model_range(images))))


def reconstruct(autoencoder: AutoEncoder, params: dict, images_uint8: np.ndarray) -> np.ndarray:
  """The autoencoder's reconstructions of uint8 images, as uint8 images."""
  apply, params = _reconstruct_fn(autoencoder), jax.device_get(params)
  parts = [np.asarray(apply(params, images_uint8[start:start + RECONSTRUCTION_BATCH]))
           for start in range(0, len(images_uint8), RECONSTRUCTION_BATCH)]
  return np.concatenate(parts) if parts else images_uint8[:0]


@functools.cache
def _error_fn(autoencoder: AutoEncoder):
  return jax.jit(lambda params, images: jnp.abs(
      autoencoder.apply({'params': params}, images) - images).mean(axis=(1, 2, 3)))


def mean_reconstruction_error(autoencoder: AutoEncoder, params: dict,
                              images_uint8: np.ndarray) -> float:
  """Mean absolute reconstruction error of uint8 images, in [-1, 1] units."""
  error = _error_fn(autoencoder)
  parts = [error(params, gan_steps.to_model_range(jnp.asarray(
      images_uint8[start:start + RECONSTRUCTION_BATCH])))
           for start in range(0, len(images_uint8), RECONSTRUCTION_BATCH)]
  return float(np.mean(np.concatenate(parts)))


def restore_autoencoder(name: str, ae_config: ml_collections.ConfigDict,
                        image_shape: tuple[int, ...], run: RunDir,
                        mesh: Mesh) -> tuple[dict, int]:
  """(parameters, step) of autoencoder `name`'s latest checkpoint, without training."""
  steps = run.steps()
  if not steps:
    raise checkpoints.CheckpointNotFoundError(
        f'No checkpoint of autoencoder {name!r} in {run.checkpoints}: run the study first.')
  job = autoencoder_job(name, ae_config, np.zeros((1, *image_shape), np.uint8), False, mesh)
  like = sharding.abstract_replicated(job.init, mesh)
  (state,) = checkpoints.restore_states(run, steps[-1:], like)
  return state.g_params, steps[-1]
