"""DCGAN pairs on Fashion-MNIST, their discriminators used as fake-image detectors.

Three (anomaly) classes are held out of training; both DCGAN architectures are trained on
the seen classes and their discriminators are then scored on real and generated images.

  # The full study: both architectures, 5 epochs each (about 40 minutes on 2 CPU cores).
  python -m fakejax.main --config=configs/dcgan_fmnist.py --workdir=runs/dcgan_fmnist
  # Quick look (under 15 minutes on 2 CPU cores): both architectures, 1 epoch each.
  python -m fakejax.main --config=configs/dcgan_fmnist.py:quick --workdir=runs/dcgan_quick
  # Tiny (seconds; used by the tests).
  python -m fakejax.main --config=configs/dcgan_fmnist.py:tiny --workdir=/tmp/dcgan_tiny

Any value can be overridden on the command line, e.g. `--config.batch_size=128`. Train
only some architectures, or others of `GAN_CONFIGS`, with `,gans=`, and generators of
other families (`GENERATOR_CONFIGS`: a VAE, a diffusion model, a flow) with `,generators=`:
`--config=configs/dcgan_fmnist.py:quick,gans=dcgan_tf+wgan_gp,generators=vae+ddpm`.
"""

import ml_collections

# Fashion-MNIST labels: 0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat, 5 Sandal,
# 6 Shirt, 7 Sneaker, 8 Bag, 9 Ankle boot. The default anomalies are the three kinds of
# footwear: a whole category of item the detector never sees during training.
FOOTWEAR_CLASSES = (5, 7, 9)
# Of activations and products; 'bfloat16' trains in mixed precision (parameters, batch
# statistics and losses stay float32). Meant for GPUs and TPUs; on 2 CPU cores it is slower.
# Per GAN: --config.gans.dcgan_tf.compute_dtype=bfloat16.
COMPUTE_DTYPE = 'float32'


def gan_config(architecture: str, latent_dim: int, learning_rate: float, b1: float,
               b2: float) -> ml_collections.ConfigDict:
  """One GAN of `config.gans`: its architecture, latent size and Adam settings."""
  return ml_collections.ConfigDict(dict(
      architecture=architecture,
      latent_dim=latent_dim,
      optimizer=dict(learning_rate=learning_rate, b1=b1, b2=b2),
      compute_dtype=COMPUTE_DTYPE,
  ))


def dcgan_tf() -> ml_collections.ConfigDict:
  """The TensorFlow DCGAN tutorial: Adam 1e-4 for both players."""
  return gan_config('dcgan_tf', 100, learning_rate=1e-4, b1=0.9, b2=0.999)


def dcgan_radford() -> ml_collections.ConfigDict:
  """Radford et al. (2015): Adam 2e-4, beta1 0.5."""
  return gan_config('dcgan_radford', 100, learning_rate=2e-4, b1=0.5, b2=0.999)


def wgan_gp() -> ml_collections.ConfigDict:
  """Gulrajani et al. (2017): Adam 1e-4, betas (0.5, 0.9); 5 critic steps per generator step."""
  return gan_config('wgan_gp', 128, learning_rate=1e-4, b1=0.5, b2=0.9)


# Every GAN a study can train, by name: `,gans=` picks among them (default: the DCGANs).
GAN_CONFIGS = {'dcgan_tf': dcgan_tf, 'dcgan_radford': dcgan_radford, 'wgan_gp': wgan_gp}


def generator_config(architecture: str, features: tuple[int, ...], options: dict,
                     learning_rate: float, num_epochs: int,
                     ema_decay: float) -> ml_collections.ConfigDict:
  """One generator of `config.generators`: a family trained without an adversary."""
  return ml_collections.ConfigDict(dict(
      architecture=architecture,  # Of models.GENERATORS.
      features=features,
      options=options,  # The family's own (train/<family>_steps.py: OPTIONS_SCHEMA).
      # decay_steps > 0: a cosine decay to 0; clip_global_norm > 0: gradient clipping.
      optimizer=dict(learning_rate=learning_rate, b1=0.9, b2=0.999, decay_steps=0,
                     clip_global_norm=0.0),
      batch_size=64,
      num_epochs=num_epochs,
      # Samples come from an exponential moving average of the parameters (0: the last).
      ema_decay=ema_decay,
  ))


# The quick runs' EMA: a window of about 100 steps. The decay warms up as
# (1 + step) / (10 + step) (train/generator_state.py), so 0.999 would bind only after
# about 9,000 steps; 0.99 binds after 890, within a quick run of 1,180.
QUICK_EMA_DECAY = 0.99


def vae(variant: str = 'full') -> ml_collections.ConfigDict:
  """A VAE whose decoder upsamples by nearest-neighbour resizing + convolution."""
  config = generator_config('vae', (32, 64), dict(latent_dim=32, kl_weight=1.0),
                            learning_rate=1e-3, num_epochs=10, ema_decay=0.999)
  if variant == 'quick':
    config.update(num_epochs=2, ema_decay=QUICK_EMA_DECAY)
  elif variant == 'tiny':
    config.update(features=(8, 16), batch_size=32, num_epochs=1, ema_decay=0.0)
    config.options.latent_dim = 8
  return config


def ddpm(variant: str = 'full') -> ml_collections.ConfigDict:
  """A DDPM-trained U-Net (cosine schedule, 1000 steps), sampled with 50 DDIM steps."""
  config = generator_config(
      'ddpm', (32, 64, 64),
      dict(num_timesteps=1000, noise_schedule='cosine', sampling_steps=50),
      learning_rate=2e-4, num_epochs=10, ema_decay=0.999)
  if variant == 'quick':
    # Half the widths (a quarter of the compute) and 20 DDIM steps: on 2 CPU cores the
    # full model samples 13 images/s at 25 steps, too slow for a pool of 24,000 fakes;
    # this one trains at about 180 images/s and samples about 36/s.
    config.update(features=(16, 32, 32), num_epochs=1, ema_decay=QUICK_EMA_DECAY)
    config.options.sampling_steps = 20
  elif variant == 'tiny':
    config.update(features=(8, 16, 16), batch_size=32, num_epochs=1, ema_decay=0.0)
    config.options.update(num_timesteps=100, sampling_steps=4)
  return config


def realnvp(variant: str = 'full') -> ml_collections.ConfigDict:
  """A RealNVP-style flow (no upsampling layers), sampled at temperature 0.7."""
  # At a constant Adam 1e-3 the full flow's loss jumped at step 3,700 of 5,900 (3.9 to 5.3
  # bits per dimension) and went NaN by step 4,000; at 5e-4 it spiked from step 5,400 (to
  # 6.7) and ended at 4.5. Hence a cosine decay over its 5,900 steps (10 epochs of 590) and
  # gradients clipped to a global norm of 50 (their mean was 15-35 before each spike): so
  # trained, no 50-step mean of the loss rose by more than 0.05 after step 1,000; it ended
  # at 3.97.
  # Quick's 1,180 steps keep a constant 1e-3.
  config = generator_config('realnvp', (64,), dict(steps_per_level=6, temperature=0.7),
                            learning_rate=5e-4, num_epochs=10, ema_decay=0.999)
  config.optimizer.update(decay_steps=5_900, clip_global_norm=50.0)
  if variant == 'quick':
    config.update(num_epochs=2, ema_decay=QUICK_EMA_DECAY)
    config.optimizer.update(learning_rate=1e-3, decay_steps=0, clip_global_norm=0.0)
    config.options.steps_per_level = 4
  elif variant == 'tiny':
    config.update(features=(8,), batch_size=32, num_epochs=1, ema_decay=0.0)
    config.options.steps_per_level = 2
  return config


# Generators of other families, by name: `,generators=` picks among them (default: none).
GENERATOR_CONFIGS = {'vae': vae, 'ddpm': ddpm, 'realnvp': realnvp}


def get_config(arg: str = 'full') -> ml_collections.ConfigDict:
  """The `full` (default), `quick` or `tiny` study, optionally `,gans=NAME+NAME`."""
  variant, *options = arg.split(',')
  if variant not in ('full', 'quick', 'tiny'):
    raise ValueError(f"Unknown variant {variant!r}: use 'full', 'quick' or 'tiny'.")

  config = ml_collections.ConfigDict()
  config.experiment = 'dcgan_detectors'
  config.seed = 0
  # Several seeds (e.g. `--config.seeds='(0,1,2)'`) train one replica of each GAN per seed
  # in one compiled step; reports give the mean and 95% interval across them.
  config.seeds = ()
  # Global batch, split over all devices of all hosts. 64 rather than the TensorFlow
  # tutorial's 256: 4x the updates for the same compute, and better samples per hour.
  config.batch_size = 64
  config.num_epochs = 5
  config.log_every_steps = 50
  config.checkpoint_every_steps = 500
  config.sample_every_steps = 500
  # Multi-host runs agree every this many steps whether any host got SIGTERM, so that
  # all stop after the same step (single-host runs stop after the current step).
  config.preemption_check_every_steps = 10
  config.max_checkpoints_to_keep = 3
  # False: a non-finite loss or update stops training at the next log step, keeping the
  # last finite checkpoint. True: such updates are skipped (counted in the logs); training
  # stops only if every update between two log steps is skipped.
  config.skip_nonfinite_updates = False
  # True: train the generators and stop. The same command without it measures their
  # quality and evaluates (training resumes at its end: nothing is trained again).
  config.train_only = False

  config.data = ml_collections.ConfigDict(dict(
      name='fashion_mnist',
      data_dir='',  # Empty: TFDS's default (~/tensorflow_datasets or $TFDS_DATA_DIR).
      # Original IDX files (Debian: `apt-get install dataset-fashion-mnist`), used to
      # build the TFDS dataset offline when present.
      local_dir='/usr/share/datasets/fashion-mnist',
      allow_download=True,
      train_split='train',
      test_split='test',
      anomaly_classes=FOOTWEAR_CLASSES,
      validation_fraction=0.1,  # Of the seen-class train images, never trained on.
  ))

  # Every entry is trained and evaluated; the key names the run's folder in the workdir.
  config.gans = ml_collections.ConfigDict(dict(
      dcgan_tf=dcgan_tf(), dcgan_radford=dcgan_radford()))

  # Generators of other families (GENERATOR_CONFIGS), trained beside the GANs; their
  # samples are measured like the GANs'. Each needs its own name, apart from the GANs'.
  config.generators = ml_collections.ConfigDict()

  config.evaluation = ml_collections.ConfigDict(dict(
      num_fake_samples=10_000,  # Per generator, for test and again for validation.
      batch_size=1000,
      # Operating points chosen on the validation split (seen-class reals held out of
      # training + fresh own fakes), never on test: Youden's J, this fake recall, and
      # the most fakes caught while flagging at most this share of real uploads (the
      # marketplace's review budget).
      fake_recall_target=0.95,
      review_budget=0.02,
      more_review_budgets=(0.01, 0.05),  # Their thresholds too, in every report.
      num_histogram_bins=20,
  ))

  # Generator quality: samples against seen-class test reals, in the feature space of a
  # classifier of the seen classes trained here (evaluation/generator_quality.py).
  config.quality = ml_collections.ConfigDict(dict(
      num_samples=10_000,
      neighbours=3,  # k of the k-th nearest neighbour balls of precision and recall.
      feature_classifier=dict(widths=(32, 64), feature_dim=64, learning_rate=1e-3,
                              batch_size=128, num_epochs=3),
  ))

  # The evaluation splits. `reals`: test-split reals of the 'seen', 'anomaly' or 'all'
  # classes, or '' for none. `fakes`: 'own' (this GAN's generator), 'others' (every other
  # GAN of the run), a GAN name, 'folder:<path>' (image files), or '' for none.
  config.evals = ml_collections.ConfigDict(dict(
      own_fakes_vs_reals=dict(reals='all', fakes='own'),
      anomaly_class_reals=dict(reals='anomaly', fakes=''),
      seen_class_reals=dict(reals='seen', fakes=''),
      other_gan_fakes=dict(reals='', fakes='others'),
  ))

  if variant == 'quick':
    # One epoch: 590 steps per GAN (WGAN-GP's generator: 118 updates, one per 5 critic
    # steps), enough for clothing-like samples from the DCGANs.
    config.num_epochs = 1
    config.checkpoint_every_steps = 200
    config.sample_every_steps = 100
  elif variant == 'tiny':
    config.batch_size = 32
    config.num_epochs = 1
    config.log_every_steps = 4
    config.checkpoint_every_steps = 4
    config.sample_every_steps = 8
    config.preemption_check_every_steps = 1
    config.data.train_split = 'train[:640]'
    config.data.test_split = 'test[:320]'
    config.evaluation.num_fake_samples = 128
    config.evaluation.batch_size = 64
    config.quality.num_samples = 256
    config.quality.feature_classifier.batch_size = 32
    config.quality.feature_classifier.num_epochs = 1
  for option in options:
    select_models(config, option, variant)
  return config


def option_names(option: str, known: dict) -> tuple[str, list[str]]:
  """('gans' or 'generators', names) of a `KEY=NAME+NAME` option."""
  key, _, value = option.partition('=')
  names = value.split('+')
  if key not in ('gans', 'generators') or not all(names):
    raise ValueError(f"Unknown config option {option!r}: use 'gans=NAME+NAME' or "
                     "'generators=NAME+NAME'.")
  unknown = sorted(set(names) - set(known[key]))
  if unknown:
    raise ValueError(f'Unknown {key} {unknown} in {option!r}; known: {sorted(known[key])}.')
  return key, names


def select_models(config: ml_collections.ConfigDict, option: str, variant: str) -> None:
  """The GANs (GAN_CONFIGS) or generators (GENERATOR_CONFIGS) of a `KEY=NAME+NAME` option."""
  key, names = option_names(option, {'gans': GAN_CONFIGS, 'generators': GENERATOR_CONFIGS})
  if key == 'generators':
    config.generators = ml_collections.ConfigDict(
        {name: GENERATOR_CONFIGS[name](variant) for name in names})
    return
  config.gans = ml_collections.ConfigDict({
      name: config.gans[name] if name in config.gans else GAN_CONFIGS[name]() for name in names})
  if len(names) == 1:
    del config.evals['other_gan_fakes']  # No other GAN to take fakes from.
