"""Seeds as an axis: K replicas of one job, trained as one compiled step over stacked states.

Replica k starts from seed k's initialisation, draws seed k's noise and reads seed k's
data order, so its parameters are those of the single-seed run with seed k (to float
rounding). Every leaf of the state, every batch and every metric gains a leading axis [K].

How the replicas' steps run depends on the platform, as scoring's does: on GPU and TPU the
step is vmapped (one batched program fills a device that one small model leaves idle); on
XLA's CPU backend vmap over weights turns each convolution into a grouped one that runs
4-5x slower (measured), so the replicas' steps are unrolled one after another inside the
same compiled program.

Jobs with epoch-end hooks (a classifier's validation, learning-rate decay and early stop)
run them per replica on the host; a replica that stopped is frozen inside the step, so it
keeps the state its single-seed run ended with while the others train on.
"""

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

FORMS = ('vmap', 'unrolled')


def seeds_of(seed: int, seeds: Sequence[int]) -> tuple[int, ...]:
  """The replicas' seeds: `seeds`, or the one `seed` when `seeds` is empty."""
  return tuple(int(s) for s in seeds) or (int(seed),)


def stack(trees: Sequence[Any]) -> Any:
  """Trees of the same structure -> one tree whose leaves gain a leading axis [K]."""
  return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def replica(tree: Any, k: int) -> Any:
  """Replica `k` of a stacked tree."""
  return jax.tree.map(lambda leaf: leaf[k], tree)


def abstract_stacked(like: Any, num_replicas: int) -> Any:
  """Abstract leaves (shape, dtype, sharding) with a leading replica axis: what a restore of
  a stacked checkpoint fills."""
  return jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(
      (num_replicas, *leaf.shape), leaf.dtype, sharding=leaf.sharding), like)


def form_for(mesh: Mesh) -> str:
  """'unrolled' on CPU devices, 'vmap' on accelerators."""
  return 'unrolled' if mesh.devices.flat[0].platform == 'cpu' else 'vmap'


def over_replicas(fn: Callable, num_replicas: int, form: str) -> Callable:
  """`fn(*args) -> out` as `(*stacked args) -> stacked out` over `num_replicas` replicas."""
  if form == 'vmap':
    return jax.vmap(fn)
  if form != 'unrolled':
    raise ValueError(f'Unknown replica form {form!r}; one of {FORMS}.')

  def unrolled(*stacked_args):
    return stack([fn(*replica(stacked_args, k)) for k in range(num_replicas)])
  return unrolled


def restack_like(trees: Sequence[Any], like: Any) -> Any:
  """`stack(trees)`, placed as the stacked tree `like` is (hooks run on the host)."""
  return jax.tree.map(lambda leaf, old: jax.device_put(leaf, old.sharding), stack(trees), like)


def _replica_start(start_from: Callable, num_replicas: int) -> Callable:
  """The pretrained start of each replica (its head keeps its seed's initialisation)."""
  return lambda state: restack_like(
      [start_from(replica(state, k)) for k in range(num_replicas)], state)


def _frozen_once_stopped(train_step: Callable, stopped: Callable) -> Callable:
  """`train_step` that leaves a state whose training stopped early as it is, exactly: a
  replica that stopped keeps the state its single-seed run ended with."""
  def step(state, batch):
    new_state, metrics = train_step(state, batch)
    halt = stopped(state)  # [K]
    keep = lambda new, old: jnp.where(halt.reshape(halt.shape + (1,) * (new.ndim - 1)), old, new)
    return jax.tree.map(keep, new_state, state), metrics
  return step


def _replica_epoch_end(on_epoch_end: Callable, stopped: Callable | None,
                       seeds: Sequence[int]) -> Callable:
  """Each running replica's epoch-end hook, in turn; the run stops once all have stopped.

  A replica that stopped is left alone, as its single-seed run would have ended; metrics
  are named per seed (`<metric>/seed_<seed>`).
  """
  def end_epoch(state, epoch: int):
    states, all_metrics, all_stop = [], {}, True
    for k, seed in enumerate(seeds):
      one = replica(state, k)
      if stopped is not None and bool(jax.device_get(stopped(one))):
        states.append(one)
        continue
      one, metrics, stop = on_epoch_end(one, epoch)
      states.append(one)
      all_metrics.update({f'{name}/seed_{seed}': value for name, value in metrics.items()})
      all_stop = all_stop and stop
    return restack_like(states, state), all_metrics, all_stop
  return end_epoch


def replicated_job(job, seeds: Sequence[int], form: str):
  """The loop's `Job` for `job` over `seeds`: init, step, hooks and images on stacked states.

  Epoch-end hooks (validation, learning-rate decay, early stopping) and pretrained starts
  run per replica on the host; a replica that stopped early is frozen inside the compiled
  step while the others train on.
  """
  keys = stack([jax.random.PRNGKey(seed) for seed in seeds])
  init_one = over_replicas(job.init, len(seeds), 'unrolled')
  train_step = over_replicas(job.train_step, len(seeds), form)
  stopped_each = None if job.stopped_early is None else jax.vmap(job.stopped_early)
  if stopped_each is not None:
    train_step = _frozen_once_stopped(train_step, stopped_each)

  def images(state) -> dict[str, np.ndarray]:
    return {f'{name}_seed_{seed}': grid for k, seed in enumerate(seeds)
            for name, grid in job.images(replica(state, k)).items()}

  return dataclasses.replace(
      job,
      # The loop's key is unused: replica k's key is seed k's, as in a single-seed run.
      init=lambda key: init_one(keys),
      train_step=train_step,
      images=None if job.images is None else images,
      on_epoch_end=None if job.on_epoch_end is None else _replica_epoch_end(
          job.on_epoch_end, job.stopped_early, seeds),
      stopped_early=None if stopped_each is None else lambda state: jnp.all(stopped_each(state)),
      start_from=None if job.start_from is None else _replica_start(job.start_from, len(seeds)),
      metadata={**job.metadata, 'seeds': list(seeds)})


class ReplicaBatches:
  """One data iterator per replica, read together: batches stacked on a leading axis [K].

  Its state (saved in checkpoints) is the list of the replicas' iterator states.
  """

  def __init__(self, iterators: Sequence[Any]):
    self.iterators = list(iterators)

  def __iter__(self) -> 'ReplicaBatches':
    return self

  def __next__(self):
    return jax.tree.map(lambda *batches: np.stack(batches),
                        *[next(iterator) for iterator in self.iterators])

  def get_state(self) -> dict:
    return {'replicas': [iterator.get_state() for iterator in self.iterators]}

  def set_state(self, state: dict) -> None:
    if len(state.get('replicas', ())) != len(self.iterators):
      raise ValueError(f'The checkpoint holds the data positions of '
                       f"{len(state.get('replicas', ()))} replicas, not {len(self.iterators)}.")
    for iterator, replica_state in zip(self.iterators, state['replicas']):
      iterator.set_state(replica_state)
