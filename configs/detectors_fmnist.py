"""Dedicated real-vs-fake classifiers on Fashion-MNIST, tested on every generator.

The generators: both DCGANs and an autoencoder-GAN (its reconstructions of reals are its
fakes), sampled once into a stored fake pool. One classifier per training set: each
generator alone, the two DCGANs pooled (after Hsu et al. 2018) -- tested on the
autoencoder's fakes, a family it never saw -- and all three pooled. Each is evaluated on
every generator's fakes, on anomaly-class reals and on seen-class reals; the DCGANs' own
discriminators are scored on the same splits.

  # Reusing the GANs of a DCGAN study's workdir (otherwise they are trained here first):
  python -m fakejax.main --config=configs/detectors_fmnist.py --workdir=runs/detectors_fmnist \\
      --config.gan_workdir=runs/dcgan_fmnist
  # With augmentations (blur, JPEG, flips, shifts) in training:
  python -m fakejax.main --config=configs/detectors_fmnist.py:full,augment \\
      --workdir=runs/detectors_augmented --config.gan_workdir=runs/dcgan_fmnist
  python -m fakejax.main --config=configs/detectors_fmnist.py:tiny --workdir=/tmp/detectors_tiny
"""

import ml_collections

from configs import autogan_fmnist, dcgan_fmnist


def get_config(arg: str = 'full') -> ml_collections.ConfigDict:
  """The `full` (default), `quick` or `tiny` study; `,augment` adds blur, JPEG and more."""
  variant, *options = arg.split(',')
  if variant not in ('full', 'quick', 'tiny') or options not in ([], ['augment']):
    raise ValueError(f"Unknown variant {arg!r}: use 'full', 'quick' or 'tiny', optionally "
                     "with ',augment'.")
  config = dcgan_fmnist.get_config(variant)
  config.experiment = 'detectors'
  del config.quality  # The DCGAN study's: generator quality is measured there.
  config.data.folder = ''  # Fashion-MNIST.
  config.data.image_shape = (28, 28, 1)
  config.gan_workdir = ''  # Empty: train the GANs in the workdir.
  config.classifier = ml_collections.ConfigDict(dict(
      # The faces study's Sequential CNN (widths 64/128/256 at 128x128), halved for 28x28.
      architecture='sequential_cnn',
      features=(32, 64, 128),
      hidden=128,
      dropout_rate=0.25,
      # The head: 'flatten' or 'average' pooling (the small CNNs flatten, as in their
      # studies), L2 on the hidden layer's kernel, and 'bce' on one logit or
      # 'cross_entropy' on two (fake, real).
      pooling='flatten',
      head_l2=0.0,
      loss='bce',
      # A file from tools/convert_weights.py: ImageNet weights for the backbone.
      pretrained='',
      # weight_decay > 0: AdamW (decoupled weight decay).
      optimizer=dict(learning_rate=1e-3, b1=0.9, b2=0.999, weight_decay=0.0),
      batch_size=64,
      num_epochs=2,
      max_train_reals=10_000,  # And as many fakes, pooled evenly from the training set.
      augmentation=autogan_fmnist.no_augmentation(),
      # Top-level modules the optimiser leaves unchanged, by name prefix, e.g.
      # ('stem', 'stage1', 'stage2') for a ResNet (architecture='resnet18' or 'resnet50').
      frozen=(),
      lr_decay_factor=0.5,
      lr_decay_patience_epochs=1,
      early_stopping_patience_epochs=3,
  ))
  # A third family of generator: an autoencoder-GAN, whose fakes are its reconstructions
  # of reals (the AutoGAN study's simulator of GAN artefacts).
  config.autoencoder_generators = ml_collections.ConfigDict(dict(
      autogan_d1=autogan_fmnist.autoencoder(1, batch_size=64, num_epochs=2)))
  gans = list(config.gans.keys())
  names = gans + list(config.autoencoder_generators.keys())
  config.train_sets = ml_collections.ConfigDict({
      **{name: (name,) for name in names},
      'pooled_dcgans': tuple(gans),  # Tested on the autoencoder, a family it never saw.
      'pooled_all': tuple(names)})
  for name in names:  # Every generator's test fakes against all test reals.
    config.evals[f'fakes_{name}'] = dict(reals='all', fakes=name)
  if options:
    # Wang et al. (2020): blur and JPEG half the time each; flips and small shifts.
    config.classifier.augmentation.update(flip_prob=0.5, crop_padding=2, blur_prob=0.5,
                                          blur_sigma_max=3.0, jpeg_prob=0.5,
                                          jpeg_quality_min=30)
  if variant == 'quick':
    config.autoencoder_generators.autogan_d1.num_epochs = 1
    config.classifier.num_epochs = 1
    config.classifier.max_train_reals = 4_000
  elif variant == 'tiny':
    config.autoencoder_generators.autogan_d1.update(batch_size=32, num_epochs=1,
                                                    base_features=8, latent_features=8)
    config.classifier.features = (8, 16, 16)
    config.classifier.hidden = 16
    config.classifier.batch_size = 32
    config.classifier.num_epochs = 1
    config.classifier.max_train_reals = 128
  return config
