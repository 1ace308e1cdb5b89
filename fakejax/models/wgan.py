"""WGAN-GP's generator and critic for 28x28x1 images (Gulrajani et al. 2017), pure Flax Linen.

The critic has no normalisation: the gradient penalty is taken per image, and batch
statistics would mix the images of a batch. Its output is an unbounded score (higher:
more real), used as a detector's logit like a discriminator's.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from fakejax.models.layers import StridedConv, SubPixelConvTranspose


class WganGenerator(nn.Module):
  """Dense to 7x7x256, two stride-2 transposed convolutions with BatchNorm and ReLU, tanh."""

  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, latents: jax.Array, *, train: bool) -> jax.Array:
    norm = lambda: nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype)
    x = nn.Dense(7 * 7 * 256, use_bias=False, dtype=self.dtype)(latents)
    x = nn.relu(norm()(x)).reshape(-1, 7, 7, 256)
    x = SubPixelConvTranspose(128, (4, 4), strides=(2, 2), use_bias=False, dtype=self.dtype)(x)
    x = nn.relu(norm()(x))
    x = SubPixelConvTranspose(1, (4, 4), strides=(2, 2), dtype=self.dtype)(x)
    return jnp.tanh(x).astype(jnp.float32)


class WganCritic(nn.Module):
  """Three strided 4x4 convolutions (64, 128, 256), LeakyReLU 0.2, one linear score."""

  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool) -> jax.Array:
    del train  # No dropout, no batch statistics.
    x = images
    for features in (64, 128, 256):
      x = nn.leaky_relu(StridedConv(features, (4, 4), strides=(2, 2), dtype=self.dtype)(x), 0.2)
    scores = nn.Dense(1, dtype=self.dtype)(x.reshape(x.shape[0], -1))[:, 0]
    return scores.astype(jnp.float32)
