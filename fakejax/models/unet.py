"""A small U-Net that predicts the noise of a diffusion step (Ho et al. 2020), pure Flax Linen.

Three resolutions for 28x28 images (28, 14, 7): residual blocks with GroupNorm and SiLU,
the step's sinusoidal embedding added inside each block, strided convolutions down and
nearest-neighbour resizing + convolution up, skip connections concatenated.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from fakejax.models.layers import GroupNorm, SameConv, StridedConv
from fakejax.models.vae import upsample_nearest

NORM_GROUPS = 8  # Every width must be a multiple.


def timestep_embedding(timesteps: jax.Array, dim: int) -> jax.Array:
  """[B] integer steps -> [B, dim] sines and cosines of geometrically spaced frequencies."""
  half = dim // 2
  frequencies = jnp.exp(-math.log(10_000.0) * jnp.arange(half) / half)
  angles = timesteps.astype(jnp.float32)[:, None] * frequencies[None]
  return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


class ResidualBlock(nn.Module):
  features: int

  @nn.compact
  def __call__(self, x: jax.Array, embedding: jax.Array) -> jax.Array:
    h = SameConv(self.features, (3, 3))(nn.silu(GroupNorm(NORM_GROUPS)(x)))
    h = h + nn.Dense(self.features)(nn.silu(embedding))[:, None, None, :]
    h = SameConv(self.features, (3, 3))(nn.silu(GroupNorm(NORM_GROUPS)(h)))
    skip = x if x.shape[-1] == self.features else SameConv(self.features, (1, 1))(x)
    return skip + h


class NoiseUNet(nn.Module):
  """(noisy images [B, 28, 28, C], steps [B]) -> the predicted noise, of the images' shape."""
  features: tuple[int, int, int] = (32, 64, 64)  # At 28, 14 and 7 pixels.

  @nn.compact
  def __call__(self, images: jax.Array, timesteps: jax.Array) -> jax.Array:
    widths = tuple(self.features)
    embedding = timestep_embedding(timesteps, widths[0])
    embedding = nn.Dense(4 * widths[0])(nn.silu(nn.Dense(4 * widths[0])(embedding)))
    x = SameConv(widths[0], (3, 3))(images)
    skips = []
    for level, width in enumerate(widths):
      x = ResidualBlock(width)(x, embedding)
      if level < len(widths) - 1:
        skips.append(x)
        x = StridedConv(widths[level + 1], (3, 3), strides=(2, 2))(x)
    x = ResidualBlock(widths[-1])(x, embedding)
    for width, skip in zip(reversed(widths[:-1]), reversed(skips)):
      x = SameConv(width, (3, 3))(upsample_nearest(x))
      x = ResidualBlock(width)(jnp.concatenate([x, skip], axis=-1), embedding)
    x = nn.silu(GroupNorm(NORM_GROUPS)(x))
    return SameConv(images.shape[-1], (3, 3))(x)
