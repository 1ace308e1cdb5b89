"""Pretrained weights: Keras Applications and torchvision models converted to Flax, output for output.

The reference models are built with random weights (nothing downloads here), every
weight and statistic randomised, then converted; the Flax model must compute the same
pooled features within 1e-4. The head is set to the identity for the comparison.
"""

import functools
import importlib.util
import os
import subprocess
import sys

os.environ.setdefault('KERAS_BACKEND', 'jax')

import flax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax  # pylint: disable=wrong-import-position
import jax.numpy as jnp  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
import pytest  # pylint: disable=wrong-import-position

from fakejax import models  # pylint: disable=wrong-import-position
from fakejax.models import pretrained  # pylint: disable=wrong-import-position
from tests.conftest import REPO_ROOT, load_tool  # pylint: disable=wrong-import-position

TOLERANCE = 1e-4


convert_weights = load_tool('convert_weights')


def identity_head(variables: dict, num_features: int) -> dict:
  """The model's variables with a head that returns its pooled features unchanged."""
  params = dict(variables['params'])
  params['head'] = {'kernel': jnp.eye(num_features), 'bias': jnp.zeros(num_features)}
  return {**variables, 'params': params}


def flax_features(architecture: str, converted: dict, images: np.ndarray,
                  num_features: int) -> np.ndarray:
  """Pooled features of the Flax model carrying `converted` weights."""
  model = models.CLASSIFIERS[architecture].builder(outputs=num_features)
  # Shapes only: `converted` and the identity head fill every variable.
  variables = jax.eval_shape(functools.partial(model.init, train=False),
                             jax.random.PRNGKey(0), jnp.asarray(images[:1]))
  variables = identity_head(pretrained.merge(variables, converted), num_features)
  apply = jax.jit(functools.partial(model.apply, train=False))
  return np.asarray(apply(variables, jnp.asarray(images)))


def randomise_keras(model, rng: np.random.Generator) -> None:
  """Every weight of a Keras model random; variances positive."""
  for weight in model.weights:
    shape = tuple(weight.shape)
    if weight.name in ('moving_variance', 'variance'):
      value = rng.uniform(0.5, 1.5, shape)
    elif weight.name == 'gamma':  # Small enough that activations stay near 1 in deep nets.
      value = rng.uniform(0.2, 0.6, shape)
    elif weight.name == 'count':
      value = np.zeros(shape)
    elif weight.name == 'kernel' and len(shape) == 4:
      fan_in = shape[0] * shape[1] * (1 if 'depthwise' in weight.path else shape[2])
      value = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
    else:
      value = rng.normal(0.0, 0.1, shape)
    weight.assign(value.astype(weight.dtype))


def random_keras_model(architecture: str, input_shape, rng: np.random.Generator):
  """A Keras Applications backbone with every weight drawn by `randomise_keras`.

  Built in a stateless scope, where Keras defers its initialisers: each would compile one
  XLA program per weight shape (about a minute for EfficientNet-B0 on 2 cores), only for
  its values to be replaced here.
  """
  import keras  # pylint: disable=g-import-not-at-top
  with keras.StatelessScope():
    model = convert_weights.build_keras_model(architecture, None, input_shape)
  randomise_keras(model, rng)
  return model


def keras_forward(model, images: np.ndarray) -> np.ndarray:
  """The model's inference output, compiled as one program (eager runs op by op)."""
  forward = jax.jit(lambda trainable, fixed, x: model.stateless_call(trainable, fixed, x,
                                                                     training=False)[0])
  return np.asarray(forward([v.value for v in model.trainable_variables],
                            [v.value for v in model.non_trainable_variables], images))


# Even sizes pad strided layers on one side (0, 1), odd sizes on both: each is covered.
@pytest.mark.parametrize('architecture,input_shape', [
    ('mobilenet_v2', (64, 64, 3)), ('mobilenet_v3_large', (71, 57, 3)),
    ('efficientnet_b0', (57, 64, 3))])
def test_keras_weights_convert_to_the_same_features(architecture, input_shape):
  rng = np.random.default_rng(0)
  model = random_keras_model(architecture, input_shape, rng)
  converted = pretrained.keras_variables(convert_weights.keras_layers(model))
  images = rng.uniform(-1.0, 1.0, (2, *input_shape)).astype(np.float32)
  # Keras models take pixels in [0, 255] (their own rescaling) but MobileNetV2, [-1, 1].
  keras_input = images if architecture == 'mobilenet_v2' else (images + 1.0) * 127.5
  expected = keras_forward(model, keras_input).mean(axis=(1, 2))
  actual = flax_features(architecture, converted, images, expected.shape[-1])
  assert 0.1 < np.abs(expected).max() < 100  # Neither trivially zero nor huge.
  np.testing.assert_allclose(actual, expected, atol=TOLERANCE, rtol=0)


def test_keras_normalisation_and_its_rescaling_fold_into_one_statistic():
  layers = [('Rescaling', 'rescaling', {'scale': np.float32(1 / 255), 'offset': np.float32(0)}),
            ('Normalization', 'normalization',
             {'mean': np.array([0.4, 0.5, 0.6]), 'variance': np.array([0.04, 0.09, 0.16]),
              'count': np.int64(0)}),
            ('Rescaling', 'rescaling_1', {'scale': np.array([2.0, 4.0, 0.5]),
                                          'offset': np.float32(0)})]
  statistics = pretrained.keras_variables(layers)['batch_stats']['normalization']
  pixels = np.array([0.1, 0.7, 0.3])
  keras_result = (pixels - [0.4, 0.5, 0.6]) / np.sqrt([0.04, 0.09, 0.16]) * [2.0, 4.0, 0.5]
  np.testing.assert_allclose((pixels - statistics['mean']) / np.sqrt(statistics['var']),
                             keras_result, rtol=1e-6)


# Runs in its own process: importing PyTorch's CUDA build beside TensorFlow and JAX in
# one process crashed it. Writes the reference's state dict and pooled features.
TORCHVISION_REFERENCE = """
import sys
import numpy as np
import torch
import torchvision

architecture, out = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
rng = np.random.default_rng(0)
model = getattr(torchvision.models, architecture)(weights=None).eval()
with torch.no_grad():  # Every statistic and norm scale random, so that all of them matter.
  for name, buffer in model.named_buffers():
    if name.endswith('running_mean'):
      buffer.copy_(torch.from_numpy(rng.normal(0.0, 0.1, buffer.shape).astype(np.float32)))
    elif name.endswith('running_var'):
      buffer.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, buffer.shape).astype(np.float32)))
  for name, parameter in model.named_parameters():
    if 'bn' in name or 'downsample.1' in name:
      parameter.copy_(torch.from_numpy(rng.uniform(0.2, 0.6, parameter.shape).astype(np.float32)))
model.fc = torch.nn.Identity()
# An odd size, where XLA's 'SAME' padding and PyTorch's would differ.
images = np.random.default_rng(1).uniform(-1.0, 1.0, (2, 65, 65, 3)).astype(np.float32)
with torch.no_grad():
  features = model(torch.from_numpy(images.transpose(0, 3, 1, 2))).numpy()
np.savez(out, images=images, features=features,
         **{'state/' + key: value.numpy() for key, value in model.state_dict().items()})
"""


@pytest.mark.parametrize('architecture', ['resnet18', 'resnet50'])
def test_torchvision_weights_convert_to_the_same_features(architecture, tmp_path):
  if importlib.util.find_spec('torchvision') is None:
    pytest.skip('torchvision is not installed (pip install torch==2.14.1 torchvision==0.29.1)')
  result = subprocess.run([sys.executable, '-c', TORCHVISION_REFERENCE, architecture,
                           str(tmp_path / 'reference.npz')], capture_output=True, text=True,
                          timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  with np.load(tmp_path / 'reference.npz') as reference:
    state_dict = {key[len('state/'):]: reference[key] for key in reference.files
                  if key.startswith('state/')}
    images, expected = reference['images'], reference['features']
  converted = pretrained.torchvision_resnet_variables(state_dict)
  actual = flax_features(architecture, converted, images, expected.shape[-1])
  assert 0.1 < np.abs(expected).max() < 100
  np.testing.assert_allclose(actual, expected, atol=TOLERANCE, rtol=0)


def resnet_config(**classifier_overrides):
  from configs import detectors_fmnist  # pylint: disable=g-import-not-at-top
  config = detectors_fmnist.get_config('tiny')
  config.classifier.update(architecture='resnet18', features=(4, 8, 8, 8), hidden=0,
                           pooling='average', **classifier_overrides)
  return config


def rgb_resnet_weights(path, seed: int = 7) -> dict:
  """A converted-weights file of a tiny RGB ResNet-18 at ImageNet's stem, as the tool writes."""
  model = resnet_config().classifier
  from fakejax.train import classifier_trainer  # pylint: disable=g-import-not-at-top
  variables = classifier_trainer.classifier_model(model).init(
      jax.random.PRNGKey(seed), jnp.zeros((1, 64, 64, 3)), train=False)
  backbone = {collection: {name: value for name, value in tree.items()
                           if not name.startswith('head')}
              for collection, tree in jax.device_get(variables).items()}
  pretrained.save(path, backbone, 'resnet18')
  return backbone


def test_a_classifier_starts_from_pretrained_weights_and_grayscale_sums_the_colours(tmp_path):
  from fakejax import sharding  # pylint: disable=g-import-not-at-top
  from fakejax.train import classifier_trainer  # pylint: disable=g-import-not-at-top
  weights = rgb_resnet_weights(tmp_path / 'resnet18.npz')
  mesh = sharding.build_mesh()
  config = resnet_config(pretrained=str(tmp_path / 'resnet18.npz'))
  classifier = classifier_trainer.classifier_of(config.classifier)
  job = classifier_trainer.classifier_job(
      'pretrained', config.classifier, classifier, (64, 64, 1), frozen={},
      skip_nonfinite=config.skip_nonfinite_updates, metadata={}, mesh=mesh)
  state = job.start_from(jax.jit(job.init)(jax.random.PRNGKey(0)))
  np.testing.assert_allclose(state.params['stem_conv']['kernel'],
                             weights['params']['stem_conv']['kernel'].sum(axis=2, keepdims=True))
  np.testing.assert_array_equal(state.params['stage4_block2']['Conv_1']['kernel'],
                                weights['params']['stage4_block2']['Conv_1']['kernel'])
  np.testing.assert_array_equal(state.batch_stats['stage1_block1']['BatchNorm_0']['var'],
                                weights['batch_stats']['stage1_block1']['BatchNorm_0']['var'])
  assert state.params['head']['kernel'].shape == (8, 1)
  # Replicas of two seeds: each starts from the same backbone, with its own seed's head.
  from fakejax.train import replicas  # pylint: disable=g-import-not-at-top
  stacked_job = replicas.replicated_job(job, (0, 5), 'unrolled')
  init = jax.jit(stacked_job.init, out_shardings=sharding.replicated(mesh))
  stacked = stacked_job.start_from(init(jax.random.PRNGKey(0)))
  for k in range(2):
    np.testing.assert_allclose(stacked.params['stem_conv']['kernel'][k],
                               state.params['stem_conv']['kernel'])
  np.testing.assert_array_equal(stacked.params['head']['kernel'][0], state.params['head']['kernel'])
  assert not np.allclose(stacked.params['head']['kernel'][1], state.params['head']['kernel'])


def test_weights_for_another_model_or_a_corrupt_file_are_refused(tmp_path):
  path = tmp_path / 'resnet18.npz'
  weights = rgb_resnet_weights(path)
  with pytest.raises(pretrained.PretrainedWeightsError, match="for 'resnet18', not 'resnet50'"):
    pretrained.load(path, 'resnet50')
  (tmp_path / 'corrupt.npz').write_bytes(b'not a zip file')
  with pytest.raises(pretrained.PretrainedWeightsError, match='Cannot read pretrained weights'):
    pretrained.load(tmp_path / 'corrupt.npz', 'resnet18')
  del weights['params']['stage4_block2']
  model = models.CLASSIFIERS['resnet18'].builder(features=(4, 8, 8, 8))
  variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3)), train=False)
  with pytest.raises(pretrained.PretrainedWeightsError, match=r'missing \(first: \[.params/stage4_block2'):
    pretrained.merge(variables, weights)
  wide = models.CLASSIFIERS['resnet18'].builder(features=(8, 8, 8, 8))
  variables = wide.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3)), train=False)
  with pytest.raises(pretrained.PretrainedWeightsError, match='has shape'):
    pretrained.merge(variables, rgb_resnet_weights(path))


def test_a_missing_pretrained_file_is_a_config_error(tmp_path):
  from fakejax import studies  # pylint: disable=g-import-not-at-top
  from fakejax.config import ConfigError  # pylint: disable=g-import-not-at-top
  config = resnet_config(pretrained=str(tmp_path / 'absent.npz'))
  with pytest.raises(ConfigError, match="'classifier.pretrained' names .*absent.npz"):
    studies.validate(config, num_devices=8)


def test_the_conversion_tool_writes_a_file_the_classifier_loads(tmp_path):
  model = random_keras_model('mobilenet_v2', (96, 96, 3), np.random.default_rng(3))
  model.save_weights(tmp_path / 'mobilenet_v2.weights.h5')
  result = subprocess.run(
      [sys.executable, 'tools/convert_weights.py', 'keras', '--architecture=mobilenet_v2',
       f'--weights={tmp_path / "mobilenet_v2.weights.h5"}', f'--output={tmp_path / "out.npz"}'],
      cwd=REPO_ROOT, env={**os.environ, 'KERAS_BACKEND': 'jax'}, capture_output=True,
      text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'parameters of mobilenet_v2' in result.stdout
  loaded = pretrained.load(tmp_path / 'out.npz', 'mobilenet_v2')
  expected = pretrained.keras_variables(convert_weights.keras_layers(model))
  for (path, value), (other_path, other) in zip(
      sorted(flax.traverse_util.flatten_dict(loaded).items()),
      sorted(flax.traverse_util.flatten_dict(expected).items())):
    assert path == other_path
    np.testing.assert_array_equal(value, other)
