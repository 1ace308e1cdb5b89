"""Autoencoder of configurable depth, for reconstruction-based fake detection.

`depth` stride-2 stages down and as many up: depth 1 keeps a half-resolution code (close
to an identity map), depth 4 squeezes 28x28 images into a 2x2 code. Images are padded to
a multiple of 2**depth on the way in and cropped back on the way out, so any size works.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from fakejax.models.layers import StridedConv, SubPixelConvTranspose


def stage_features(depth: int, base_features: int, latent_features: int) -> list[int]:
  """Channels after each encoder stage: doubling from `base_features`, the last the code's."""
  return [base_features * 2**stage for stage in range(depth - 1)] + [latent_features]


class Encoder(nn.Module):
  depth: int
  base_features: int
  latent_features: int

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    x = images
    features = stage_features(self.depth, self.base_features, self.latent_features)
    for stage, channels in enumerate(features):
      x = StridedConv(channels, (4, 4), strides=(2, 2))(x)
      if stage < self.depth - 1:
        x = nn.leaky_relu(x, 0.2)
    return x


class Decoder(nn.Module):
  depth: int
  base_features: int
  out_channels: int

  @nn.compact
  def __call__(self, code: jax.Array) -> jax.Array:
    x = code
    # Mirror of the encoder: back through its hidden stage widths, then to image channels.
    widths = stage_features(self.depth, self.base_features, self.out_channels)[:-1]
    for channels in reversed(widths):
      x = nn.relu(SubPixelConvTranspose(channels, (4, 4), strides=(2, 2))(x))
    x = SubPixelConvTranspose(self.out_channels, (4, 4), strides=(2, 2))(x)
    return jnp.tanh(x)


class AutoEncoder(nn.Module):
  """Images in [-1, 1] -> reconstructions in [-1, 1] of the same shape."""
  depth: int
  base_features: int = 32
  latent_features: int = 64

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    if self.depth < 1:
      raise ValueError(f'An autoencoder needs depth >= 1, got {self.depth}.')
    _, height, width, channels = images.shape
    multiple = 2**self.depth
    pad_h, pad_w = -height % multiple, -width % multiple
    # Edge padding: a zero border would be a feature the decoder must learn to undo.
    padded = jnp.pad(images, ((0, 0), (pad_h // 2, pad_h - pad_h // 2),
                              (pad_w // 2, pad_w - pad_w // 2), (0, 0)), mode='edge')
    code = Encoder(self.depth, self.base_features, self.latent_features)(padded)
    reconstruction = Decoder(self.depth, self.base_features, channels)(code)
    return reconstruction[:, pad_h // 2:pad_h // 2 + height, pad_w // 2:pad_w // 2 + width]
