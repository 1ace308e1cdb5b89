"""What a detector sees: the image, a residual or spectrum of it, or its reconstruction.

All take and give float images [B, H, W, C] in [-1, 1] (reconstructions too). Inputs that
expose how an image was made rather than what it shows:
- the NPR residual (Tan et al. 2024): the image minus its nearest-neighbour down- and
  up-sampling, where up-sampling layers leave correlated neighbours;
- fixed high-pass residuals (the SRM filters of steganalysis, as in Fridrich and
  Kodovsky 2012): second differences across and down, and the 3x3 "KV" square;
- spectra (Zhang et al. 2019; Frank et al. 2020): the log-magnitude 2-D Fourier spectrum
  of each channel, zero frequency at the centre, or its DCT-II, where up-sampling
  artefacts show as peaks.
The others need the autoencoder of the autoencoder-GAN study.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

# Inputs computed from the image alone, and those of an autoencoder's reconstruction.
IMAGE_INPUTS = ('image', 'npr', 'highpass', 'image_spectrum', 'image_dct')
AUTOENCODER_INPUTS = ('reconstruction', 'residual', 'residual_spectrum')
INPUT_KINDS = IMAGE_INPUTS + AUTOENCODER_INPUTS

# Each a 3x3 high-pass kernel summing to zero (flat regions give zero).
HIGHPASS_KERNELS = np.stack([
    np.array([[0, 0, 0], [1, -2, 1], [0, 0, 0]]) / 2,  # Second difference across.
    np.array([[0, 1, 0], [0, -2, 0], [0, 1, 0]]) / 2,  # Second difference down.
    np.array([[-1, 2, -1], [2, -4, 2], [-1, 2, -1]]) / 4,  # SRM's KV square.
], axis=-1).astype(np.float32)  # [3, 3, filters]


def residual(images: jax.Array, reconstructions: jax.Array) -> jax.Array:
  return images - reconstructions


def npr_residual(images: jax.Array) -> jax.Array:
  """x - up(down(x)), both nearest-neighbour by a factor 2; odd sizes keep their last row."""
  height, width = images.shape[1:3]
  down = images[:, ::2, ::2]
  up = jnp.repeat(jnp.repeat(down, 2, axis=1), 2, axis=2)[:, :height, :width]
  return images - up


def highpass_residuals(images: jax.Array) -> jax.Array:
  """Each channel through every HIGHPASS_KERNELS filter: [B, H, W, C * filters], with the
  image's edges repeated so that borders are not read as edges."""
  channels = images.shape[-1]
  padded = jnp.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), mode='edge')
  # Depthwise: channel c's outputs are c * filters ... c * filters + filters - 1.
  kernel = jnp.tile(jnp.asarray(HIGHPASS_KERNELS, images.dtype)[:, :, None, :], (1, 1, 1, channels))
  return jax.lax.conv_general_dilated(padded, kernel, (1, 1), 'VALID',
                                      dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                      feature_group_count=channels)


def input_channels(kind: str, image_channels: int) -> int:
  """The channels of input `kind` of images of `image_channels`."""
  return image_channels * HIGHPASS_KERNELS.shape[-1] if kind == 'highpass' else image_channels


def log_spectrum(images: jax.Array) -> jax.Array:
  """log(1 + |FFT2|) per image and channel, centred; the same shape as `images`."""
  spectrum = jnp.fft.fftshift(jnp.fft.fft2(images, axes=(1, 2)), axes=(1, 2))
  return jnp.log1p(jnp.abs(spectrum))


def log_dct(images: jax.Array) -> jax.Array:
  """log(1 + |DCT-II|) per image and channel (orthonormal); the same shape as `images`."""
  return jnp.log1p(jnp.abs(jax.scipy.fft.dctn(images, type=2, axes=(1, 2), norm='ortho')))


IMAGE_TRANSFORMS = {'image': lambda x: x, 'npr': npr_residual, 'highpass': highpass_residuals,
                    'image_spectrum': log_spectrum, 'image_dct': log_dct}


def classifier_input(kind: str, images: jax.Array,
                     reconstruct: Callable[[jax.Array], jax.Array] | None = None) -> jax.Array:
  """The input of `kind` for a batch of images; `reconstruct` is the autoencoder."""
  if kind not in INPUT_KINDS:
    raise ValueError(f'Unknown classifier input {kind!r}; known: {INPUT_KINDS}.')
  if kind in IMAGE_TRANSFORMS:
    return IMAGE_TRANSFORMS[kind](images)
  if reconstruct is None:
    raise ValueError(f'Classifier input {kind!r} needs an autoencoder.')
  reconstructions = reconstruct(images)
  if kind == 'reconstruction':
    return reconstructions
  if kind == 'residual':
    return residual(images, reconstructions)
  return log_spectrum(residual(images, reconstructions))
