"""Autoencoder-GAN study on a real/fake image folder, 64x64 RGB (the AutoGAN paper's
CelebA-HQ vs StyleGAN setting).

The folder holds `<root>/{train,test}/{real,fake}/*.{png,jpg}`, or `<root>/{real,fake}/*`
(split 80/20 into train and test by the seed). Autoencoders learn the train reals; the
classifiers learn train reals against train fakes and are tested on the test split.
Fakes of generators never seen in training are added as `folder:` splits:

  python -m fakejax.main --config=configs/autogan_folder.py --workdir=runs/autogan_faces \\
      --config.data.folder=/data/celebahq_vs_stylegan
  # with, in a copy of this file, for example:
  #   config.evals.unseen_stylegan2 = dict(reals='', fakes='folder:/data/stylegan2_fakes')
"""

import ml_collections

from configs import autogan_fmnist


def get_config(arg: str = 'full') -> ml_collections.ConfigDict:
  """The `full` (default) or `tiny` study; set `data.folder`."""
  if arg not in ('full', 'tiny'):
    raise ValueError(f"Unknown variant {arg!r}: use 'full' or 'tiny'.")
  config = autogan_fmnist.get_config(arg)
  config.data.folder = ''  # Required: set it with --config.data.folder=<root>.
  config.data.image_shape = (64, 64, 3)
  config.gans = ml_collections.ConfigDict()  # Fakes come from the folder.
  config.evals = ml_collections.ConfigDict(dict(
      test_fakes_vs_reals=dict(reals='all', fakes='own'),
      test_reals=dict(reals='all', fakes=''),
  ))
  config.classifier.train_generators = ('folder',)
  if arg == 'full':
    # AlexNet's widths at 64x64.
    config.classifier.features = (64, 192, 384, 256, 256)
    config.classifier.hidden = 1024
    config.classifier.num_epochs = 10
    config.classifier.max_train_reals = 100_000
    for autoencoder in config.autoencoders.values():
      autoencoder.num_epochs = 10
  return config
