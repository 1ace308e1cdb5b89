"""A RealNVP-style normalising flow for 28x28x1 images (Dinh et al. 2017), with Glow's
per-channel ActNorm (Kingma & Dhariwal 2018), pure Flax Linen.

No upsampling layer anywhere: the image is rearranged (squeezed: each 2x2 block of pixels
becomes 4 channels) and transformed by invertible affine couplings, so its samples carry
no interpolation or transposed-convolution trace. Two levels: 14x14x4 after the first
squeeze, half of which leaves as latents; the other half squeezed again to 7x7x8. The
latent vector (784 values) is exactly the image's size.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from fakejax.models.layers import SameConv

# Pixels are mapped to logit space after dequantisation, kept this far from 0 and 1.
LOGIT_MARGIN = 0.05
NUM_LEVELS = 2


def squeeze(x: jax.Array) -> jax.Array:
  """[B, H, W, C] -> [B, H/2, W/2, 4C]: each 2x2 block of pixels becomes channels."""
  b, h, w, c = x.shape
  x = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h // 2, w // 2, 4 * c)


def unsqueeze(x: jax.Array) -> jax.Array:
  """The inverse of `squeeze`."""
  b, h, w, c = x.shape
  x = x.reshape(b, h, w, 2, 2, c // 4).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, 2 * h, 2 * w, c // 4)


class ActNorm(nn.Module):
  """A learnt scale and shift per channel (Glow), starting as the identity: what lets the
  flow stretch the near-constant logits of a dark background to unit variance, which
  the couplings' bounded scales cannot."""

  @nn.compact
  def __call__(self, x: jax.Array, reverse: bool) -> tuple[jax.Array, jax.Array]:
    log_scale = self.param('log_scale', nn.initializers.zeros, (x.shape[-1],))
    bias = self.param('bias', nn.initializers.zeros, (x.shape[-1],))
    log_det = jnp.full(x.shape[0], x.shape[1] * x.shape[2] * jnp.sum(log_scale))
    if reverse:
      return (x - bias) * jnp.exp(-log_scale), -log_det
    return x * jnp.exp(log_scale) + bias, log_det


class AffineCoupling(nn.Module):
  """The first half of the channels sets a scale and shift of the second half."""
  hidden: int

  @nn.compact
  def __call__(self, x: jax.Array, reverse: bool) -> tuple[jax.Array, jax.Array]:
    """(transformed x, log|det| per image); `reverse` undoes the forward map."""
    kept, changed = jnp.split(x, 2, axis=-1)
    h = nn.relu(SameConv(self.hidden, (3, 3))(kept))
    h = nn.relu(SameConv(self.hidden, (1, 1))(h))
    # Zero-initialised: each coupling starts as (nearly) the identity.
    h = SameConv(2 * changed.shape[-1], (3, 3), kernel_init=nn.initializers.zeros)(h)
    shift, raw_scale = jnp.split(h, 2, axis=-1)
    scale = jax.nn.sigmoid(raw_scale + 2.0)  # In (0, 1): stable, as in Glow.
    log_det = jnp.sum(jnp.log(scale), axis=(1, 2, 3))
    if reverse:
      return jnp.concatenate([kept, changed / scale - shift], axis=-1), -log_det
    return jnp.concatenate([kept, (changed + shift) * scale], axis=-1), log_det


class RealNvp(nn.Module):
  """`forward`: logit-space images -> (latents [B, 784], log|det|); `inverse`: back."""
  features: tuple[int] = (64,)  # The couplings' hidden width.
  steps_per_level: int = 4

  def setup(self):
    self.norms = [[ActNorm() for _ in range(self.steps_per_level)] for _ in range(NUM_LEVELS)]
    self.couplings = [[AffineCoupling(self.features[0]) for _ in range(self.steps_per_level)]
                      for _ in range(NUM_LEVELS)]

  def _level(self, level: int, x: jax.Array, reverse: bool) -> tuple[jax.Array, jax.Array]:
    """One level's steps: ActNorm, a coupling, then a reversal of the channel order."""
    log_det = jnp.zeros(x.shape[0])
    steps = list(zip(self.norms[level], self.couplings[level]))
    for norm, coupling in (reversed(steps) if reverse else steps):
      if reverse:
        x = x[..., ::-1]
        x, coupling_log_det = coupling(x, reverse)
        x, norm_log_det = norm(x, reverse)
      else:
        x, norm_log_det = norm(x, reverse)
        x, coupling_log_det = coupling(x, reverse)
        x = x[..., ::-1]
      log_det = log_det + norm_log_det + coupling_log_det
    return x, log_det

  def forward(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    x, log_det = self._level(0, squeeze(x), reverse=False)
    leaving, x = jnp.split(x, 2, axis=-1)  # Half the channels are latents already.
    x, more_log_det = self._level(1, squeeze(x), reverse=False)
    latents = jnp.concatenate([leaving.reshape(x.shape[0], -1), x.reshape(x.shape[0], -1)], -1)
    return latents, log_det + more_log_det

  def inverse(self, latents: jax.Array) -> jax.Array:
    """Latents [B, 784] -> logit-space images [B, 28, 28, 1]."""
    batch, half = latents.shape[0], latents.shape[1] // 2
    leaving = latents[:, :half].reshape(batch, 14, 14, 2)
    x = latents[:, half:].reshape(batch, 7, 7, 8)
    x, _ = self._level(1, x, reverse=True)
    x = jnp.concatenate([leaving, unsqueeze(x)], axis=-1)
    x, _ = self._level(0, x, reverse=True)
    return unsqueeze(x)

  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    return self.forward(x)
