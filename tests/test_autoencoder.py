"""Autoencoder shapes, its adversarial training step, and the detector's input transforms."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fakejax.data import transforms
from fakejax.models.autoencoder import UPSAMPLERS, AutoEncoder, depth_to_space
from fakejax.models.dcgan import TFDiscriminator
from fakejax.train import autoencoder_gan


@pytest.mark.parametrize('upsampler', sorted(UPSAMPLERS))
@pytest.mark.parametrize('depth', [1, 4])
@pytest.mark.parametrize('shape', [(3, 28, 28, 1), (2, 64, 64, 3)])
def test_autoencoder_reconstructs_the_input_shape_in_tanh_range(depth, shape, upsampler):
  images = jax.random.uniform(jax.random.PRNGKey(0), shape, minval=-1, maxval=1)
  model = AutoEncoder(depth, base_features=8, latent_features=8, upsampler=upsampler)
  variables = model.init(jax.random.PRNGKey(1), images)
  reconstructions = model.apply(variables, images)
  assert reconstructions.shape == shape
  assert float(jnp.abs(reconstructions).max()) <= 1.0


@pytest.mark.parametrize('depth,code_size', [(1, 14), (4, 2)])
def test_depth_sets_the_code_resolution(depth, code_size):
  images = jnp.zeros((1, 28, 28, 1))
  model = AutoEncoder(depth, latent_features=8)
  _, state = model.apply(model.init(jax.random.PRNGKey(0), images), images,
                         capture_intermediates=lambda m, _: type(m).__name__ == 'Encoder',
                         mutable=['intermediates'])
  (code,) = jax.tree.leaves(state['intermediates'])
  assert code.shape == (1, code_size, code_size, 8)


def test_depth_to_space_puts_channel_group_2i_plus_j_at_pixel_offset_i_j():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 5, 4 * 6))
  y = depth_to_space(x)
  assert y.shape == (2, 6, 10, 6)
  for i in range(2):
    for j in range(2):
      group = 2 * i + j
      np.testing.assert_array_equal(y[:, i::2, j::2], x[..., group * 6:(group + 1) * 6])


def test_upsamplers_differ_and_the_default_keeps_its_parameter_names():
  images = jax.random.uniform(jax.random.PRNGKey(0), (1, 28, 28, 1), minval=-1, maxval=1)
  names = {}
  for upsampler in UPSAMPLERS:
    variables = AutoEncoder(1, upsampler=upsampler).init(jax.random.PRNGKey(1), images)
    names[upsampler] = sorted(variables['params']['Decoder_0'])
  # Checkpoints written before the choice existed restore as 'transposed'.
  assert names['transposed'] == ['SubPixelConvTranspose_0']
  assert names['nearest'] == names['bilinear'] == names['pixel_shuffle'] == ['Conv_0']


def test_autoencoder_rejects_depth_zero():
  with pytest.raises(ValueError, match='depth >= 1'):
    AutoEncoder(0).init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))


@pytest.mark.parametrize('depth', [1, 4])
def test_reconstruction_loss_falls_on_a_tiny_batch(depth):
  images = jax.random.uniform(jax.random.PRNGKey(0), (8, 28, 28, 1), minval=-1, maxval=1)
  model = AutoEncoder(depth)
  params = model.init(jax.random.PRNGKey(1), images)['params']
  tx = optax.adam(1e-3)
  opt_state = tx.init(params)

  def loss(params):
    return jnp.abs(model.apply({'params': params}, images) - images).mean()

  @jax.jit
  def step(params, opt_state):
    value, grads = jax.value_and_grad(loss)(params)
    updates, opt_state = tx.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, value

  losses = []
  for _ in range(30):
    params, opt_state, value = step(params, opt_state)
    losses.append(float(value))
  assert losses[-1] < 0.8 * losses[0], losses


def test_spectrum_of_a_constant_image_is_its_mean_at_the_centre_only():
  image = jnp.full((1, 8, 6, 2), 0.5)
  spectrum = transforms.log_spectrum(image)
  expected = np.zeros((1, 8, 6, 2))
  expected[0, 4, 3, :] = np.log1p(0.5 * 8 * 6)  # fftshift puts zero frequency at (H/2, W/2).
  np.testing.assert_allclose(spectrum, expected, atol=1e-5)


def test_spectrum_of_a_stripe_pattern_peaks_at_its_frequency():
  columns = jnp.cos(jnp.pi * jnp.arange(8))  # +1, -1, ...: the highest horizontal frequency.
  image = jnp.broadcast_to(columns[None, None, :, None], (1, 8, 8, 1))
  spectrum = np.asarray(transforms.log_spectrum(image))[0, :, :, 0]
  assert np.unravel_index(spectrum.argmax(), spectrum.shape) == (4, 0)
  assert np.count_nonzero(spectrum > 1e-5) == 1


def test_classifier_inputs_of_each_kind():
  images = jax.random.uniform(jax.random.PRNGKey(0), (2, 28, 28, 1), minval=-1, maxval=1)
  halve = lambda x: x / 2
  np.testing.assert_array_equal(transforms.classifier_input('image', images), images)
  np.testing.assert_allclose(transforms.classifier_input('reconstruction', images, halve),
                             images / 2)
  np.testing.assert_allclose(transforms.classifier_input('residual', images, halve),
                             images / 2)
  np.testing.assert_allclose(transforms.classifier_input('residual', images, lambda x: x),
                             jnp.zeros_like(images))
  np.testing.assert_allclose(transforms.classifier_input('residual_spectrum', images, halve),
                             transforms.log_spectrum(images / 2), atol=1e-5)
  with pytest.raises(ValueError, match='needs an autoencoder'):
    transforms.classifier_input('residual', images)
  with pytest.raises(ValueError, match="Unknown classifier input 'pixels'"):
    transforms.classifier_input('pixels', images)


@pytest.mark.parametrize('depth', [1, 4])
def test_adversarial_autoencoder_step_lowers_the_reconstruction_loss(depth):
  images = np.random.default_rng(0).integers(0, 255, (16, 28, 28, 1), dtype=np.uint8)
  autoencoder, discriminator = AutoEncoder(depth), TFDiscriminator()
  tx = optax.adam(1e-3)
  state = autoencoder_gan.init_state(autoencoder, discriminator, tx, (28, 28, 1),
                                     jax.random.PRNGKey(0))
  step = jax.jit(autoencoder_gan.make_train_step(autoencoder, discriminator, tx,
                                                 reconstruction_loss='l2'))
  losses = []
  for _ in range(20):
    state, metrics = step(state, images)
    assert all(np.isfinite(float(v)) for v in metrics.values())
    losses.append(float(metrics['reconstruction_loss']))
  assert int(state.step) == 20
  assert losses[-1] < 0.7 * losses[0], losses


def test_unknown_reconstruction_loss_is_a_clear_error():
  with pytest.raises(ValueError, match="Unknown reconstruction loss 'l3'"):
    autoencoder_gan.make_train_step(AutoEncoder(1), TFDiscriminator(), optax.adam(1e-3),
                                    reconstruction_loss='l3')
