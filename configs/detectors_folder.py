"""Dedicated detectors on a real/fake image folder, as the faces studies trained them.

The folder holds `<root>/{train,test}/{real,fake}/*.{png,jpg}`, or `<root>/{real,fake}/*`
(split 80/20 by the seed): the layout of public real-vs-fake face sets such as
"140k real and fake faces" (arranged into real/ and fake/). It is prepared once into a
TFDS ArrayRecord set (unreadable files reported by name and skipped), then read from it.

The default is the Keras study's best model, MobileNetV3-Large at 224x224 with its
second head (global pooling, dropout, one logit). With ImageNet weights, converted by
tools/convert_weights.py, freeze the base as that study did:

  python -m fakejax.main --config=configs/detectors_folder.py --workdir=runs/faces \\
      --config.data.folder=/data/real_vs_fake_faces \\
      --config.classifier.pretrained=weights/mobilenet_v3_large.npz \\
      --config.classifier.frozen='("backbone",)'
  # The PyTorch study: ResNet-50, early stages frozen, head Linear 512, ReLU, Dropout 0.5,
  # Linear 2, with its augmentations:
  python -m fakejax.main --config=configs/detectors_folder.py:resnet50 --workdir=runs/faces_r50 \\
      --config.data.folder=/data/real_vs_fake_faces \\
      --config.classifier.pretrained=weights/resnet50.npz
"""

import ml_collections

from configs import detectors_fmnist


def get_config(arg: str = 'full') -> ml_collections.ConfigDict:
  """`full` (MobileNetV3-Large), `resnet50` (the PyTorch study) or `tiny`; set data.folder."""
  if arg not in ('full', 'resnet50', 'tiny'):
    raise ValueError(f"Unknown variant {arg!r}: use 'full', 'resnet50' or 'tiny'.")
  config = detectors_fmnist.get_config('tiny' if arg == 'tiny' else 'full')
  config.data.folder = ''  # Required: set it with --config.data.folder=<root>.
  config.data.image_shape = (224, 224, 3)
  config.gans = ml_collections.ConfigDict()  # The fakes come from the folder.
  config.autoencoder_generators = ml_collections.ConfigDict()
  config.train_sets = ml_collections.ConfigDict({'folder': ('folder',)})
  config.families = ml_collections.ConfigDict()  # One source of fakes: nothing to hold out.
  config.evals = ml_collections.ConfigDict(dict(
      fakes_folder=dict(reals='all', fakes='own'),  # The table's column.
      seen_class_reals=dict(reals='all', fakes=''),
  ))
  config.classifier.update(
      architecture='mobilenet_v3_large', features=(), hidden=0, dropout_rate=0.2,
      pooling='average', loss='bce', batch_size=32, num_epochs=10, max_train_reals=200_000,
      early_stopping_patience_epochs=3)
  config.classifier.optimizer.learning_rate = 1e-4
  if arg == 'resnet50':
    config.classifier.update(architecture='resnet50', hidden=512, dropout_rate=0.5,
                             loss='cross_entropy', frozen=('stem', 'stage1', 'stage2'))
    config.classifier.augmentation.update(
        resize_crop_prob=1.0, resize_scale=256 / 224, rotation_prob=1.0, rotation_degrees=15.0,
        jitter_prob=1.0, brightness=0.2, contrast=0.2, saturation=0.2)
  elif arg == 'tiny':
    config.data.image_shape = (32, 32, 3)
    config.classifier.update(architecture='resnet18', features=(4, 8, 8, 8), hidden=8,
                             batch_size=16, num_epochs=1, loss='cross_entropy')
    config.classifier.augmentation.update(resize_crop_prob=0.5, resize_scale=1.2,
                                          rotation_prob=0.5, rotation_degrees=15.0,
                                          jitter_prob=0.5, brightness=0.2, contrast=0.2,
                                          saturation=0.2)
  return config
