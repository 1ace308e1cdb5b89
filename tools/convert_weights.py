"""Converts pretrained ImageNet weights to fakejax's Flax classifiers.

  # Keras Applications (KERAS_BACKEND=jax; no TensorFlow needed). --weights: a Keras
  # weights file (.h5 / .weights.h5), or 'imagenet' for Keras's own, from its cache
  # (~/.keras/models) or the internet:
  KERAS_BACKEND=jax python tools/convert_weights.py keras --architecture=mobilenet_v3_large \\
      --weights=mobilenet_v3_large_no_top.h5 --output=weights/mobilenet_v3_large.npz
  # torchvision ResNets (a state dict saved with torch.save, e.g. resnet50-11ad3fa6.pth):
  python tools/convert_weights.py torchvision --architecture=resnet50 \\
      --weights=resnet50-11ad3fa6.pth --output=weights/resnet50.npz

Then train with --config.classifier.pretrained=weights/resnet50.npz. The backbone is
converted; the head is new. Keras's EfficientNet adds an input rescaling only when it
loads weights='imagenet' itself: convert its ImageNet weights with --weights=imagenet.
"""

import argparse
import os
import pathlib

import jax
import numpy as np

from fakejax.models import pretrained

# Our architecture name -> the Keras Applications constructor's name.
KERAS_APPLICATIONS = {'mobilenet_v2': 'MobileNetV2', 'mobilenet_v3_large': 'MobileNetV3Large',
                      'efficientnet_b0': 'EfficientNetB0'}
TORCHVISION_RESNETS = ('resnet18', 'resnet50')


def keras_layers(model) -> list[tuple[str, str, dict[str, np.ndarray]]]:
  """(class name, layer name, weights by name) of a Keras model, for the converter."""
  layers = []
  for layer in model.layers:
    weights = {weight.name: np.asarray(weight.numpy()) for weight in layer.weights}
    if type(layer).__name__ == 'Rescaling':
      weights = {'scale': np.asarray(layer.scale, np.float32),
                 'offset': np.asarray(layer.offset, np.float32)}
    layers.append((type(layer).__name__, layer.name, weights))
  return layers


def build_keras_model(architecture: str, weights: str | None, input_shape=(224, 224, 3)):
  """The Keras Applications backbone (no top) of `architecture`."""
  os.environ.setdefault('KERAS_BACKEND', 'jax')
  import keras  # pylint: disable=g-import-not-at-top
  constructor = getattr(keras.applications, KERAS_APPLICATIONS[architecture])
  return constructor(include_top=False, weights=weights, input_shape=input_shape)


def convert_keras(architecture: str, weights: str) -> dict:
  return pretrained.keras_variables(keras_layers(build_keras_model(architecture, weights)))


def convert_torchvision(weights: str) -> dict:
  import torch  # pylint: disable=g-import-not-at-top
  state_dict = torch.load(weights, map_location='cpu', weights_only=True)
  return pretrained.torchvision_resnet_variables(
      {key: value.numpy() for key, value in state_dict.items()})


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('source', choices=('keras', 'torchvision'))
  parser.add_argument('--architecture', required=True,
                      choices=(*KERAS_APPLICATIONS, *TORCHVISION_RESNETS))
  parser.add_argument('--weights', required=True)
  parser.add_argument('--output', required=True, type=pathlib.Path)
  args = parser.parse_args()
  if (args.source == 'keras') != (args.architecture in KERAS_APPLICATIONS):
    parser.error(f'{args.architecture} weights come from '
                 f'{"keras" if args.architecture in KERAS_APPLICATIONS else "torchvision"}.')
  if args.source == 'keras':
    variables = convert_keras(args.architecture, args.weights)
  else:
    variables = convert_torchvision(args.weights)
  args.output.parent.mkdir(parents=True, exist_ok=True)
  pretrained.save(args.output, variables, args.architecture)
  count = sum(np.size(leaf) for leaf in jax.tree.leaves(variables['params']))
  print(f'Wrote {args.output}: {count:,} parameters of {args.architecture} (without the head).')



if __name__ == '__main__':
  main()
