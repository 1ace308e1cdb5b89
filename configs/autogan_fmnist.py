"""Autoencoder-GAN study on Fashion-MNIST (after Zhang et al. 2019, "AutoGAN").

Autoencoders of depth 1 and 4 are trained adversarially on seen-class reals; AlexNet-style
classifiers then learn seen-class reals against `dcgan_tf` fakes, from the raw image, its
reconstruction, the residual, or their Fourier spectra. Every classifier is evaluated on
anomaly-class reals and on the fakes of `dcgan_radford`, a generator it never saw.

  # Reusing the GANs of a DCGAN study's workdir (otherwise they are trained here first):
  python -m fakejax.main --config=configs/autogan_fmnist.py --workdir=runs/autogan_fmnist \\
      --config.gan_workdir=runs/dcgan_fmnist
  # Quick look; tiny (seconds; used by the tests).
  python -m fakejax.main --config=configs/autogan_fmnist.py:quick --workdir=runs/autogan_quick
  python -m fakejax.main --config=configs/autogan_fmnist.py:tiny --workdir=/tmp/autogan_tiny
"""

import ml_collections

from configs import dcgan_fmnist


def autoencoder(depth: int, batch_size: int, num_epochs: int,
                upsampler: str = 'transposed') -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      depth=depth,
      base_features=32,
      latent_features=64,
      # How the decoder up-samples: 'transposed' (convolution), 'nearest' or 'bilinear'
      # (resize, then a 3x3 convolution), or 'pixel_shuffle' (sub-pixel convolution).
      upsampler=upsampler,
      discriminator='dcgan_tf',  # Its discriminator judges the reconstructions.
      reconstruction_loss='l1',
      reconstruction_weight=1.0,
      # Small: the reconstruction leads; the adversary sharpens what it blurs.
      adversarial_weight=0.01,
      optimizer=dict(learning_rate=2e-4, b1=0.5, b2=0.999),
      batch_size=batch_size,
      num_epochs=num_epochs,
  ))


def no_augmentation() -> ml_collections.ConfigDict:
  """Every augmentation of data/augment.py, off; set a probability to turn one on."""
  return ml_collections.ConfigDict(dict(
      resize_crop_prob=0.0, resize_scale=1.0, flip_prob=0.0, crop_padding=0,
      rotation_prob=0.0, rotation_degrees=0.0, jitter_prob=0.0, brightness=0.0, contrast=0.0,
      saturation=0.0, blur_prob=0.0, blur_sigma_max=3.0, resample_prob=0.0,
      resample_scale_min=0.5, jpeg_prob=0.0, jpeg_quality_min=30))


def get_config(arg: str = 'full') -> ml_collections.ConfigDict:
  """The `full` (default), `quick` or `tiny` study."""
  if arg not in ('full', 'quick', 'tiny'):
    raise ValueError(f"Unknown variant {arg!r}: use 'full', 'quick' or 'tiny'.")
  # Data, generators, evaluation and splits as in the DCGAN study; its batch size and
  # epochs train the GANs when they are trained here.
  config = dcgan_fmnist.get_config(arg)
  config.experiment = 'autogan'
  del config.quality, config.train_only  # The DCGAN study's: quality is measured there.
  config.data.folder = ''  # Empty: Fashion-MNIST.
  config.data.image_shape = (28, 28, 1)
  config.gan_workdir = ''  # Empty: train the GANs in the workdir.
  config.autoencoders = ml_collections.ConfigDict(dict(
      depth1=autoencoder(1, batch_size=64, num_epochs=2),
      depth4=autoencoder(4, batch_size=64, num_epochs=2)))
  config.classifier = ml_collections.ConfigDict(dict(
      architecture='alexnet',
      # AlexNet's five convolutions and two hidden layers, narrowed for 28x28 images.
      features=(32, 64, 128, 128, 64),
      hidden=256,
      dropout_rate=0.5,
      pooling='flatten',  # AlexNet's own head: flattened features, two hidden layers.
      head_l2=0.0,
      loss='bce',
      pretrained='',
      optimizer=dict(learning_rate=1e-4, b1=0.9, b2=0.999, weight_decay=0.0),
      batch_size=64,
      num_epochs=2,
      max_train_reals=10_000,  # And as many fakes.
      augmentation=no_augmentation(),  # As in the AutoGAN paper.
      frozen=(),
      lr_decay_factor=0.5,
      lr_decay_patience_epochs=1,
      early_stopping_patience_epochs=3,
      # The AutoGAN study's: the image and its spectrum, and what each autoencoder makes
      # of it (fakejax.data.transforms has more: 'npr', 'highpass', 'image_dct').
      inputs=('image', 'reconstruction', 'residual', 'image_spectrum', 'residual_spectrum'),
      # Fakes of the other generators are never seen in training.
      train_generators=('dcgan_tf',),
  ))
  if arg == 'quick':
    config.autoencoders.depth1.num_epochs = 1
    config.autoencoders.depth4.num_epochs = 1
    config.classifier.num_epochs = 1
    config.classifier.max_train_reals = 4_000
  elif arg == 'tiny':
    for name in ('depth1', 'depth4'):
      config.autoencoders[name].batch_size = 32
      config.autoencoders[name].num_epochs = 1
      config.autoencoders[name].base_features = 8
      config.autoencoders[name].latent_features = 8
    config.classifier.features = (8, 16, 16, 16, 8)
    config.classifier.hidden = 32
    config.classifier.batch_size = 32
    config.classifier.num_epochs = 1
    config.classifier.max_train_reals = 128
  return config
