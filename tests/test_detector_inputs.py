"""What a dedicated detector sees (image, NPR, high-pass, spectra) and the patch classifier."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import autogan_fmnist, detectors_fmnist
from fakejax import detectors, sharding, studies
from fakejax.config import ConfigError
from fakejax.data import transforms
from fakejax.models import build_classifier
from fakejax.train import classifier_steps, classifier_trainer, gan_steps, loop
from fakejax.workdir import RunDir


def random_images(shape=(3, 28, 28, 1), seed=0) -> jax.Array:
  return jax.random.uniform(jax.random.PRNGKey(seed), shape, minval=-1.0, maxval=1.0)


def test_npr_vanishes_exactly_on_nearest_upsampled_images():
  images = random_images()
  upsampled = jnp.repeat(jnp.repeat(images[:, :14, :14], 2, axis=1), 2, axis=2)
  assert float(jnp.abs(transforms.npr_residual(upsampled)).max()) == 0.0
  # Elsewhere it holds each pixel's difference to its 2x2 block's top-left pixel.
  residual = transforms.npr_residual(images)
  assert float(jnp.abs(residual).mean()) > 0.2
  np.testing.assert_array_equal(residual[:, ::2, ::2], 0.0)
  np.testing.assert_allclose(residual[:, 1, 1], images[:, 1, 1] - images[:, 0, 0], atol=1e-6)
  odd = random_images((2, 7, 9, 3))
  assert transforms.npr_residual(odd).shape == odd.shape


def test_highpass_residuals_vanish_on_flat_and_linear_images_and_see_edges():
  rows, cols = jnp.meshgrid(jnp.arange(28.0), jnp.arange(28.0), indexing='ij')
  ramp = (0.03 * rows - 0.02 * cols)[None, :, :, None]
  flat = jnp.full((1, 28, 28, 2), 0.3)
  assert float(jnp.abs(transforms.highpass_residuals(flat)).max()) == 0.0
  # Interior only: the repeated edge bends a ramp at the border.
  assert float(jnp.abs(transforms.highpass_residuals(ramp)[:, 1:-1, 1:-1]).max()) < 1e-5
  edge = jnp.zeros((1, 28, 28, 1)).at[:, :, 14:].set(1.0)
  response = transforms.highpass_residuals(edge)
  assert response.shape == (1, 28, 28, transforms.input_channels('highpass', 1)) == (1, 28, 28, 3)
  assert float(jnp.abs(response[..., 0]).max()) > 0.4  # Across the edge.
  assert float(jnp.abs(response[..., 1]).max()) == 0.0  # Down it: nothing changes.


def test_highpass_filters_each_channel_on_its_own():
  images = random_images((2, 28, 28, 3))
  together = transforms.highpass_residuals(images)
  for channel in range(3):
    alone = transforms.highpass_residuals(images[..., channel:channel + 1])
    np.testing.assert_allclose(together[..., 3 * channel:3 * channel + 3], alone, atol=1e-6)


def test_spectra_keep_the_image_shape_and_see_a_periodic_pattern():
  cols = jnp.arange(28.0)
  stripes = jnp.broadcast_to(jnp.cos(jnp.pi * cols)[:, None], (1, 28, 28, 1))  # Period 2 across.
  fft = transforms.log_spectrum(stripes)
  assert fft.shape == stripes.shape
  assert int(jnp.argmax(fft[0, :, :, 0])) == 14 * 28 + 0  # Centred: row 14, column 0.
  dct = transforms.log_dct(stripes)
  assert dct.shape == stripes.shape and int(jnp.argmax(dct[0, :, :, 0])) == 27


def test_every_input_kind_has_its_shape():
  images = jnp.zeros((2, 28, 28, 1))
  identity = lambda x: x * 0.5
  for kind in transforms.INPUT_KINDS:
    shape = transforms.classifier_input(kind, images, identity).shape
    assert shape == (2, 28, 28, transforms.input_channels(kind, 1)), kind
  with pytest.raises(ValueError, match="'residual' needs an autoencoder"):
    transforms.classifier_input('residual', images)


def test_a_patch_classifiers_logit_is_the_mean_of_its_patches_logits():
  """Each patch logit sees a 7x7 window (3 convolutions): the image's logit is the mean
  of the logits of every 7x7 crop, each classified alone."""
  model = build_classifier('patch_cnn', hidden=8, dropout_rate=0.5, outputs=1,
                           features=(4, 8, 8))
  images = random_images((2, 12, 12, 1))
  variables = model.init(jax.random.PRNGKey(1), images, train=False)
  # Non-trivial batch statistics, as after training.
  variables = jax.tree.map(lambda leaf: leaf + 0.1 * jnp.arange(leaf.size).reshape(leaf.shape)
                           / leaf.size, variables)
  whole = model.apply(variables, images, train=False)
  crops = jnp.stack([images[:, i:i + 7, j:j + 7] for i in range(6) for j in range(6)], axis=1)
  per_crop = model.apply(variables, crops.reshape(-1, 7, 7, 1), train=False).reshape(2, 36)
  np.testing.assert_allclose(whole[:, 0], per_crop.mean(axis=1), atol=1e-5)


def tiny_config(**classifier_overrides):
  config = detectors_fmnist.get_config('tiny')
  config.classifier.update(classifier_overrides)
  return config


@pytest.mark.parametrize('architecture,features,input_kind', [
    ('patch_cnn', (4, 8, 8), 'npr'), ('sequential_cnn', (4, 8, 8), 'highpass')])
def test_a_checkpoint_restores_with_its_input(architecture, features, input_kind, tmp_path):
  """The detectors study records the input; a restored detector (predict's) computes it."""
  config = tiny_config(architecture=architecture, features=features, hidden=8,
                       input=input_kind)
  studies.validate(config, num_devices=jax.device_count())
  mesh = sharding.build_mesh()
  classifier = classifier_trainer.classifier_of(config.classifier, input_kind)
  job = classifier_trainer.classifier_job(
      'tiny', config.classifier, classifier, (28, 28, 1), frozen={}, skip_nonfinite=False,
      metadata={'input': input_kind}, mesh=mesh)
  rng = np.random.default_rng(0)
  train = {'image': rng.integers(0, 256, (32, 28, 28, 1), dtype=np.uint8),
           'label': rng.integers(0, 2, 32).astype(np.int32)}
  run = RunDir(tmp_path / 'classifiers' / 'tiny')
  result = loop.train(job, loop.LoopSettings.from_config(config, batch_size=16, num_epochs=1),
                      train, run, mesh)
  entry = detectors.DetectorEntry('tiny', 'classifier', run, run)
  restored = detectors.restore_detector(config, entry, [result.num_steps], mesh, batch_size=16)
  assert restored.architecture == f'{architecture} on {input_kind}'
  images = train['image'][:8]
  variables = classifier_steps.variables(result.state)
  inputs = transforms.classifier_input(input_kind, gan_steps.to_model_range(jnp.asarray(images)))
  logits = classifier.model.apply({'params': variables['params'],
                                   'batch_stats': variables['batch_stats']}, inputs, train=False)
  expected = jax.nn.sigmoid(classifier_steps.real_logit(logits))
  np.testing.assert_allclose(restored.scorer.score(images)[0], expected, atol=1e-5)
  if transforms.input_channels(input_kind, 1) == 1:  # The same weights on raw images differ.
    on_images = classifier_steps.make_score(classifier.model, classifier_trainer.make_prepare(
        'image', None))(variables, jnp.asarray(images))
    assert not np.allclose(on_images, expected, atol=1e-3)


def test_input_mistakes_are_named():
  with pytest.raises(ConfigError, match="'classifier.input' is 'wavelets'"):
    studies.validate(tiny_config(input='wavelets'), num_devices=1)
  with pytest.raises(ConfigError, match="'classifier.input' is 'residual'"):
    studies.validate(tiny_config(input='residual'), num_devices=1)  # Needs an autoencoder.
  config = autogan_fmnist.get_config('tiny')
  config.classifier.inputs = ('image', 'npr', 'highpass', 'image_dct')  # No autoencoder needed.
  config.autoencoders = {}
  studies.validate(config, num_devices=1)
