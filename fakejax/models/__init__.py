"""Model registry: architectures by the name a config gives them."""

import dataclasses

import flax.linen as nn

from fakejax.models import dcgan


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
