"""Autoencoder of configurable depth, for reconstruction-based fake detection.

`depth` stride-2 stages down and as many up: depth 1 keeps a half-resolution code (close
to an identity map), depth 4 squeezes 28x28 images into a 2x2 code. Images are padded to
a multiple of 2**depth on the way in and cropped back on the way out, so any size works.

The decoder's `upsampler` is how generators up-sample, each leaving its own trace (Zhang
et al. 2019 simulate GAN artefacts so; Tan et al. 2024 list these): a transposed
convolution, nearest-neighbour or bilinear resizing followed by a 3x3 convolution, or a
convolution to 4x the channels shuffled into 2x2 pixels (sub-pixel convolution).
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


def _resize_conv(method: str):
  def up(x: jax.Array, channels: int) -> jax.Array:
    batch, height, width, depth = x.shape
    x = jax.image.resize(x, (batch, 2 * height, 2 * width, depth), method)
    return nn.Conv(channels, (3, 3), padding='SAME')(x)
  return up


def depth_to_space(x: jax.Array) -> jax.Array:
  """[B, H, W, 4C] -> [B, 2H, 2W, C]: channels 4c'..: pixel (2h + i, 2w + j) takes channel
  group 2i + j (PyTorch's pixel_shuffle, channels last)."""
  batch, height, width, depth = x.shape
  channels = depth // 4
  x = x.reshape(batch, height, width, 2, 2, channels).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(batch, 2 * height, 2 * width, channels)


def _pixel_shuffle(x: jax.Array, channels: int) -> jax.Array:
  return depth_to_space(nn.Conv(4 * channels, (3, 3), padding='SAME')(x))


# Name -> (x, channels) -> x at twice the size, with `channels`; called inside a compact module.
UPSAMPLERS = {
    'transposed': lambda x, channels: SubPixelConvTranspose(channels, (4, 4), strides=(2, 2))(x),
    'nearest': _resize_conv('nearest'),
    'bilinear': _resize_conv('bilinear'),
    'pixel_shuffle': _pixel_shuffle,
}


class Decoder(nn.Module):
  depth: int
  base_features: int
  out_channels: int
  upsampler: str = 'transposed'

  @nn.compact
  def __call__(self, code: jax.Array) -> jax.Array:
    x, up = code, UPSAMPLERS[self.upsampler]
    # Mirror of the encoder: back through its hidden stage widths, then to image channels.
    widths = stage_features(self.depth, self.base_features, self.out_channels)[:-1]
    for channels in reversed(widths):
      x = nn.relu(up(x, channels))
    return jnp.tanh(up(x, self.out_channels))


class AutoEncoder(nn.Module):
  """Images in [-1, 1] -> reconstructions in [-1, 1] of the same shape."""
  depth: int
  base_features: int = 32
  latent_features: int = 64
  upsampler: str = 'transposed'  # A key of UPSAMPLERS.

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
    reconstruction = Decoder(self.depth, self.base_features, channels, self.upsampler)(code)
    return reconstruction[:, pad_h // 2:pad_h // 2 + height, pad_w // 2:pad_w // 2 + width]
