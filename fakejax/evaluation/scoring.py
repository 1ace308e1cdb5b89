"""The scoring engine: jitted, batched, sharded scoring and sampling of stacked checkpoints.

Every detector is scored by a `Scorer` and every GAN sampled by a `Sampler`. Several
checkpoints of one model are stacked and run together in one compiled call (`lax.map`,
vmapped in chunks; see `checkpoints_per_vmap`); batches are split over the mesh's devices.
"""

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from fakejax import sharding
from fakejax.train.gan_steps import to_uint8


def checkpoints_per_vmap(num_checkpoints: int) -> int:
  """How many stacked checkpoints one vmapped call scores.

  vmap over weights turns each convolution into a grouped one: fast on GPU/TPU, but 4-5x
  slower than one checkpoint at a time on XLA's CPU backend (measured). `lax.map` with
  this batch size gives one compiled call either way.
  """
  return 1 if jax.default_backend() == 'cpu' else num_checkpoints


def _global(mesh: Mesh, array: np.ndarray, batch_axis: int) -> jax.Array:
  """This process's share of `array` along `batch_axis`, assembled into a global array."""
  per_process = array.shape[batch_axis] // jax.process_count()
  local = np.take(array, np.arange(per_process) + jax.process_index() * per_process,
                  axis=batch_axis)
  spec = PartitionSpec(*([None] * batch_axis), sharding.DATA_AXIS)
  return jax.make_array_from_process_local_data(NamedSharding(mesh, spec), local)


# Sampling that lasts longer than this logs its progress: a diffusion model draws about 10
# images/s on 2 CPU cores, so 10,000 samples take some 20 minutes.
PROGRESS_EVERY_S = 30.0


def _batches(num: int, batch_size: int):
  for start in range(0, num, batch_size):
    yield start, min(start + batch_size, num)


def _pad(array: np.ndarray, axis: int, size: int) -> np.ndarray:
  widths = [(0, 0)] * array.ndim
  widths[axis] = (0, size - array.shape[axis])
  return np.pad(array, widths)


def _over_checkpoints(fn, num_checkpoints: int):
  """fn(variables, *x) -> fn over stacked variables [K] (and x [K] where stacked)."""
  chunk = checkpoints_per_vmap(num_checkpoints)
  return lambda variables, *x: jax.lax.map(lambda args: fn(*args), (variables, *x),
                                           batch_size=chunk)


# Images each CPU device scores at once inside a jitted call. The activations of a few
# hundred small images stay in the CPU's caches; those of a whole 1000-image call did not,
# and scoring ran 1.2x slower (tools/benchmark.py). A GPU wants the whole batch at once.
SCORING_CHUNK = 125


def in_chunks(score_fn, num_shards: int, chunk_size: int = SCORING_CHUNK):
  """`score_fn(variables, images) -> [N, ...]`, run on CPUs over each shard's images in
  chunks, elsewhere on the whole batch.

  The scores are the same (images are scored independently); the images stay on their
  devices: [N] -> [shards, chunks, chunk] -> one [shards * chunk] batch per step of a
  `lax.map` over chunks. Batches that do not split evenly are scored whole.
  """
  def on_platform(variables, images: jax.Array) -> jax.Array:
    return jax.lax.platform_dependent(variables, images, cpu=chunked, default=score_fn)

  def chunked(variables, images: jax.Array) -> jax.Array:
    per_shard = images.shape[0] // num_shards
    if per_shard <= chunk_size or images.shape[0] % num_shards or per_shard % chunk_size:
      return score_fn(variables, images)
    num_chunks = per_shard // chunk_size
    grouped = images.reshape(num_shards, num_chunks, chunk_size, *images.shape[1:])
    by_chunk = jnp.swapaxes(grouped, 0, 1).reshape(num_chunks, num_shards * chunk_size,
                                                   *images.shape[1:])
    out = jax.lax.map(lambda batch: score_fn(variables, batch), by_chunk)
    out = out.reshape(num_chunks, num_shards, chunk_size, *out.shape[2:])
    return jnp.swapaxes(out, 0, 1).reshape(images.shape[0], *out.shape[3:])
  return on_platform


@functools.cache
def compiled_scoring(score_fn, num_checkpoints: int, mesh: Mesh):
  """The jitted scoring functions of `score_fn` over K stacked checkpoints, made once.

  Every Scorer of the same scoring function (the same model and input), checkpoint count
  and mesh shares them, so XLA compiles each shape once per process (as big_vision's
  `get_eval_fn`). Returns (K checkpoints x [B] shared images, x [K, B] own images).
  """
  chunked = in_chunks(score_fn, mesh.size)
  replicated = sharding.replicated(mesh)
  over = lambda fn: _over_checkpoints(fn, num_checkpoints)
  score_shared = jax.jit(lambda v, images: over(lambda vk: chunked(vk, images))(v),
                         out_shardings=replicated)
  score_own = jax.jit(over(chunked), out_shardings=replicated)
  return score_shared, score_own


class Scorer:
  """Jitted, batched, sharded scoring under the stacked checkpoints of a detector.

  `score_fn(variables, images_uint8) -> P(real)` scores one checkpoint; `variables` holds
  every checkpoint's, stacked on a leading axis [K]. They may be replaced between calls by
  others of the same shapes: the compiled functions take them as arguments.
  """

  def __init__(self, score_fn, variables: dict, mesh: Mesh, batch_size: int):
    self.variables, self.mesh, self.batch_size = variables, mesh, batch_size
    self.num_checkpoints = len(jax.tree.leaves(variables)[0])
    self._score_shared, self._score_own = compiled_scoring(score_fn, self.num_checkpoints, mesh)

  def score(self, images: np.ndarray) -> np.ndarray:
    """P(real) [K, N] of shared uint8 images [N, H, W, C] under every checkpoint."""
    out = [np.asarray(self._score_shared(
        self.variables, _global(self.mesh, _pad(images[a:b], 0, self.batch_size), 0)))[:, :b - a]
           for a, b in _batches(len(images), self.batch_size)]
    return np.concatenate(out, axis=1) if out else np.zeros((self.num_checkpoints, 0), np.float32)

  def score_own(self, images: np.ndarray) -> np.ndarray:
    """P(real) [K, N] of images [K, N, H, W, C], each checkpoint scoring its own row."""
    out = [np.asarray(self._score_own(
        self.variables, _global(self.mesh, _pad(images[:, a:b], 1, self.batch_size), 1)))[:, :b - a]
           for a, b in _batches(images.shape[1], self.batch_size)]
    return np.concatenate(out, axis=1) if out else np.zeros(images.shape[:2], np.float32)


class Sampler:
  """Jitted, batched, sharded generation for the stacked checkpoints of a generator.

  `generate(variables, latents) -> images in [-1, 1]` samples one checkpoint;
  `variables` holds every checkpoint's, stacked on a leading axis [K].
  """

  def __init__(self, generate, variables: dict, latent_dim: int, mesh: Mesh, batch_size: int):
    self.variables, self.latent_dim = variables, latent_dim
    self.mesh, self.batch_size = mesh, batch_size
    num_checkpoints = len(jax.tree.leaves(variables)[0])
    self._generate = jax.jit(lambda v, latents: _over_checkpoints(
        lambda vk: to_uint8(generate(vk, latents)), num_checkpoints)(v),
                             out_shardings=sharding.replicated(mesh))

  def generate(self, num_images: int, seed: int) -> np.ndarray:
    """uint8 samples [K, N, H, W, C] of every checkpoint's generator, from the same latents."""
    key = jax.random.PRNGKey(seed)
    out, start = [], time.monotonic()
    last_log = start
    for index, (a, b) in enumerate(_batches(num_images, self.batch_size)):
      latents = np.asarray(jax.random.normal(jax.random.fold_in(key, index),
                                             (self.batch_size, self.latent_dim)))
      out.append(np.asarray(self._generate(self.variables,
                                           _global(self.mesh, latents, 0)))[:, :b - a])
      now = time.monotonic()
      if now - last_log >= PROGRESS_EVERY_S and b < num_images:
        last_log, rate = now, b / (now - start)
        logging.info('Sampled %d of %d images per checkpoint (%.1f images/s, ETA %.0f s).',
                     b, num_images, rate, (num_images - b) / rate)
    return np.concatenate(out, axis=1)
