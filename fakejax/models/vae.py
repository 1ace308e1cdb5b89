"""A convolutional VAE for 28x28x1 images (Kingma & Welling 2014), pure Flax Linen.

Its decoder upsamples by nearest-neighbour resizing followed by a convolution, not by
transposed convolution: a family whose fakes carry a different upsampling trace than the
DCGANs'. Images are in [-1, 1]; the decoder's output is the mean of a Gaussian of fixed
scale, so the reconstruction term is a scaled squared error.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from fakejax.models.layers import StridedConv


def upsample_nearest(x: jax.Array, factor: int = 2) -> jax.Array:
  """[B, H, W, C] -> [B, factor * H, factor * W, C], each pixel repeated."""
  return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


class VaeEncoder(nn.Module):
  """Two strided 4x4 convolutions down to 7x7, then the posterior's mean and log-variance."""
  features: tuple[int, int]
  latent_dim: int

  @nn.compact
  def __call__(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    x = images
    for channels in self.features:
      x = nn.leaky_relu(StridedConv(channels, (4, 4), strides=(2, 2))(x), 0.2)
    x = x.reshape(x.shape[0], -1)
    return nn.Dense(self.latent_dim)(x), nn.Dense(self.latent_dim)(x)


class VaeDecoder(nn.Module):
  """Latents -> 7x7 maps, twice (nearest x2, 3x3 convolution, ReLU), a 3x3 convolution, tanh."""
  features: tuple[int, int]

  @nn.compact
  def __call__(self, latents: jax.Array) -> jax.Array:
    widest, narrowest = self.features[-1], self.features[0]
    x = nn.relu(nn.Dense(7 * 7 * widest)(latents)).reshape(-1, 7, 7, widest)
    for channels in (widest, narrowest):
      x = nn.relu(nn.Conv(channels, (3, 3))(upsample_nearest(x)))
    return jnp.tanh(nn.Conv(1, (3, 3))(x))


class Vae(nn.Module):
  """`encode` images to the posterior, `decode` latents to images, `__call__` both."""
  features: tuple[int, int] = (32, 64)
  latent_dim: int = 32

  def setup(self):
    self.encoder = VaeEncoder(tuple(self.features), self.latent_dim)
    self.decoder = VaeDecoder(tuple(self.features))

  def encode(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    return self.encoder(images)

  def decode(self, latents: jax.Array) -> jax.Array:
    return self.decoder(latents)

  def __call__(self, images: jax.Array, noise: jax.Array) -> tuple[jax.Array, jax.Array,
                                                                    jax.Array]:
    """(reconstruction of z = mean + noise * std, mean, log-variance)."""
    mean, log_variance = self.encode(images)
    latents = mean + noise * jnp.exp(0.5 * log_variance)
    return self.decode(latents), mean, log_variance
