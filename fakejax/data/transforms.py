"""What a detector sees: the image, its reconstruction, their residual, or a spectrum.

All take and give float images [B, H, W, C]; images and reconstructions are in [-1, 1].
The spectra follow Zhang et al. (2019): the log-magnitude 2-D Fourier spectrum of each
channel, zero frequency at the centre, where up-sampling artefacts show as peaks.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

INPUT_KINDS = ('image', 'reconstruction', 'residual', 'image_spectrum', 'residual_spectrum')


def residual(images: jax.Array, reconstructions: jax.Array) -> jax.Array:
  return images - reconstructions


def log_spectrum(images: jax.Array) -> jax.Array:
  """log(1 + |FFT2|) per image and channel, centred; the same shape as `images`."""
  spectrum = jnp.fft.fftshift(jnp.fft.fft2(images, axes=(1, 2)), axes=(1, 2))
  return jnp.log1p(jnp.abs(spectrum))


def classifier_input(kind: str, images: jax.Array,
                     reconstruct: Callable[[jax.Array], jax.Array] | None = None) -> jax.Array:
  """The input of `kind` for a batch of images; `reconstruct` is the autoencoder."""
  if kind not in INPUT_KINDS:
    raise ValueError(f'Unknown classifier input {kind!r}; known: {INPUT_KINDS}.')
  if kind == 'image':
    return images
  if kind == 'image_spectrum':
    return log_spectrum(images)
  if reconstruct is None:
    raise ValueError(f'Classifier input {kind!r} needs an autoencoder.')
  reconstructions = reconstruct(images)
  if kind == 'reconstruction':
    return reconstructions
  if kind == 'residual':
    return residual(images, reconstructions)
  return log_spectrum(residual(images, reconstructions))
