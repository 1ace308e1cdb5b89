"""Model registry: architectures by the name a config gives them."""

import dataclasses

import flax.linen as nn

from fakejax.models import classifiers, dcgan, mobilenets


@dataclasses.dataclass(frozen=True)
class GanModels:
  generator: nn.Module
  discriminator: nn.Module
  image_shape: tuple[int, int, int]


GAN_ARCHITECTURES = {
    'dcgan_tf': lambda: GanModels(dcgan.TFGenerator(), dcgan.TFDiscriminator(), dcgan.IMAGE_SHAPE),
    'dcgan_radford': lambda: GanModels(
        dcgan.RadfordGenerator(), dcgan.RadfordDiscriminator(), dcgan.IMAGE_SHAPE),
}


def build_gan(architecture: str) -> GanModels:
  """Returns the generator and discriminator of a named architecture."""
  try:
    return GAN_ARCHITECTURES[architecture]()
  except KeyError:
    raise ValueError(
        f'Unknown GAN architecture {architecture!r}; known: {sorted(GAN_ARCHITECTURES)}.') from None


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
