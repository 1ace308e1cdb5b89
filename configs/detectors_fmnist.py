"""Dedicated real-vs-fake classifiers on Fashion-MNIST, tested on every generator.

One classifier per training set of generators: each DCGAN alone, and both pooled (after
Hsu et al. 2018). Each is evaluated on every generator's fakes, on anomaly-class reals
and on seen-class reals; the DCGANs' own discriminators are scored on the same splits.

  # Reusing the GANs of a DCGAN study's workdir (otherwise they are trained here first):
  python -m fakejax.main --config=configs/detectors_fmnist.py --workdir=runs/detectors_fmnist \\
      --config.gan_workdir=runs/dcgan_fmnist
  python -m fakejax.main --config=configs/detectors_fmnist.py:tiny --workdir=/tmp/detectors_tiny
"""

import ml_collections

from configs import dcgan_fmnist


def get_config(arg: str = 'full') -> ml_collections.ConfigDict:
  """The `full` (default), `quick` or `tiny` study."""
  if arg not in ('full', 'quick', 'tiny'):
    raise ValueError(f"Unknown variant {arg!r}: use 'full', 'quick' or 'tiny'.")
  config = dcgan_fmnist.get_config(arg)
  config.experiment = 'detectors'
  config.data.folder = ''  # Fashion-MNIST.
  config.data.image_shape = (28, 28, 1)
  config.gan_workdir = ''  # Empty: train the GANs in the workdir.
  config.classifier = ml_collections.ConfigDict(dict(
      # The faces study's Sequential CNN (widths 64/128/256 at 128x128), halved for 28x28.
      architecture='sequential_cnn',
      features=(32, 64, 128),
      hidden=128,
      dropout_rate=0.25,
      optimizer=dict(learning_rate=1e-3, b1=0.9, b2=0.999),
      batch_size=64,
      num_epochs=2,
      max_train_reals=10_000,  # And as many fakes, pooled evenly from the training set.
  ))
  names = list(config.gans.keys())
  config.train_sets = ml_collections.ConfigDict(
      {**{name: (name,) for name in names}, 'pooled': tuple(names)})
  for name in names:  # Every generator's test fakes against all test reals.
    config.evals[f'fakes_{name}'] = dict(reals='all', fakes=name)
  if arg == 'quick':
    config.classifier.num_epochs = 1
    config.classifier.max_train_reals = 4_000
  elif arg == 'tiny':
    config.classifier.features = (8, 16, 16)
    config.classifier.hidden = 16
    config.classifier.batch_size = 32
    config.classifier.num_epochs = 1
    config.classifier.max_train_reals = 128
  return config
