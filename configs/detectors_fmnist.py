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
  # The generator zoo (GANs, a VAE, diffusion, a flow, an autoencoder), leave-one-family-out:
  # for each family, a classifier trained on all the others, tested on it.
  python -m fakejax.main --config=configs/zoo_fmnist.py:quick --workdir=runs/zoo_quick
  python -m fakejax.main --config=configs/detectors_fmnist.py:quick,zoo \\
      --workdir=runs/detectors_zoo_quick --config.gan_workdir=runs/zoo_quick
  # A detector of reals alone (`,real_only`), beside the classifiers:
  python -m fakejax.main --config=configs/detectors_fmnist.py:quick,zoo,real_only \\
      --workdir=runs/detectors_real_only --config.gan_workdir=runs/zoo_quick
  # For each family, a fusion of the detectors that never saw it (`,fusion`):
  python -m fakejax.main --config=configs/detectors_fmnist.py:quick,zoo,real_only,fusion \\
      --workdir=runs/detectors_fused --config.gan_workdir=runs/zoo_quick
  # Detectors that generalise: the NPR residual as input (or 'highpass', 'image_spectrum',
  # 'image_dct'), simulated fakes of four up-samplers, patch classifiers (`,patch`):
  python -m fakejax.main --config=configs/detectors_fmnist.py:quick,zoo,simulated \\
      --workdir=runs/detectors_npr --config.gan_workdir=runs/zoo_quick \\
      --config.classifier.input=npr
"""

import ml_collections

from configs import autogan_fmnist, dcgan_fmnist


# The generator zoo's families: each a set of generators of the study by name. With the
# `zoo` option, a classifier is trained on every family but one, for each family.
ZOO_FAMILIES = {'dcgan': ('dcgan_tf', 'dcgan_radford'), 'wgan': ('wgan_gp',), 'vae': ('vae',),
                'diffusion': ('ddpm',), 'flow': ('realnvp',), 'autoencoder': ('autogan_d1',)}
ZOO_MODELS = 'gans=dcgan_tf+dcgan_radford+wgan_gp,generators=vae+ddpm+realnvp'
# With the `simulated` option, autoencoders beside autogan_d1 (a transposed convolution):
# simulated fakes of these up-sampling layers, with no generator trained at all.
SIMULATED_UPSAMPLERS = ('nearest', 'bilinear', 'pixel_shuffle')


def real_only_model(variant: str, as_uploaded: bool = False) -> ml_collections.ConfigDict:
  """A PixelCNN of reals: 64 features, 5 residual layers (a 7x7 then 3x3 context). With
  `as_uploaded`, of reals as uploads arrive: JPEG (quality 50 and up) and resampling (to
  half the size and back), half the time each."""
  config = ml_collections.ConfigDict(dict(
      architecture='pixelcnn', features=64, num_layers=5,
      optimizer=dict(learning_rate=1e-3, b1=0.9, b2=0.999),
      batch_size=64, num_epochs=4, max_train_reals=10_000,
      augmentation=autogan_fmnist.no_augmentation()))
  if as_uploaded:
    config.augmentation.update(resample_prob=0.5, resample_scale_min=0.5, jpeg_prob=0.5,
                               jpeg_quality_min=50)
  if variant == 'quick':  # A fifth of the FLOPs: scoring every split takes minutes on 2 CPUs.
    config.update(features=32, num_layers=3, num_epochs=2, max_train_reals=4_000)
  elif variant == 'tiny':
    config.update(features=8, num_layers=1, batch_size=32, num_epochs=1, max_train_reals=128)
  return config


def held_out_fusions(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """For each family, 'fused_without_<family>': the classifier of every other family, the
  real-only detectors and the discriminators of the GANs outside it, fitted on the other
  families' fakes: nothing of the family is seen, by any member or by the fitting. And
  'fused_all', the same recipe on every family: the one to deploy."""
  in_families = [g for members in config.families.values() for g in members]
  by_content = {frozenset(generators): name for name, generators in config.train_sets.items()}
  fusions = {}
  for family, members in config.families.items():
    others = tuple(g for g in in_families if g not in members)
    discriminators = tuple(f'D:{gan}' for gan in config.gans if gan not in members)
    fused = (by_content[frozenset(others)], *config.real_only.keys(), *discriminators)
    if len(fused) > 1:  # One detector alone needs no fusion.
      fusions[f'fused_without_{family}'] = dict(members=fused, fit_on=others)
  fusions['fused_all'] = dict(
      members=('pooled_all', *config.real_only.keys(), *(f'D:{gan}' for gan in config.gans)),
      fit_on=tuple(in_families))
  return ml_collections.ConfigDict(fusions)


def get_config(arg: str = 'full') -> ml_collections.ConfigDict:
  """The `full` (default), `quick` or `tiny` study; `,augment` adds blur, JPEG and more;
  `,zoo` every generator family with leave-one-family-out classifiers; `,patch` patch
  classifiers (each patch seen through a 7x7 window) instead of the Sequential CNN;
  `,simulated` autoencoders of three more up-samplers in the autoencoder family, and a
  classifier trained on their fakes alone ('simulated'); `,hygiene` resampling and JPEG
  in training, applied to reals and fakes alike; `,real_only` PixelCNNs of reals that
  flag what they cannot explain, trained on no fakes at all: of pristine reals
  ('pixelcnn_reals') and of reals as uploaded, JPEG-compressed and resized
  ('pixelcnn_uploads');
  `,fusion` for each family, a fusion of the detectors that never saw it
  ('fused_without_<family>'), fitted without it."""
  variant, *options = arg.split(',')
  known_options = {'augment', 'zoo', 'patch', 'simulated', 'hygiene', 'real_only', 'fusion'}
  if variant not in ('full', 'quick', 'tiny') or not set(options) <= known_options:
    raise ValueError(f"Unknown variant {arg!r}: use 'full', 'quick' or 'tiny', optionally "
                     f"with any of {sorted(known_options)}, each after a comma.")
  config = dcgan_fmnist.get_config(f'{variant},{ZOO_MODELS}' if 'zoo' in options else variant)
  config.experiment = 'detectors'
  del config.quality, config.train_only  # The DCGAN study's: quality is measured there.
  config.data.folder = ''  # Fashion-MNIST.
  config.data.image_shape = (28, 28, 1)
  config.gan_workdir = ''  # Empty: train the GANs in the workdir.
  config.classifier = ml_collections.ConfigDict(dict(
      # The faces study's Sequential CNN (widths 64/128/256 at 128x128), halved for 28x28.
      architecture='sequential_cnn',
      # What it sees (fakejax.data.transforms.IMAGE_INPUTS): the 'image', its 'npr'
      # residual, 'highpass' residuals, or its spectrum ('image_spectrum', 'image_dct').
      input='image',
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
  if 'simulated' in options:  # The same, with the other upsamplers: one family, four traces.
    for upsampler in SIMULATED_UPSAMPLERS:
      config.autoencoder_generators[f'autogan_d1_{upsampler}'] = autogan_fmnist.autoencoder(
          1, batch_size=64, num_epochs=2, upsampler=upsampler)
  # In table order: GANs, generators of other families, autoencoders.
  names = [*config.gans.keys(), *config.generators.keys(),
           *config.autoencoder_generators.keys()]
  gans = tuple(config.gans.keys())
  autoencoders = tuple(config.autoencoder_generators.keys())
  config.train_sets = ml_collections.ConfigDict({
      **{name: (name,) for name in names},
      'pooled_dcgans': gans,  # Tested on the autoencoder, a family it never saw.
      'pooled_all': tuple(names)})
  if 'simulated' in options:  # No real generator's fakes at all (the AutoGAN idea).
    config.train_sets['simulated'] = autoencoders
  # Detectors of reals alone (after ZED, Cozzolino et al. 2024): a model of reals whose
  # surprise at an image flags it; thresholds from validation reals only.
  config.real_only = ml_collections.ConfigDict()
  if 'real_only' in options:
    config.real_only.pixelcnn_reals = real_only_model(variant)
    if variant != 'tiny':  # The tests' study trains one; its augmentation is the same code.
      config.real_only.pixelcnn_uploads = real_only_model(variant, as_uploaded=True)
  # Family -> its generators. For each, the classifier of the train set of every other
  # family's generators is tested on it (leave-one-family-out; empty: no such table).
  # Here the two DCGANs and the autoencoder: 'pooled_dcgans' and 'autogan_d1' are those.
  config.families = ml_collections.ConfigDict(dict(gan=gans, autoencoder=autoencoders))
  if 'zoo' in options:
    config.families = ml_collections.ConfigDict({**ZOO_FAMILIES, 'autoencoder': autoencoders})
    config.train_sets.update({f'without_{family}': tuple(
        name for name in names if name not in members)
                              for family, members in config.families.items()})
  # Fusions of detectors by name, each fitted on the validation fakes of `fit_on` only.
  config.fusions = held_out_fusions(config) if 'fusion' in options else ml_collections.ConfigDict()
  for name in names:  # Every generator's test fakes against all test reals.
    config.evals[f'fakes_{name}'] = dict(reals='all', fakes=name)
  # Honest uploads re-encoded or resampled (fakejax.data.perturb): how many a detector
  # flags for their format rather than for being generated. (`tiny`: one of each kind.)
  perturbations = ('jpeg_95', 'jpeg_75', 'jpeg_50', 'rescale_0.5')
  for perturbation in perturbations[2:] if variant == 'tiny' else perturbations:
    split = f"seen_reals_{perturbation.replace('.', '_')}"  # Config keys have no dots.
    config.evals[split] = dict(reals=f'seen@{perturbation}', fakes='')
  if 'patch' in options:  # After Chai et al. (2020): local texture, not content.
    config.classifier.update(architecture='patch_cnn', features=(32, 64, 64), hidden=64)
  if 'hygiene' in options:
    # Uploads are resized and re-encoded: both classes alike, half the time each, at
    # 28x28's scale (down to half the size; JPEG quality 50 and up).
    config.classifier.augmentation.update(resample_prob=0.5, resample_scale_min=0.5,
                                          jpeg_prob=0.5, jpeg_quality_min=50)
  if 'augment' in options:
    # Wang et al. (2020): blur and JPEG half the time each; flips and small shifts.
    config.classifier.augmentation.update(flip_prob=0.5, crop_padding=2, blur_prob=0.5,
                                          blur_sigma_max=3.0, jpeg_prob=0.5,
                                          jpeg_quality_min=30)
  if variant == 'quick' and 'zoo' in options:
    # As configs/zoo_fmnist.py: diffusion samples at about 36 images/s on 2 CPU cores.
    config.evaluation.num_fake_samples = 2_000
  if variant == 'quick':
    for autoencoder in config.autoencoder_generators.values():
      autoencoder.num_epochs = 1
    config.classifier.num_epochs = 1
    config.classifier.max_train_reals = 4_000
  elif variant == 'tiny':
    for autoencoder in config.autoencoder_generators.values():
      autoencoder.update(batch_size=32, num_epochs=1, base_features=8, latent_features=8)
    config.classifier.features = (8, 16, 16)  # Three widths, as either classifier has.
    config.classifier.hidden = 16
    config.classifier.batch_size = 32
    config.classifier.num_epochs = 1
    config.classifier.max_train_reals = 128
  return config
