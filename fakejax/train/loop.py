"""The one training loop: restore or initialise, step with metrics, images and checkpoints.

Every trained model (GAN, autoencoder-GAN, classifier) is a `Job`: a pure init function,
a pure train step, and optionally images for TensorBoard. The loop owns the rest:
sharding, the grain data iterator, Orbax checkpoints (with the iterator's position),
progress logs with steps/s and ETA, non-finite checks and preemption, and several seeds'
replicas trained as one step (train/replicas.py).
"""

import dataclasses
import pathlib
import signal
from collections.abc import Callable
from typing import Any

import grain
import jax
import ml_collections
import numpy as np
from absl import logging
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from fakejax import errors, runtime, sharding
from fakejax.data import pipeline
from fakejax.train import checkpoints, replicas
from fakejax.workdir import RunDir

Batch = Any  # uint8 images [B, ...], or a dict of arrays with a leading batch axis.


@dataclasses.dataclass(frozen=True)
class LoopSettings:
  """How long to train and how often to log, draw images, check for preemption and save."""
  seed: int
  seeds: tuple[int, ...]  # Of the replicas trained together; empty: the one `seed`.
  batch_size: int
  num_epochs: int
  log_every_steps: int
  checkpoint_every_steps: int
  sample_every_steps: int
  preemption_check_every_steps: int
  skip_nonfinite_updates: bool
  max_checkpoints_to_keep: int

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict, **overrides) -> 'LoopSettings':
    """The settings of a config's top-level keys, some replaced by `overrides`."""
    values = {field.name: config[field.name] for field in dataclasses.fields(cls)
              if field.name not in overrides}
    return cls(**values, **overrides)

  def for_model(self, model_config: ml_collections.ConfigDict) -> 'LoopSettings':
    """These settings with a model's own `batch_size` and `num_epochs` (its config group)."""
    return dataclasses.replace(self, batch_size=model_config.batch_size,
                               num_epochs=model_config.num_epochs)

  def one_seed(self) -> 'LoopSettings':
    """These settings for the one `seed`, whatever `seeds` holds."""
    return dataclasses.replace(self, seeds=())


@dataclasses.dataclass
class Job:
  """What differs between the trained models."""
  name: str
  init: Callable[[jax.Array], Any]  # PRNG key -> state; pure.
  train_step: Callable[[Any, Batch], tuple[Any, dict]]  # Pure; metrics hold 'skipped_update'.
  # state -> named uint8 image grids [H, W, C] for TensorBoard (samples, reconstructions).
  images: Callable[[Any], dict[str, np.ndarray]] | None = None
  metadata: dict = dataclasses.field(default_factory=dict)  # Saved with every checkpoint.
  # (local batch, np.random.Generator) -> local batch, in the input pipeline (augmentation).
  augment: Callable[[Batch, np.random.Generator], Batch] | None = None
  # (state, epoch) -> (state, metrics, stop early), on the host after each epoch's last
  # step: validation, learning-rate decay, early stopping. Every process must decide alike.
  on_epoch_end: Callable[[Any, int], tuple[Any, dict, bool]] | None = None
  # state -> whether training already ended early, a boolean array (traceable: replicas
  # that stopped are frozen in the step); a resumed run that stopped ends at once.
  stopped_early: Callable[[Any], Any] | None = None
  # Fresh state -> the state to start from, on the host (pretrained weights); a restored
  # checkpoint replaces its result.
  start_from: Callable[[Any], Any] | None = None


@dataclasses.dataclass
class TrainResult:
  state: Any
  resumed_from_step: int  # 0 when training started from scratch.
  num_steps: int
  run: RunDir


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


def make_writer(logdir: pathlib.Path):
  """clu's TensorBoard writer on process 0; the others only log."""
  # clu's writers import TensorFlow (about 10 s on 2 cores), so they load only when a run
  # writes: models, steps, tools and `predict` start without it (and work on accelerator
  # images that lack it). Kept off the accelerators before it loads.
  runtime.hide_accelerators_from_tensorflow()
  from clu import metric_writers  # pylint: disable=g-import-not-at-top
  return metric_writers.create_default_writer(logdir, just_logging=jax.process_index() > 0)


def make_progress_report(num_steps: int, writer, every_steps: int):
  """Logs steps/s and the ETA every `every_steps` steps, and writes steps/s to `writer`."""
  from clu import periodic_actions  # pylint: disable=g-import-not-at-top  (as make_writer)
  return periodic_actions.ReportProgress(num_train_steps=num_steps, writer=writer,
                                         every_steps=every_steps)


def fresh_state(job: Job, seed: int, mesh: Mesh):
  """The job's initial state (from its pretrained start, if any), replicated over the mesh."""
  state = jax.jit(job.init, out_shardings=sharding.replicated(mesh))(jax.random.PRNGKey(seed))
  return state if job.start_from is None else job.start_from(state)


def restore_or_init(manager, like_state, data_iterator: grain.DatasetIterator,
                    init: Callable[[], Any]):
  """Continues from the newest intact checkpoint if there is one, else from `init()`;
  returns (state, step). `like_state` may be abstract: a resumed run initialises nothing."""
  restored = checkpoints.restore_latest_good(manager, like_state)
  if restored is None:
    return init(), 0
  state, data_state, step = restored
  data_iterator.set_state(data_state)
  logging.info('Resumed from the checkpoint of step %d in %s.', step, manager.directory)
  return state, step


NON_FINITE_ADVICE = (
    'The last checkpoint written holds the last finite state: lower the learning rate (or '
    'set --config.skip_nonfinite_updates=True) and run the same command again to resume.')


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
    raise errors.NonFiniteTraining(
        f'Every update of steps {step - len(pending) + 1}-{step} was non-finite and skipped; '
        f'training stopped. {NON_FINITE_ADVICE}')
  means = {name: float(np.mean(v[~skipped])) for name, v in values.items()}
  if skip_nonfinite:
    means['skipped_updates'] = float(skipped.sum())
    if skipped.any():
      logging.warning('%d non-finite updates skipped up to step %d.', skipped.sum(), step)
  bad = sorted(name for name, value in means.items() if not np.isfinite(value))
  if bad:
    raise errors.NonFiniteTraining(
        f'Non-finite {", ".join(bad)} at step {step} ({means}); training stopped. '
        f'{NON_FINITE_ADVICE}')
  writer.write_scalars(step, means)
  logging.info('step %d: %s', step, ', '.join(f'{k}={v:.4f}' for k, v in sorted(means.items())))
  pending.clear()


def image_grid(images_uint8: np.ndarray, columns: int = 8, fill: int = 0) -> np.ndarray:
  """[N, H, W, C] -> one [rows * H, columns * W, C] image; empty places hold `fill`."""
  n, h, w, c = images_uint8.shape
  rows = -(-n // columns)
  padded = np.full((rows * columns, h, w, c), fill, images_uint8.dtype)
  padded[:n] = images_uint8
  return padded.reshape(rows, columns, h, w, c).transpose(0, 2, 1, 3, 4).reshape(
      rows * h, columns * w, c)


def data_batches(job: Job, settings: LoopSettings, train_data: Batch, seed: int):
  """The grain iterator of this process's batches, in the order of `seed`."""
  return pipeline.train_batches(
      train_data, seed=seed, num_epochs=settings.num_epochs, batch_size=settings.batch_size,
      process_index=jax.process_index(), process_count=jax.process_count(),
      augment=job.augment)


def with_replicas(job: Job, settings: LoopSettings, train_data: Batch, mesh: Mesh):
  """(job, settings, data iterator) for the settings' seeds: one seed trains `job` as it is;
  K > 1 seeds train K replicas over stacked states (train/replicas.py)."""
  seeds = replicas.seeds_of(settings.seed, settings.seeds)
  if len(seeds) == 1:
    settings = dataclasses.replace(settings, seed=seeds[0])
    return job, settings, data_batches(job, settings, train_data, seeds[0])
  job = replicas.replicated_job(job, seeds, replicas.form_for(mesh))
  data = replicas.ReplicaBatches([data_batches(job, settings, train_data, s) for s in seeds])
  return job, settings, data


def run_length(settings: LoopSettings, train_data: Batch) -> tuple[int, int]:
  """(steps per epoch, steps in all) of training on `train_data` with these settings."""
  steps_per_epoch = pipeline.steps_per_epoch(pipeline.count_examples(train_data),
                                             settings.batch_size)
  return steps_per_epoch, steps_per_epoch * settings.num_epochs


def train(job: Job, settings: LoopSettings, train_data: Batch, run: RunDir,
          mesh: Mesh) -> TrainResult:
  """Trains (or resumes) `job` on `train_data` (arrays with a leading example axis)."""
  steps_per_epoch, num_steps = run_length(settings, train_data)
  job, settings, data_iterator = with_replicas(job, settings, train_data, mesh)
  like_state = sharding.abstract_replicated(job.init, mesh)
  # Room for the kept checkpoints plus the one being written, before any compute.
  checkpoints.check_workdir_writable(
      run.path, checkpoints.state_bytes(like_state) * (settings.max_checkpoints_to_keep + 1))
  # Closing the manager ends its background threads before the run (and its peers) exit.
  with checkpoints.checkpoint_manager(
      run.checkpoints, max_to_keep=settings.max_checkpoints_to_keep,
      save_interval_steps=settings.checkpoint_every_steps) as manager:
    checkpoints.check_seeds(manager, replicas.seeds_of(settings.seed, settings.seeds))
    state, start_step = restore_or_init(manager, like_state, data_iterator,
                                        lambda: fresh_state(job, settings.seed, mesh))
    if job.stopped_early is not None and bool(jax.device_get(job.stopped_early(state))):
      logging.info('%s stopped early at step %d; not trained further.', job.name, start_step)
      return TrainResult(state=state, resumed_from_step=start_step, num_steps=start_step,
                         run=run)
    logging.info('%s: %d training examples, %d steps of %d (global batch), from step %d.',
                 job.name, pipeline.count_examples(train_data), num_steps, settings.batch_size,
                 start_step)
    steps = _Steps(job=job, settings=settings, mesh=mesh, manager=manager,
                   writer=make_writer(run.tensorboard), data_iterator=data_iterator,
                   steps_per_epoch=steps_per_epoch, num_steps=num_steps)
    try:
      state, num_steps = steps.run(state, start_step)
    except errors.NonFiniteTraining as error:
      raise errors.NonFiniteTraining(f'{job.name} ({run.path}): {error}') from None
  return TrainResult(state=state, resumed_from_step=start_step, num_steps=num_steps, run=run)


@dataclasses.dataclass
class _Steps:
  """The step loop of one `train` call: steps, epoch ends, metrics, images, checkpoints."""
  job: Job
  settings: LoopSettings
  mesh: Mesh
  manager: Any
  writer: Any
  data_iterator: grain.DatasetIterator
  steps_per_epoch: int
  num_steps: int

  def write_images(self, step: int, state) -> None:
    if self.job.images is not None:
      self.writer.write_images(step, {name: grid[None]
                                      for name, grid in self.job.images(state).items()})

  def end_epoch(self, step: int, state) -> tuple[Any, bool]:
    """The job's epoch-end hook after an epoch's last step; whether to stop early."""
    if self.job.on_epoch_end is None or step % self.steps_per_epoch:
      return state, False
    epoch = step // self.steps_per_epoch
    state, epoch_metrics, stop_early = self.job.on_epoch_end(state, epoch)
    self.writer.write_scalars(step, epoch_metrics)
    logging.info('%s, end of epoch %d: %s', self.job.name, epoch,
                 ', '.join(f'{k}={v:.4f}' for k, v in sorted(epoch_metrics.items())))
    return state, stop_early

  def run(self, state, start_step: int) -> tuple[Any, int]:
    """Steps from `start_step` to the end (or an early stop); returns (state, last step)."""
    settings, mesh, num_steps = self.settings, self.mesh, self.num_steps
    batch_axis = int(len(settings.seeds) > 1)  # Stacked replicas' batches: [K, B, ...].
    train_step = jax.jit(self.job.train_step,
                         in_shardings=(sharding.replicated(mesh),
                                       sharding.batch_sharded(mesh, batch_axis)),
                         out_shardings=sharding.replicated(mesh), donate_argnums=0)
    progress = make_progress_report(num_steps, self.writer, settings.log_every_steps)
    pending_metrics = []
    with PreemptionGuard(settings.preemption_check_every_steps) as preemption:
      for step in range(start_step + 1, num_steps + 1):
        batch = sharding.global_batch(mesh, next(self.data_iterator), batch_axis)
        state, metrics = train_step(state, batch)
        pending_metrics.append(metrics)
        progress(step)
        state, stop_early = self.end_epoch(step, state)
        is_last = step == num_steps or stop_early
        stop = preemption.stop_after(step)
        checkpoint_due = is_last or stop or step % settings.checkpoint_every_steps == 0
        if checkpoint_due or step % settings.log_every_steps == 0:
          # Checked before saving: a checkpoint never holds a non-finite state.
          flush_metrics(self.writer, step, pending_metrics, settings.skip_nonfinite_updates)
        if is_last or step % settings.sample_every_steps == 0:
          self.write_images(step, state)
        if checkpoint_due:
          checkpoints.save(self.manager, step, state, self.data_iterator.get_state(),
                           force=is_last or stop, metadata=self.job.metadata)
        if stop:
          self.finish()
          raise Preempted(self.job.name, step)
        if stop_early:
          logging.info('%s stopped early after step %d.', self.job.name, step)
          num_steps = step
          break
    self.finish()
    return state, num_steps

  def finish(self) -> None:
    self.manager.wait_until_finished()
    self.writer.flush()
