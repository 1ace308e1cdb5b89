"""Training one GAN of a config: its models, optimiser and sample grids, through the loop."""

import dataclasses

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh

from fakejax import sharding
from fakejax.models import GanModels, build_gan
from fakejax.train import gan_state, gan_steps, loop, optimizers, replicas, wasserstein_steps
from fakejax.workdir import RunDir

NUM_SAMPLES_IN_GRID = 64


@dataclasses.dataclass
class GanRun:
  """A trained GAN and how its training went."""
  name: str
  models: GanModels
  state: gan_state.GanState
  latent_dim: int
  resumed_from_step: int  # 0 when training started from scratch.
  num_steps: int
  run: RunDir

  @property
  def generate(self):
    """`generate(variables, latents) -> images in [-1, 1]`."""
    return gan_steps.make_generate(self.models)

  @property
  def sampling_variables(self) -> dict:
    return gan_state.generator_variables(self.state)

  @property
  def family(self) -> str:
    return 'gan'

  def replica(self, k: int) -> 'GanRun':
    """Replica `k` of a run of several seeds."""
    return dataclasses.replace(self, state=replicas.replica(self.state, k))


def checkpoint_metadata(gan_config: ml_collections.ConfigDict, models: GanModels) -> dict:
  """What a tool needs to use the checkpoint as a detector without the training config."""
  return {
      'architecture': gan_config.architecture,
      'latent_dim': gan_config.latent_dim,
      'compute_dtype': gan_config.compute_dtype,
      'optimizer': gan_config.optimizer.to_dict(),
      # Images are read as uint8, converted to this shape (grayscale for one channel,
      # bilinear resize), and scaled to [-1, 1] inside the model's scoring function.
      'preprocessing': {'image_shape': list(models.image_shape), 'resize': 'bilinear',
                        'value_range': [-1.0, 1.0]},
  }


# A GanSpec's objective -> the module of its train step. 'non_saturating': D's
# cross-entropy and G's -log D(G(z)) (Goodfellow et al. 2014); 'wasserstein_gp': a critic
# with a gradient penalty, several critic updates per generator update (Gulrajani et al.
# 2017).
OBJECTIVE_STEPS = {'non_saturating': gan_steps, 'wasserstein_gp': wasserstein_steps}


def make_train_step(models: GanModels, tx, latent_dim: int, skip_nonfinite: bool = False):
  """The pure train step of the models' objective."""
  return OBJECTIVE_STEPS[models.objective].make_train_step(models, tx, latent_dim,
                                                           skip_nonfinite)


def init_sharded_state(models: GanModels, tx, latent_dim: int, seed: int, mesh: Mesh):
  init = jax.jit(lambda key: gan_state.init_state(models, tx, latent_dim, key),
                 out_shardings=sharding.replicated(mesh))
  return init(jax.random.PRNGKey(seed))


def make_sample_grid(models: GanModels, latent_dim: int, seed: int, mesh: Mesh):
  """Jitted: generator variables -> uint8 samples from fixed latents, for progress grids."""
  latents = jax.random.normal(jax.random.PRNGKey(seed), (NUM_SAMPLES_IN_GRID, latent_dim))
  generate = gan_steps.make_generate(models)
  return jax.jit(lambda variables: gan_steps.to_uint8(generate(variables, latents)),
                 out_shardings=sharding.replicated(mesh))


def gan_job(name: str, gan_config: ml_collections.ConfigDict, seed: int, skip_nonfinite: bool,
            mesh: Mesh) -> tuple[loop.Job, GanModels]:
  """The loop's job for GAN `name` of a config's `gans` group."""
  models = build_gan(gan_config.architecture, gan_config.compute_dtype)
  tx = optimizers.from_config(gan_config.optimizer)
  sample_grid = make_sample_grid(models, gan_config.latent_dim, seed, mesh)

  def images(state) -> dict[str, np.ndarray]:
    samples = np.asarray(sample_grid(gan_state.generator_variables(state)))
    return {'samples': loop.image_grid(samples)}

  job = loop.Job(
      name=name,
      init=lambda key: gan_state.init_state(models, tx, gan_config.latent_dim, key),
      train_step=make_train_step(models, tx, gan_config.latent_dim, skip_nonfinite),
      images=images,
      metadata=checkpoint_metadata(gan_config, models))
  return job, models


def train_gan(name: str, gan_config: ml_collections.ConfigDict, settings: loop.LoopSettings,
              train_images: np.ndarray, run: RunDir, mesh: Mesh) -> GanRun:
  """Trains (or resumes) GAN `name` on uint8 `train_images`."""
  job, models = gan_job(name, gan_config, settings.seed, settings.skip_nonfinite_updates, mesh)
  result = loop.train(job, settings, train_images, run, mesh)
  return GanRun(name=name, models=models, state=result.state, latent_dim=gan_config.latent_dim,
                resumed_from_step=result.resumed_from_step, num_steps=result.num_steps,
                run=run)
