"""The model registry: every architecture by the name a config gives it, and its builder."""

import dataclasses
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

from fakejax.models import autoencoder, classifiers, dcgan, flow, mobilenets, unet, vae, wgan


@dataclasses.dataclass(frozen=True)
class GanModels:
  generator: nn.Module
  discriminator: nn.Module  # A critic for the Wasserstein objective.
  image_shape: tuple[int, int, int]
  objective: str  # How the players learn: a key of train.gan_trainer.OBJECTIVE_STEPS.


@dataclasses.dataclass(frozen=True)
class GanSpec:
  generator: type[nn.Module]
  discriminator: type[nn.Module]
  objective: str


GAN_ARCHITECTURES = {
    'dcgan_tf': GanSpec(dcgan.TFGenerator, dcgan.TFDiscriminator, 'non_saturating'),
    'dcgan_radford': GanSpec(dcgan.RadfordGenerator, dcgan.RadfordDiscriminator,
                             'non_saturating'),
    'wgan_gp': GanSpec(wgan.WganGenerator, wgan.WganCritic, 'wasserstein_gp'),
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
  spec, dtype = GAN_ARCHITECTURES[architecture], COMPUTE_DTYPES[compute_dtype]
  return GanModels(spec.generator(dtype=dtype), spec.discriminator(dtype=dtype),
                   dcgan.IMAGE_SHAPE, spec.objective)


@dataclasses.dataclass(frozen=True)
class GeneratorSpec:
  """A generator trained without an adversary: its model (built from `features` and its
  family's model options) and its family, a key of train.generator_trainer.FAMILY_STEPS."""
  builder: Callable[..., nn.Module]
  family: str


GENERATORS = {
    # Decoder upsampling by nearest-neighbour resizing + convolution.
    'vae': GeneratorSpec(vae.Vae, 'vae'),
    # A noise-predicting U-Net, sampled by DDIM.
    'ddpm': GeneratorSpec(unet.NoiseUNet, 'diffusion'),
    # Affine couplings on squeezed images: no upsampling layer at all.
    'realnvp': GeneratorSpec(flow.RealNvp, 'flow'),
}


def build_generator(architecture: str, *, features: Sequence[int], **model_options) -> nn.Module:
  """A generator of `GENERATORS` with the given widths and its family's model options."""
  return GENERATORS[architecture].builder(features=tuple(features), **model_options)


@dataclasses.dataclass(frozen=True)
class ClassifierSpec:
  """One real-vs-fake classifier architecture, described once.

  Every builder takes hidden, dropout_rate and outputs. `configurable_head`: the config
  sets its head's pooling and a hidden layer that may be absent (hidden=0); the small
  CNNs keep their studies' flattening heads. `fixed_widths`: the published widths (its
  pretrained weights need them), so `features` must stay empty.
  """
  builder: Callable[..., nn.Module]
  configurable_head: bool
  fixed_widths: bool


CLASSIFIERS = {
    'alexnet': ClassifierSpec(classifiers.AlexNetClassifier, False, False),
    'sequential_cnn': ClassifierSpec(classifiers.SequentialCNN, False, False),
    'patch_cnn': ClassifierSpec(classifiers.PatchCNN, False, False),
    'resnet18': ClassifierSpec(classifiers.resnet18, True, False),
    'resnet50': ClassifierSpec(classifiers.resnet50, True, False),
    'mobilenet_v2': ClassifierSpec(mobilenets.MobileNetV2, True, True),
    'mobilenet_v3_large': ClassifierSpec(mobilenets.MobileNetV3Large, True, True),
    'efficientnet_b0': ClassifierSpec(mobilenets.EfficientNetB0, True, True),
}


def build_classifier(architecture: str, *, hidden: int, dropout_rate: float, outputs: int,
                     features: Sequence[int] = (), pooling: str = 'flatten') -> nn.Module:
  """A classifier of `CLASSIFIERS`; widths only where given, pooling where configurable."""
  spec = CLASSIFIERS[architecture]
  options = dict(hidden=hidden, dropout_rate=dropout_rate, outputs=outputs)
  if features:
    options['features'] = tuple(features)
  if spec.configurable_head:
    options['pooling'] = pooling
  return spec.builder(**options)


def build_autoencoder(*, depth: int, base_features: int, latent_features: int,
                      upsampler: str = 'transposed') -> autoencoder.AutoEncoder:
  """The autoencoder of the autoencoder-GAN (its discriminator is a GAN architecture's)."""
  return autoencoder.AutoEncoder(depth=depth, base_features=base_features,
                                 latent_features=latent_features, upsampler=upsampler)
