"""How close a generator's images are to the reals, measured on features of both.

- The Fréchet distance between Gaussians fitted to each set of features (Heusel et al.
  2017 named it FID on Inception features; on a Fashion-MNIST classifier's features it is
  that classifier's Fréchet distance, not FID).
- Precision and recall of the generated distribution (Kynkäänniemi et al. 2019): the share
  of fakes inside the reals' manifold (each real a ball reaching its k-th nearest real
  neighbour), and the share of reals inside the fakes' manifold.

Features are [N, D] arrays; everything runs in JAX, distances in blocks of rows.
"""

import functools

import jax
import jax.numpy as jnp

# Rows of one block of pairwise distances: [ROWS, N] floats stay small for any N here.
DISTANCE_BLOCK_ROWS = 1024


def _mean_and_covariance(features: jax.Array) -> tuple[jax.Array, jax.Array]:
  features = features.astype(jnp.float32)
  mean = features.mean(axis=0)
  centred = features - mean
  return mean, centred.T @ centred / (features.shape[0] - 1)


def _trace_of_sqrt_product(a: jax.Array, b: jax.Array) -> jax.Array:
  """Tr(sqrt(A B)) for symmetric positive semi-definite A, B: the eigenvalues of A B are
  those of sqrt(A) B sqrt(A), which is symmetric (so `eigh` applies)."""
  values, vectors = jnp.linalg.eigh(a)
  sqrt_a = (vectors * jnp.sqrt(jnp.clip(values, 0.0))) @ vectors.T
  product = sqrt_a @ b @ sqrt_a
  return jnp.sum(jnp.sqrt(jnp.clip(jnp.linalg.eigvalsh((product + product.T) / 2), 0.0)))


@jax.jit
def frechet_distance(real_features: jax.Array, fake_features: jax.Array) -> jax.Array:
  """|mu_r - mu_f|^2 + Tr(C_r + C_f - 2 sqrt(C_r C_f)) of Gaussians fitted to each set."""
  real_mean, real_cov = _mean_and_covariance(real_features)
  fake_mean, fake_cov = _mean_and_covariance(fake_features)
  return (jnp.sum((real_mean - fake_mean) ** 2) + jnp.trace(real_cov) + jnp.trace(fake_cov)
          - 2.0 * _trace_of_sqrt_product(real_cov, fake_cov))


def _squared_distances(rows: jax.Array, columns: jax.Array) -> jax.Array:
  return jnp.maximum(jnp.sum(rows ** 2, 1)[:, None] + jnp.sum(columns ** 2, 1)[None, :]
                     - 2.0 * rows @ columns.T, 0.0)


def _in_blocks(per_row, rows: jax.Array) -> jax.Array:
  """per_row(block of rows) -> [rows] values, over `rows` in blocks (padded to a multiple)."""
  count = rows.shape[0]
  blocks = -(-count // DISTANCE_BLOCK_ROWS)
  padded = jnp.pad(rows, ((0, blocks * DISTANCE_BLOCK_ROWS - count), (0, 0)))
  values = jax.lax.map(per_row, padded.reshape(blocks, DISTANCE_BLOCK_ROWS, -1))
  return values.reshape(-1)[:count]


def _kth_smallest(values: jax.Array, k: int) -> jax.Array:
  """The k-th smallest of each row (k = 0: the minimum), by dropping k minima in turn:
  k + 1 multi-threaded passes where XLA's CPU top_k sorts each row on one thread
  (minutes for 10,000 x 10,000 distances)."""
  rows = jnp.arange(values.shape[0])
  drop_min = lambda v, _: (v.at[rows, jnp.argmin(v, axis=1)].set(jnp.inf), None)
  return jax.lax.scan(drop_min, values, None, length=k)[0].min(axis=1)


def kth_neighbour_radii(features: jax.Array, k: int) -> jax.Array:
  """Squared distance of each point to its k-th nearest other point of the same set."""
  # The point itself is its own nearest, at distance 0: skip it.
  return _in_blocks(lambda block: _kth_smallest(_squared_distances(block, features), k),
                    features)


def share_inside(points: jax.Array, centres: jax.Array, radii: jax.Array) -> jax.Array:
  """Share of `points` within the radius of at least one of `centres`."""
  inside = lambda block: jnp.any(_squared_distances(block, centres) <= radii[None, :], axis=1)
  return _in_blocks(lambda block: inside(block).astype(jnp.float32), points).mean()


@functools.partial(jax.jit, static_argnames='k')
def precision_recall(real_features: jax.Array, fake_features: jax.Array,
                     k: int = 3) -> dict[str, jax.Array]:
  """Improved precision and recall (Kynkäänniemi et al. 2019) with k-th neighbour balls."""
  real, fake = real_features.astype(jnp.float32), fake_features.astype(jnp.float32)
  return {'precision': share_inside(fake, real, kth_neighbour_radii(real, k)),
          'recall': share_inside(real, fake, kth_neighbour_radii(fake, k))}
