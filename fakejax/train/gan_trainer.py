"""Training one GAN: build, restore or initialise, loop with metrics, samples and checkpoints."""

import dataclasses
import pathlib
import signal

import grain
import jax
import ml_collections
import numpy as np
from absl import logging
from clu import metric_writers, periodic_actions
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from fakejax import sharding
from fakejax.data import pipeline
from fakejax.models import GanModels, build_gan
from fakejax.train import checkpoints, gan_state, gan_steps

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
  workdir: pathlib.Path


def make_writer(logdir: pathlib.Path) -> metric_writers.MetricWriter:
  """TensorBoard writer on process 0; the others only log."""
  return metric_writers.create_default_writer(logdir, just_logging=jax.process_index() > 0)


def checkpoint_metadata(gan_config: ml_collections.ConfigDict, models: GanModels) -> dict:
  """What a tool needs to use the checkpoint as a detector without the training config."""
  return {
      'architecture': gan_config.architecture,
      'latent_dim': gan_config.latent_dim,
      'optimizer': gan_config.optimizer.to_dict(),
      # Images are read as uint8, converted to this shape (grayscale for one channel,
      # bilinear resize), and scaled to [-1, 1] inside the model's scoring function.
      'preprocessing': {'image_shape': list(models.image_shape), 'resize': 'bilinear',
                        'value_range': [-1.0, 1.0]},
  }


def init_sharded_state(models: GanModels, tx, latent_dim: int, seed: int, mesh: Mesh):
  init = jax.jit(lambda key: gan_state.init_state(models, tx, latent_dim, key),
                 out_shardings=sharding.replicated(mesh))
  return init(jax.random.PRNGKey(seed))


class Preempted(Exception):
  """Training stopped on SIGTERM after saving a checkpoint; the same command resumes."""

  def __init__(self, name: str, step: int):
    super().__init__(f'{name} stopped by SIGTERM at step {step}; its checkpoint is saved. '
                     'Run the same command to resume.')
    self.step = step


class PreemptionGuard:
  """Turns SIGTERM (the preemption signal) into a stop that every process agrees on.

  One process stops after the step it is in. Processes of a multi-host run may see the
  signal steps apart, and one that stopped alone would leave the others waiting in a
  collective: so every `check_every_steps` steps they all-gather their flags, and all
  stop after the same step if any of them was signalled.
  """

  def __init__(self, check_every_steps: int):
    self.check_every_steps = check_every_steps
    self.requested = False
    self._previous = None

  def _handle(self, signum, frame) -> None:
    del signum, frame
    logging.warning('SIGTERM received: saving a checkpoint, then stopping.')
    self.requested = True

  def stop_after(self, step: int) -> bool:
    """Whether to save and stop after `step`; the same answer on every process."""
    if jax.process_count() == 1:
      return self.requested
    if step % self.check_every_steps:
      return False
    return bool(np.any(multihost_utils.process_allgather(np.asarray(self.requested))))

  def __enter__(self) -> 'PreemptionGuard':
    self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    signal.signal(signal.SIGTERM, self._previous)


def restore_or_init(manager, state, data_iterator: grain.DatasetIterator):
  """Continues from the newest intact checkpoint if there is one; returns (state, step)."""
  restored = checkpoints.restore_latest_good(manager, state)
  if restored is None:
    return state, 0
  state, data_state, step = restored
  data_iterator.set_state(data_state)
  logging.info('Resumed from the checkpoint of step %d in %s.', step, manager.directory)
  return state, step


def flush_metrics(writer, step: int, pending: list[dict], skip_nonfinite: bool = False) -> None:
  """Writes the mean of the metrics since the last flush; stops on non-finite values.

  With `skip_nonfinite`, skipped updates are counted and left out of the means; training
  stops only when every update since the last flush was skipped.
  """
  if not pending:
    return
  values = jax.device_get({name: np.asarray([m[name] for m in pending]) for name in pending[0]})
  skipped = values.pop('skipped_update') > 0
  if skipped.all():
    raise FloatingPointError(
        f'Every update of steps {step - len(pending) + 1}-{step} was non-finite and skipped; '
        'training stopped, the last checkpoint written holds the last finite state.')
  means = {name: float(np.mean(v[~skipped])) for name, v in values.items()}
  if skip_nonfinite:
    means['skipped_updates'] = float(skipped.sum())
    if skipped.any():
      logging.warning('%d non-finite updates skipped up to step %d.', skipped.sum(), step)
  bad = sorted(name for name, value in means.items() if not np.isfinite(value))
  if bad:
    raise FloatingPointError(
        f'Non-finite {", ".join(bad)} at step {step} ({means}); training stopped, the last '
        'checkpoint written holds the last finite state.')
  writer.write_scalars(step, means)
  logging.info('step %d: %s', step, ', '.join(f'{k}={v:.4f}' for k, v in sorted(means.items())))
  pending.clear()


def make_sample_grid(models: GanModels, latent_dim: int, seed: int, mesh: Mesh):
  """Jitted: generator variables -> uint8 samples from fixed latents, for progress grids."""
  latents = jax.random.normal(jax.random.PRNGKey(seed), (NUM_SAMPLES_IN_GRID, latent_dim))
  generate = gan_steps.make_generate(models)
  return jax.jit(lambda variables: gan_steps.to_uint8(generate(variables, latents)),
                 out_shardings=sharding.replicated(mesh))


def image_grid(images_uint8: np.ndarray, columns: int = 8) -> np.ndarray:
  """[N, H, W, C] -> one [rows * H, columns * W, C] image."""
  n, h, w, c = images_uint8.shape
  rows = -(-n // columns)
  padded = np.zeros((rows * columns, h, w, c), images_uint8.dtype)
  padded[:n] = images_uint8
  return padded.reshape(rows, columns, h, w, c).transpose(0, 2, 1, 3, 4).reshape(
      rows * h, columns * w, c)


def train_gan(config: ml_collections.ConfigDict, name: str, train_images: np.ndarray,
              workdir: pathlib.Path, mesh: Mesh) -> GanRun:
  """Trains (or resumes) the GAN `config.gans[name]` on uint8 `train_images`."""
  gan_config = config.gans[name]
  models = build_gan(gan_config.architecture)
  tx = gan_state.build_optimizer(gan_config.optimizer)
  run_dir = workdir / name
  num_steps = pipeline.steps_per_epoch(len(train_images), config.batch_size) * config.num_epochs

  state = init_sharded_state(models, tx, gan_config.latent_dim, config.seed, mesh)
  # Room for the kept checkpoints plus the one being written, before any compute.
  checkpoints.check_workdir_writable(
      run_dir, checkpoints.state_bytes(state) * (config.max_checkpoints_to_keep + 1))
  data_iterator = pipeline.train_batches(
      train_images, seed=config.seed, num_epochs=config.num_epochs,
      batch_size=config.batch_size, process_index=jax.process_index(),
      process_count=jax.process_count())
  manager = checkpoints.checkpoint_manager(
      run_dir / 'checkpoints', max_to_keep=config.max_checkpoints_to_keep,
      save_interval_steps=config.checkpoint_every_steps)
  state, start_step = restore_or_init(manager, state, data_iterator)
  writer = make_writer(run_dir / 'tensorboard')
  train_step = jax.jit(
      gan_steps.make_train_step(models, tx, gan_config.latent_dim,
                                config.skip_nonfinite_updates),
      in_shardings=(sharding.replicated(mesh), sharding.batch_sharded(mesh)),
      out_shardings=sharding.replicated(mesh), donate_argnums=0)
  sample_grid = make_sample_grid(models, gan_config.latent_dim, config.seed, mesh)

  def write_samples(step: int, state) -> None:
    samples = np.asarray(sample_grid(gan_state.generator_variables(state)))
    writer.write_images(step, {'samples': image_grid(samples)[None]})

  logging.info('%s: %d train images, %d steps of %d (global batch), from step %d.', name,
               len(train_images), num_steps, config.batch_size, start_step)
  progress = periodic_actions.ReportProgress(
      num_train_steps=num_steps, writer=writer, every_steps=config.log_every_steps)
  pending_metrics = []
  with PreemptionGuard(config.preemption_check_every_steps) as preemption:
    for step in range(start_step + 1, num_steps + 1):
      batch = sharding.global_batch(mesh, next(data_iterator))
      state, metrics = train_step(state, batch)
      pending_metrics.append(metrics)
      progress(step)
      is_last = step == num_steps
      stop = preemption.stop_after(step)
      checkpoint_due = is_last or stop or step % config.checkpoint_every_steps == 0
      if checkpoint_due or step % config.log_every_steps == 0:
        # Checked before saving: a checkpoint never holds a non-finite state.
        flush_metrics(writer, step, pending_metrics, config.skip_nonfinite_updates)
      if is_last or step % config.sample_every_steps == 0:
        write_samples(step, state)
      if checkpoint_due:
        checkpoints.save(manager, step, state, data_iterator.get_state(), force=is_last or stop,
                         metadata=checkpoint_metadata(gan_config, models))
      if stop:
        manager.wait_until_finished()
        writer.flush()
        raise Preempted(name, step)
  manager.wait_until_finished()
  writer.flush()
  return GanRun(name=name, models=models, state=state, latent_dim=gan_config.latent_dim,
                resumed_from_step=start_step, num_steps=num_steps, workdir=run_dir)
