"""Model registry: architectures by the name a config gives them."""

import dataclasses

import flax.linen as nn
import jax.numpy as jnp

from fakejax.models import classifiers, dcgan, mobilenets


@dataclasses.dataclass(frozen=True)
class GanModels:
  generator: nn.Module
  discriminator: nn.Module
  image_shape: tuple[int, int, int]


GAN_ARCHITECTURES = {
    'dcgan_tf': (dcgan.TFGenerator, dcgan.TFDiscriminator),
    'dcgan_radford': (dcgan.RadfordGenerator, dcgan.RadfordDiscriminator),
}
# A config's `compute_dtype`: the dtype of activations and products. Parameters, batch
# statistics, losses and optimiser states stay float32 (bfloat16: mixed precision).
COMPUTE_DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def build_gan(architecture: str, compute_dtype: str = 'float32') -> GanModels:
  """Returns the generator and discriminator of a named architecture."""
  if architecture not in GAN_ARCHITECTURES:
    raise ValueError(
        f'Unknown GAN architecture {architecture!r}; known: {sorted(GAN_ARCHITECTURES)}.')
  if compute_dtype not in COMPUTE_DTYPES:
    raise ValueError(f'Unknown compute dtype {compute_dtype!r}; known: {sorted(COMPUTE_DTYPES)}.')
  generator, discriminator = GAN_ARCHITECTURES[architecture]
  dtype = COMPUTE_DTYPES[compute_dtype]
  return GanModels(generator(dtype=dtype), discriminator(dtype=dtype), dcgan.IMAGE_SHAPE)


# Real-vs-fake classifiers by the name a config gives them. Each takes hidden,
# dropout_rate and outputs; the small CNNs also their widths (`features`), the ResNets
# their stage widths.
CLASSIFIER_ARCHITECTURES = {
    'alexnet': classifiers.AlexNetClassifier,
    'sequential_cnn': classifiers.SequentialCNN,
    'resnet18': classifiers.resnet18,
    'resnet50': classifiers.resnet50,
    'mobilenet_v2': mobilenets.MobileNetV2,
    'mobilenet_v3_large': mobilenets.MobileNetV3Large,
    'efficientnet_b0': mobilenets.EfficientNetB0,
}
# Backbones whose head the config sets (`classifiers.head`): pooling, and a hidden layer
# that may be absent (hidden=0). The small CNNs keep their studies' flattening heads.
CONFIGURABLE_HEADS = frozenset(
    {'resnet18', 'resnet50', 'mobilenet_v2', 'mobilenet_v3_large', 'efficientnet_b0'})
# Widths fixed by the published architecture; `features` must stay empty for them.
FIXED_WIDTHS = frozenset({'mobilenet_v2', 'mobilenet_v3_large', 'efficientnet_b0'})
