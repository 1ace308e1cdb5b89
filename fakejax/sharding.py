"""Mesh and shardings, in one place: data parallel over every device of every host."""

from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = 'data'


def build_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh over `devices` (default: all devices of all processes)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  """Every device holds the whole value (parameters, optimiser state)."""
  return NamedSharding(mesh, PartitionSpec())


def abstract_replicated(init: Callable[[jax.Array], Any], mesh: Mesh) -> Any:
  """Shapes, dtypes and replicated shardings of `init(key)`'s result, computing nothing.

  What a checkpoint restore fills: compiling `init` (random initialisers of every weight)
  takes seconds on a CPU, only for the values to be replaced.
  """
  shapes = jax.eval_shape(init, jax.random.PRNGKey(0))
  return jax.tree.map(
      lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=replicated(mesh)),
      shapes)


def batch_sharded(mesh: Mesh, batch_axis: int = 0) -> NamedSharding:
  """The batch axis (the leading one, or the one after the replicas') is split over the
  devices."""
  return NamedSharding(mesh, PartitionSpec(*[None] * batch_axis, DATA_AXIS))


def global_batch(mesh: Mesh, local_batch, batch_axis: int = 0):
  """Assembles the global batch (an array or a pytree of them) from each process's slice."""
  batch_sharding = batch_sharded(mesh, batch_axis)
  return jax.tree.map(
      lambda local: jax.make_array_from_process_local_data(batch_sharding, local),
      local_batch)
