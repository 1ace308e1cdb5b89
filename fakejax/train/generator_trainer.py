"""Training one generator of a non-adversarial family (VAE, diffusion, flow) through the loop.

A config's `generators.<name>` group names the `architecture` (a key of
models.GENERATORS, whose family picks the step module below), its widths, optimiser,
batch size, epochs and EMA decay, and the family's own `options`.
"""

import dataclasses
import types

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh

from fakejax import errors, sharding
from fakejax.models import GENERATORS, build_generator
from fakejax.train import (checkpoints, diffusion_steps, flow_steps, gan_steps, generator_state,
                           loop, optimizers, replicas, vae_steps)
from fakejax.workdir import RunDir

# A family -> the module of its steps: model_options, latent_dim, init_params, make_train_step,
# make_generate and OPTIONS_SCHEMA.
FAMILY_STEPS: dict[str, types.ModuleType] = {'vae': vae_steps, 'diffusion': diffusion_steps,
                                             'flow': flow_steps}
NUM_SAMPLES_IN_GRID = 64


@dataclasses.dataclass(frozen=True)
class Generator:
  """A generator a config describes: its model, and how it trains and samples."""
  family: str
  model: object  # A flax.linen Module.
  steps: types.ModuleType  # FAMILY_STEPS[family].
  options: ml_collections.ConfigDict
  image_shape: tuple[int, int, int]

  @property
  def latent_dim(self) -> int:
    return self.steps.latent_dim(self.options, self.image_shape)

  def generate(self):
    """`generate(variables, latents) -> images in [-1, 1]`, one function per generator."""
    return self.steps.make_generate(self.model, self.options, self.image_shape)


def generator_of(gen_config: ml_collections.ConfigDict,
                 image_shape: tuple[int, int, int]) -> Generator:
  family = GENERATORS[gen_config.architecture].family
  steps = FAMILY_STEPS[family]
  model = build_generator(gen_config.architecture, features=gen_config.features,
                          **steps.model_options(gen_config.options))
  return Generator(family=family, model=model, steps=steps, options=gen_config.options,
                   image_shape=tuple(image_shape))


def init_state(generator: Generator, tx, key: jax.Array) -> generator_state.GeneratorState:
  init_key, train_key = jax.random.split(key)
  params = generator.steps.init_params(generator.model, init_key, generator.image_shape)
  return generator_state.init_state(params, tx, train_key)


def make_sample_grid(generator: Generator, seed: int, mesh: Mesh):
  """Jitted: state -> uint8 samples from fixed latents, for progress grids."""
  latents = jax.random.normal(jax.random.PRNGKey(seed),
                              (NUM_SAMPLES_IN_GRID, generator.latent_dim))
  generate = generator.generate()
  return jax.jit(lambda state: gan_steps.to_uint8(
      generate(generator_state.sampling_variables(state), latents)),
                 out_shardings=sharding.replicated(mesh))


def generator_job(name: str, gen_config: ml_collections.ConfigDict,
                  image_shape: tuple[int, int, int], seed: int, skip_nonfinite: bool,
                  mesh: Mesh) -> tuple[loop.Job, Generator]:
  """The loop's job for generator `name`: its family's step, and sample grids."""
  generator = generator_of(gen_config, image_shape)
  tx = optimizers.from_config(gen_config.optimizer)
  sample_grid = make_sample_grid(generator, seed, mesh)
  job = loop.Job(
      name=name,
      init=lambda key: init_state(generator, tx, key),
      train_step=generator.steps.make_train_step(generator.model, tx, gen_config.options,
                                                 gen_config.ema_decay, skip_nonfinite),
      images=lambda state: {'samples': loop.image_grid(np.asarray(sample_grid(state)))},
      metadata={'generator': gen_config.to_dict(), 'family': generator.family,
                'image_shape': list(image_shape)})
  return job, generator


@dataclasses.dataclass
class GeneratorRun:
  """A trained generator: what samples it, and how its training went (as a GanRun)."""
  name: str
  generator: Generator
  sampling_variables: dict  # Of one checkpoint: the averaged parameters.
  num_steps: int
  resumed_from_step: int
  run: RunDir

  @property
  def generate(self):
    return self.generator.generate()

  @property
  def latent_dim(self) -> int:
    return self.generator.latent_dim

  @property
  def family(self) -> str:
    return self.generator.family

  def replica(self, k: int) -> 'GeneratorRun':
    """Replica `k` of a run of several seeds."""
    return dataclasses.replace(self, sampling_variables=replicas.replica(
        self.sampling_variables, k))


def check_decay_covers_training(name: str, gen_config: ml_collections.ConfigDict,
                                num_examples: int, num_steps: int) -> None:
  """A learning-rate decay that ends before training would leave its last steps at 0."""
  decay_steps = gen_config.optimizer.decay_steps
  if 0 < decay_steps < num_steps:
    raise errors.UserError(
        f"Config key 'generators.{name}.optimizer.decay_steps' is {decay_steps}, but "
        f'{name} trains {num_steps} steps ({gen_config.num_epochs} epochs of {num_examples} '
        f'images at batch {gen_config.batch_size}): its learning rate would be 0 for the '
        f'last {num_steps - decay_steps}. Set it to {num_steps}, or 0 for a constant rate.')


def train_generator(name: str, gen_config: ml_collections.ConfigDict,
                    settings: loop.LoopSettings, train_images: np.ndarray, run: RunDir,
                    mesh: Mesh) -> GeneratorRun:
  """Trains (or resumes) generator `name` on uint8 `train_images`."""
  settings = settings.for_model(gen_config)
  _, num_steps = loop.run_length(settings, train_images)
  check_decay_covers_training(name, gen_config, len(train_images), num_steps)
  job, generator = generator_job(name, gen_config, train_images.shape[1:], settings.seed,
                                 settings.skip_nonfinite_updates, mesh)
  result = loop.train(job, settings, train_images, run, mesh)
  return GeneratorRun(name=name, generator=generator,
                      sampling_variables=generator_state.sampling_variables(result.state),
                      num_steps=result.num_steps, resumed_from_step=result.resumed_from_step,
                      run=run)


def restore_generator(name: str, gen_config: ml_collections.ConfigDict,
                      image_shape: tuple[int, int, int], run: RunDir, mesh: Mesh,
                      step: int | None = None, replica: int | None = None) -> GeneratorRun:
  """Generator `name` at checkpoint `step` (default: the latest), without training; of a
  run of several seeds, replica number `replica`."""
  steps = run.steps()
  if not steps:
    raise checkpoints.CheckpointNotFoundError(
        f'No checkpoint of generator {name!r} in {run.checkpoints}: train it first.')
  step = steps[-1] if step is None else step
  job, generator = generator_job(name, gen_config, image_shape, 0, False, mesh)
  (state,) = checkpoints.restore_replica_states(
      run, [step], sharding.abstract_replicated(job.init, mesh), replica, name)
  return GeneratorRun(name=name, generator=generator,
                      sampling_variables=generator_state.sampling_variables(state),
                      num_steps=step, resumed_from_step=step, run=run)
