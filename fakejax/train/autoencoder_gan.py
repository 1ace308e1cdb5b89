"""The adversarially trained autoencoder (after Zhang et al. 2019, "AutoGAN").

Trained on real images only. The autoencoder plays the generator's part in
`gan_steps.adversarial_update`: its reconstructions are the fakes D must tell from the
reals, and its loss is a weighted sum of the reconstruction error and the non-saturating
adversarial loss. The state is a `GanState` whose `g_*` fields hold the autoencoder.
"""

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from fakejax.train import gan_state, gan_steps
from fakejax.train.gan_state import GanState

RECONSTRUCTION_LOSSES = {
    'l1': lambda reconstructions, images: jnp.abs(reconstructions - images).mean(),
    'l2': lambda reconstructions, images: jnp.square(reconstructions - images).mean(),
}


def init_state(autoencoder: nn.Module, discriminator: nn.Module,
               tx: optax.GradientTransformation, image_shape: tuple[int, int, int],
               rng: jax.Array) -> GanState:
  """Initial state for a seed (pure: jit it with replicated out_shardings)."""
  ae_key, d_key, train_key = jax.random.split(rng, 3)
  images = jnp.zeros((1, *image_shape))
  return gan_state.state_from_variables(autoencoder.init(ae_key, images),
                                        discriminator.init(d_key, images, train=False),
                                        tx, train_key)


def make_train_step(autoencoder: nn.Module, discriminator: nn.Module,
                    tx: optax.GradientTransformation, *, reconstruction_loss: str = 'l1',
                    reconstruction_weight: float = 1.0, adversarial_weight: float = 0.01,
                    skip_nonfinite: bool = False
                    ) -> Callable[[GanState, jax.Array], tuple[GanState, gan_steps.Metrics]]:
  """Returns `train_step(state, real_uint8) -> (state, metrics)`, pure and jittable."""
  if reconstruction_loss not in RECONSTRUCTION_LOSSES:
    raise ValueError(f'Unknown reconstruction loss {reconstruction_loss!r}; known: '
                     f'{sorted(RECONSTRUCTION_LOSSES)}.')
  error = RECONSTRUCTION_LOSSES[reconstruction_loss]

  def train_step(state: GanState, real_uint8: jax.Array):
    _, *dropout_keys = gan_steps.step_keys(state)
    real = gan_steps.to_model_range(real_uint8)

    def reconstruct(ae_params):
      return autoencoder.apply({'params': ae_params}, real), {}

    def autoencoder_loss(fake_logits, reconstructions):
      reconstruction = error(reconstructions, real)
      adversarial = gan_steps.bce(fake_logits, 1.0)
      loss = reconstruction_weight * reconstruction + adversarial_weight * adversarial
      return loss, {'reconstruction_loss': reconstruction, 'adversarial_loss': adversarial}

    return gan_steps.adversarial_update(state, real, reconstruct, autoencoder_loss,
                                        discriminator, tx, tuple(dropout_keys), skip_nonfinite)

  return train_step
