"""The generator zoo on Fashion-MNIST: every family the project trains, their quality measured.

Three GANs (two DCGANs, WGAN-GP), a VAE, a diffusion model and a flow, trained on the seen classes
by the DCGAN study (whose discriminators are evaluated as before), each with its Fréchet
distance, precision and recall and a sample grid in `<workdir>/quality/`. The detectors
study then adds the autoencoder family and holds each family out in turn:

  python -m fakejax.main --config=configs/zoo_fmnist.py:quick --workdir=runs/zoo_quick
  python -m fakejax.main --config=configs/detectors_fmnist.py:quick,zoo \\
      --workdir=runs/detectors_zoo_quick --config.gan_workdir=runs/zoo_quick
  python -m fakejax.main --config=configs/zoo_fmnist.py:tiny --workdir=/tmp/zoo_tiny
"""

import ml_collections

from configs import dcgan_fmnist, detectors_fmnist


def get_config(variant: str = 'full') -> ml_collections.ConfigDict:
  """The `full` (default), `quick` or `tiny` zoo."""
  if variant not in ('full', 'quick', 'tiny'):
    raise ValueError(f"Unknown variant {variant!r}: use 'full', 'quick' or 'tiny'.")
  config = dcgan_fmnist.get_config(f'{variant},{detectors_fmnist.ZOO_MODELS}')
  if variant == 'quick':
    # Diffusion samples at about 36 images/s on 2 CPU cores: 2,000 per generator.
    config.quality.num_samples = 2_000
    config.evaluation.num_fake_samples = 2_000
  return config
