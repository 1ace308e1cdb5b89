"""Seeds as an axis: K replicas of one job, trained as one compiled step over stacked states.

Replica k starts from seed k's initialisation, draws seed k's noise and reads seed k's
data order, so its parameters are those of the single-seed run with seed k (to float
rounding). Every leaf of the state, every batch and every metric gains a leading axis [K].

How the replicas' steps run depends on the platform, as scoring's does: on GPU and TPU the
step is vmapped (one batched program fills a device that one small model leaves idle); on
XLA's CPU backend vmap over weights turns each convolution into a grouped one that runs
4-5x slower (measured), so the replicas' steps are unrolled one after another inside the
same compiled program.
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


def replicated_job(job, seeds: Sequence[int], form: str):
  """The loop's `Job` for `job` over `seeds`: init, step and images on stacked states.

  Epoch-end hooks (validation, learning-rate decay, early stopping) and pretrained starts
  decide per replica, which one compiled step cannot yet do: such jobs train one seed.
  """
  hooks = [name for name in ('on_epoch_end', 'stopped_early', 'start_from')
           if getattr(job, name) is not None]
  if hooks:
    raise ValueError(f'{job.name} has {", ".join(hooks)}: it trains one seed at a time, '
                     f'not {len(seeds)} replicas.')
  keys = stack([jax.random.PRNGKey(seed) for seed in seeds])
  init_one = over_replicas(job.init, len(seeds), 'unrolled')

  def images(state) -> dict[str, np.ndarray]:
    return {f'{name}_seed_{seed}': grid for k, seed in enumerate(seeds)
            for name, grid in job.images(replica(state, k)).items()}

  return dataclasses.replace(
      job,
      # The loop's key is unused: replica k's key is seed k's, as in a single-seed run.
      init=lambda key: init_one(keys),
      train_step=over_replicas(job.train_step, len(seeds), form),
      images=None if job.images is None else images,
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
