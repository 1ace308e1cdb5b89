"""Pretrained weights: converted from Keras Applications and torchvision, saved, loaded.

Conversion maps another framework's weights, as NumPy arrays by layer name, onto the
variables of this project's models (`tools/convert_weights.py` is its command line).
A converted file is an `.npz` of flat keys ('params/Conv1/kernel', ...) and serves any
input size. Loading keeps the new head: a pretrained file carries the backbone only.
"""

import pathlib
import re

import flax
import numpy as np

from fakejax.errors import UserError

HEAD_PREFIX = 'head'


class PretrainedWeightsError(UserError, ValueError):
  """Weights that do not fit the model, or a file that is not a converted weights file."""


def _set(variables: dict, collection: str, path: tuple[str, ...], value: np.ndarray) -> None:
  node = variables.setdefault(collection, {})
  for part in path[:-1]:
    node = node.setdefault(part, {})
  if path[-1] in node:
    raise PretrainedWeightsError(f'Two weights map to {collection}/{"/".join(path)}.')
  node[path[-1]] = np.asarray(value, np.float32)


def keras_variables(layers) -> dict:
  """Variables of a `mobilenets` model from a Keras Applications model's layers.

  Args:
    layers: (class name, layer name, {weight name: array}) of each Keras layer, in
      order, e.g. from `model.layers` of `keras.applications.MobileNetV2(include_top=False)`.

  Keras's input scaling is where the Flax models expect [-1, 1] inputs; the statistics of
  its Normalization layer (EfficientNet) become `batch_stats/normalization`, with a
  per-channel Rescaling after it folded into the variance.
  """
  variables = {}
  normalization = None
  for class_name, name, weights in layers:
    if class_name == 'Normalization':
      normalization = {'mean': weights['mean'], 'var': weights['variance']}
    elif class_name == 'Rescaling':
      if normalization is None:
        continue  # Pixels to the model's input range: the Flax model takes [-1, 1].
      scale, offset = (np.asarray(weights[key], np.float32) for key in ('scale', 'offset'))
      if np.any(offset != 0):
        raise PretrainedWeightsError(f'Rescaling {name!r} after normalisation has an offset.')
      # (x - mean) / sqrt(var) * scale == (x - mean) / sqrt(var / scale**2).
      normalization['var'] = normalization['var'] / np.broadcast_to(
          scale, normalization['var'].shape) ** 2
    elif class_name == 'Conv2D':
      _set(variables, 'params', (name, 'kernel'), weights['kernel'])
      if 'bias' in weights:
        _set(variables, 'params', (name, 'bias'), weights['bias'])
    elif class_name == 'DepthwiseConv2D':
      # Keras: [h, w, channels, multiplier]; a grouped Flax Conv: [h, w, 1, channels].
      _set(variables, 'params', (name, 'kernel'), np.transpose(weights['kernel'], (0, 1, 3, 2)))
    elif class_name == 'BatchNormalization':
      _set(variables, 'params', (name, 'scale'), weights['gamma'])
      _set(variables, 'params', (name, 'bias'), weights['beta'])
      _set(variables, 'batch_stats', (name, 'mean'), weights['moving_mean'])
      _set(variables, 'batch_stats', (name, 'var'), weights['moving_variance'])
    elif weights:
      raise PretrainedWeightsError(
          f'Keras layer {name!r} ({class_name}) has weights this converter does not map: '
          'convert with include_top=False.')
  if normalization is not None:
    _set(variables, 'batch_stats', ('normalization', 'mean'), normalization['mean'])
    _set(variables, 'batch_stats', ('normalization', 'var'), normalization['var'])
  return variables


_TORCH_NORM = {'weight': ('params', 'scale'), 'bias': ('params', 'bias'),
               'running_mean': ('batch_stats', 'mean'), 'running_var': ('batch_stats', 'var')}


def _torch_module_path(name: str) -> tuple[str, ...] | None:
  """A torchvision ResNet module name -> the `classifiers.ResNet` module path."""
  if name in ('conv1', 'bn1'):
    return ('stem_conv',) if name == 'conv1' else ('stem_norm',)
  match = re.fullmatch(r'layer(\d+)\.(\d+)\.(conv|bn)(\d+)', name)
  if match:
    stage, block, kind, index = match.groups()
    layer = 'Conv' if kind == 'conv' else 'BatchNorm'
    return (f'stage{stage}_block{int(block) + 1}', f'{layer}_{int(index) - 1}')
  match = re.fullmatch(r'layer(\d+)\.(\d+)\.downsample\.([01])', name)
  if match:
    stage, block, index = match.groups()
    return (f'stage{stage}_block{int(block) + 1}',
            'projection' if index == '0' else 'projection_norm')
  return None


def torchvision_resnet_variables(state_dict: dict[str, np.ndarray]) -> dict:
  """Variables of `classifiers.resnet18`/`resnet50` from a torchvision ResNet state dict.

  The ImageNet classifier (`fc`) is left out: the model brings its own head.
  """
  variables = {}
  for key, value in state_dict.items():
    module, _, weight = key.rpartition('.')
    if module == 'fc' or weight == 'num_batches_tracked':
      continue
    path = _torch_module_path(module)
    if path is None:
      raise PretrainedWeightsError(f'Unexpected torchvision ResNet weight {key!r}.')
    if value.ndim == 4:  # [out, in, h, w] -> [h, w, in, out].
      _set(variables, 'params', (*path, 'kernel'), np.transpose(value, (2, 3, 1, 0)))
    else:
      collection, flax_name = _TORCH_NORM[weight]
      _set(variables, collection, (*path, flax_name), value)
  return variables


def save(path: str | pathlib.Path, variables: dict, architecture: str) -> None:
  flat = {'/'.join(key): value for key, value in
          flax.traverse_util.flatten_dict(variables).items()}
  np.savez(path, __architecture__=np.array(architecture), **flat)


def load(path: str | pathlib.Path, architecture: str) -> dict:
  """The variables of a converted file, checked to be for `architecture`."""
  try:
    with np.load(path) as archive:
      arrays = dict(archive.items())
  except (OSError, ValueError, EOFError) as error:
    raise PretrainedWeightsError(f'Cannot read pretrained weights {path}: {error}') from error
  saved_for = str(arrays.pop('__architecture__', ''))
  if saved_for != architecture:
    raise PretrainedWeightsError(
        f'Pretrained weights {path} are for {saved_for or "an unknown model"!r}, not '
        f'{architecture!r}: convert them with tools/convert_weights.py.')
  return flax.traverse_util.unflatten_dict({tuple(key.split('/')): value
                                            for key, value in arrays.items()})


def _fit_channels(name: str, pretrained: np.ndarray, target_shape: tuple[int, ...]) -> np.ndarray:
  """Adapts weights made for RGB input to grayscale input; anything else is an error.

  A first convolution's kernel sums over the colour channels (a gray image is the same
  value in all three); input statistics average.
  """
  if pretrained.shape == target_shape:
    return pretrained
  if (target_shape[-2:-1] == (1,) and pretrained.shape[-2] == 3
      and pretrained.shape[:-2] + pretrained.shape[-1:] == target_shape[:-2] + target_shape[-1:]):
    return pretrained.sum(axis=-2, keepdims=True)
  if target_shape == (1,) and pretrained.shape == (3,):
    return pretrained.mean(keepdims=True)
  raise PretrainedWeightsError(
      f'Pretrained weight {name} has shape {pretrained.shape}, the model {target_shape}.')


def merge(variables: dict, pretrained: dict) -> dict:
  """`variables` with every non-head weight replaced by its pretrained value.

  Every pretrained weight must exist in the model and every backbone weight must be
  pretrained, so that a wrong architecture or a partial file cannot pass silently.
  """
  flat_model = flax.traverse_util.flatten_dict(variables)
  flat_pretrained = flax.traverse_util.flatten_dict(pretrained)
  unknown = sorted('/'.join(key) for key in flat_pretrained if key not in flat_model)
  missing = sorted('/'.join(key) for key in flat_model
                   if key not in flat_pretrained and not key[1].startswith(HEAD_PREFIX))
  if unknown or missing:
    raise PretrainedWeightsError(
        f'Pretrained weights do not fit the model: {len(unknown)} unknown (first: '
        f'{unknown[:3]}), {len(missing)} missing (first: {missing[:3]}).')
  merged = dict(flat_model)
  for key, value in flat_pretrained.items():
    merged[key] = _fit_channels('/'.join(key), value, tuple(flat_model[key].shape)).astype(
        flat_model[key].dtype)
  return flax.traverse_util.unflatten_dict(merged)
