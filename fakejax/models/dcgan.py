"""Two DCGAN architectures for 28x28x1 images, as pure Flax Linen modules.

Generators map latent vectors [B, latent_dim] to images in [-1, 1] of shape [B, 28, 28, 1];
discriminators map images to one logit per image [B] (positive: real). Transposed and
strided convolutions are `SubPixelConvTranspose` and `StridedConv`: the same layers and
parameters as `nn.ConvTranspose` / `nn.Conv` with padding 'SAME', written the way XLA's
CPU backend runs fast.

`dtype` is the computation's: bfloat16 gives mixed precision (float32 parameters, batch
statistics and outputs; bfloat16 activations and products).
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from fakejax.models.layers import StridedConv, SubPixelConvTranspose

IMAGE_SHAPE = (28, 28, 1)


class TFGenerator(nn.Module):
  """Generator of the TensorFlow DCGAN tutorial (Keras defaults: LeakyReLU 0.3, BN eps 1e-3)."""

  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, latents: jax.Array, *, train: bool) -> jax.Array:
    norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.99,
                             epsilon=1e-3, dtype=self.dtype)
    act = functools.partial(nn.leaky_relu, negative_slope=0.3)
    x = nn.Dense(7 * 7 * 256, use_bias=False, dtype=self.dtype)(latents)
    x = act(norm()(x)).reshape(-1, 7, 7, 256)
    x = SubPixelConvTranspose(128, (5, 5), strides=(1, 1), use_bias=False,
                              dtype=self.dtype)(x)
    x = act(norm()(x))
    x = SubPixelConvTranspose(64, (5, 5), strides=(2, 2), use_bias=False,
                              dtype=self.dtype)(x)
    x = act(norm()(x))
    x = SubPixelConvTranspose(1, (5, 5), strides=(2, 2), use_bias=False, dtype=self.dtype)(x)
    return jnp.tanh(x).astype(jnp.float32)


class TFDiscriminator(nn.Module):
  """Discriminator of the TensorFlow DCGAN tutorial."""

  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool) -> jax.Array:
    act = functools.partial(nn.leaky_relu, negative_slope=0.3)
    x = images
    for features in (64, 128):
      x = act(StridedConv(features, (5, 5), strides=(2, 2), dtype=self.dtype)(x))
      x = nn.Dropout(0.3, deterministic=not train)(x)
    logits = nn.Dense(1, dtype=self.dtype)(x.reshape(x.shape[0], -1))[:, 0]
    return logits.astype(jnp.float32)


# Radford et al. (2015): weights from N(0, 0.02), BatchNorm scale from N(1, 0.02).
radford_init = nn.initializers.normal(stddev=0.02)


def radford_norm(train: bool, dtype: jnp.dtype) -> nn.BatchNorm:
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype,
                      scale_init=lambda key, shape, dtype: 1.0 + radford_init(key, shape, dtype))


class RadfordGenerator(nn.Module):
  """Fractional-strided convolutions, BatchNorm, ReLU, tanh output (Radford et al. 2015)."""

  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, latents: jax.Array, *, train: bool) -> jax.Array:
    x = nn.Dense(7 * 7 * 256, use_bias=False, kernel_init=radford_init, dtype=self.dtype)(latents)
    x = nn.relu(radford_norm(train, self.dtype)(x)).reshape(-1, 7, 7, 256)
    x = SubPixelConvTranspose(128, (4, 4), strides=(2, 2), use_bias=False,
                              kernel_init=radford_init, dtype=self.dtype)(x)
    x = nn.relu(radford_norm(train, self.dtype)(x))
    x = SubPixelConvTranspose(1, (4, 4), strides=(2, 2), kernel_init=radford_init,
                              dtype=self.dtype)(x)
    return jnp.tanh(x).astype(jnp.float32)


class RadfordDiscriminator(nn.Module):
  """All-convolutional: strided convolutions, LeakyReLU 0.2, BatchNorm after the first layer."""

  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool) -> jax.Array:
    act = functools.partial(nn.leaky_relu, negative_slope=0.2)
    x = act(StridedConv(64, (4, 4), strides=(2, 2), kernel_init=radford_init,
                        dtype=self.dtype)(images))
    x = StridedConv(128, (4, 4), strides=(2, 2), use_bias=False, kernel_init=radford_init,
                    dtype=self.dtype)(x)
    x = act(radford_norm(train, self.dtype)(x))
    # Radford's last layer, a 7x7 'VALID' convolution over the 7x7 map, is this dense layer
    # over the flattened map (the same sums; as a matrix product, 20x faster here).
    logits = nn.Dense(1, kernel_init=radford_init, dtype=self.dtype)(x.reshape(x.shape[0], -1))
    return logits[:, 0].astype(jnp.float32)
