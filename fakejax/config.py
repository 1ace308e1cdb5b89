"""The one place where an experiment config is checked, before any work starts.

A study's schema lists every key the code reads with its type; its rules declare the
choices (registries), ranges and divisibility of values; a few checks relate keys to
each other. Values live only in `configs/`; the studies table (studies/__init__.py)
names each study's schema and checks.
"""

import dataclasses
import difflib
import pathlib
from collections.abc import Collection, Iterator, Mapping
from typing import Any

import ml_collections

from fakejax.data import augment, perturb, transforms
from fakejax.errors import UserError
from fakejax.models import CLASSIFIERS, COMPUTE_DTYPES, GAN_ARCHITECTURES, GENERATORS
from fakejax.models.autoencoder import UPSAMPLERS
from fakejax.models.classifiers import HEAD_POOLINGS
from fakejax.train.autoencoder_gan import RECONSTRUCTION_LOSSES
from fakejax.train.classifier_steps import LOSSES
from fakejax.train.diffusion_steps import NOISE_SCHEDULES
from fakejax.train.generator_trainer import FAMILY_STEPS
from fakejax.train.real_only_trainer import ARCHITECTURES as REAL_ONLY_ARCHITECTURES

NUM_FASHION_MNIST_CLASSES = 10

OPTIMIZER_SCHEMA = {'learning_rate': float, 'b1': float, 'b2': float}
GAN_SCHEMA = {'architecture': str, 'latent_dim': int, 'optimizer': OPTIMIZER_SCHEMA,
              'compute_dtype': str}  # Of models.COMPUTE_DTYPES.
GENERATOR_SCHEMA = {
    'architecture': str,  # Of models.GENERATORS.
    'features': tuple,
    # Its family's own keys (OPTIONS_SCHEMA of train/<family>_steps.py; check_generators).
    'options': {'*': object},
    # decay_steps > 0: a cosine decay to 0 over that many steps; clip_global_norm > 0:
    # gradients clipped to that global norm (0: off, for both).
    'optimizer': {**OPTIMIZER_SCHEMA, 'decay_steps': int, 'clip_global_norm': float},
    'batch_size': int,
    'num_epochs': int,
    'ema_decay': float,
}
DATA_SCHEMA = {
    'name': str,
    'data_dir': str,
    'local_dir': str,
    'allow_download': bool,
    'train_split': str,
    'test_split': str,
    'anomaly_classes': tuple,
    'validation_fraction': float,
}
EVALUATION_SCHEMA = {'num_fake_samples': int, 'batch_size': int, 'fake_recall_target': float,
                     'review_budget': float, 'more_review_budgets': tuple,
                     'num_histogram_bins': int}
QUALITY_SCHEMA = {'num_samples': int, 'neighbours': int, 'feature_classifier': {
    'widths': tuple, 'feature_dim': int, 'learning_rate': float, 'batch_size': int,
    'num_epochs': int}}
# The DCGAN study: train every GAN, evaluate each discriminator as a detector.
DCGAN_SCHEMA = {
    'experiment': str,
    'seed': int,  # Of the data splits and evaluation samples; and of training, for one seed.
    'seeds': tuple,  # Replicas trained together, one per seed; empty: the one `seed`.
    'batch_size': int,
    'num_epochs': int,
    'log_every_steps': int,
    'checkpoint_every_steps': int,
    'sample_every_steps': int,
    'preemption_check_every_steps': int,
    'skip_nonfinite_updates': bool,
    'max_checkpoints_to_keep': int,
    'train_only': bool,  # Train, then stop: no quality measurement nor evaluation.
    'data': DATA_SCHEMA,
    # Any number of named entries, each of GAN_SCHEMA.
    'gans': {'*': GAN_SCHEMA},
    'generators': {'*': GENERATOR_SCHEMA},
    'evaluation': EVALUATION_SCHEMA,
    'quality': QUALITY_SCHEMA,
    # Any number of named splits.
    'evals': {'*': {'reals': str, 'fakes': str}},
}
AUTOENCODER_SCHEMA = {
    'depth': int,
    'base_features': int,
    'latent_features': int,
    'upsampler': str,  # Of models.autoencoder.UPSAMPLERS: how its decoder up-samples.
    'discriminator': str,  # A GAN architecture whose discriminator judges reconstructions.
    'reconstruction_loss': str,
    'reconstruction_weight': float,
    'adversarial_weight': float,
    'optimizer': OPTIMIZER_SCHEMA,
    'batch_size': int,
    'num_epochs': int,
}
AUGMENTATION_SCHEMA = {
    'resize_crop_prob': float, 'resize_scale': float, 'flip_prob': float, 'crop_padding': int,
    'rotation_prob': float, 'rotation_degrees': float, 'jitter_prob': float,
    'brightness': float, 'contrast': float, 'saturation': float, 'blur_prob': float,
    'blur_sigma_max': float, 'resample_prob': float, 'resample_scale_min': float,
    'jpeg_prob': float, 'jpeg_quality_min': int}
CLASSIFIER_SCHEMA = {
    'architecture': str,  # Of models.CLASSIFIERS.
    'features': tuple,  # Empty: the architecture's own widths.
    'hidden': int,
    'dropout_rate': float,
    'pooling': str,  # Of models.classifiers.HEAD_POOLINGS.
    'head_l2': float,  # L2 penalty on the head's hidden kernel (Keras's kernel_regularizer).
    'loss': str,  # Of classifier_steps.LOSSES.
    'pretrained': str,  # A converted weights file (tools/convert_weights.py); empty: none.
    'optimizer': {**OPTIMIZER_SCHEMA, 'weight_decay': float},  # > 0: AdamW.
    'batch_size': int,
    'num_epochs': int,
    'max_train_reals': int,
    'frozen': tuple,  # Name prefixes of top-level modules the optimiser leaves unchanged.
    # On validation AP, measured after every epoch: the learning rate is multiplied by
    # lr_decay_factor after lr_decay_patience_epochs without a new best; training stops
    # after early_stopping_patience_epochs without one (0: never).
    'lr_decay_factor': float,
    'lr_decay_patience_epochs': int,
    'early_stopping_patience_epochs': int,
    # Of reals and fakes alike, in the input pipeline (data/augment.py).
    'augmentation': AUGMENTATION_SCHEMA,
    'inputs': tuple,  # Of transforms.INPUT_KINDS.
    'train_generators': tuple,  # GAN names (Fashion-MNIST) or ('folder',).
}
# The autoencoder-GAN study: autoencoders trained on reals, classifiers on their outputs.
AUTOGAN_SCHEMA = {
    **{key: DCGAN_SCHEMA[key] for key in (
        'experiment', 'seed', 'seeds', 'batch_size', 'num_epochs', 'log_every_steps',
        'checkpoint_every_steps', 'sample_every_steps', 'preemption_check_every_steps',
        'skip_nonfinite_updates', 'max_checkpoints_to_keep')},
    # Empty folder: Fashion-MNIST; else `<folder>/{train,test}/{real,fake}/` image files.
    'data': {**DATA_SCHEMA, 'folder': str, 'image_shape': tuple},
    'gans': {'*': GAN_SCHEMA},
    # Generators of other families, in gan_workdir beside the GANs (or trained here).
    'generators': {'*': GENERATOR_SCHEMA},
    'gan_workdir': str,  # Where the GANs' checkpoints are; empty: trained in the workdir.
    'autoencoders': {'*': AUTOENCODER_SCHEMA},
    'classifier': CLASSIFIER_SCHEMA,
    'evaluation': EVALUATION_SCHEMA,
    'evals': {'*': {'reals': str, 'fakes': str}},
}
# A model of real images whose surprise flags fakes (train/likelihood_steps.py).
REAL_ONLY_SCHEMA = {
    'architecture': str,  # Of train.real_only_trainer.ARCHITECTURES.
    'features': int,
    'num_layers': int,
    'optimizer': OPTIMIZER_SCHEMA,
    'batch_size': int,
    'num_epochs': int,
    'max_train_reals': int,
    # Of the training reals (data/augment.py): a model of honest uploads, re-encoded and
    # resized as uploads are, rather than of pristine images.
    'augmentation': AUGMENTATION_SCHEMA,
}
# Dedicated classifiers, one per set of training generators, tested on every generator.
DETECTORS_SCHEMA = {
    **{key: value for key, value in AUTOGAN_SCHEMA.items() if key != 'autoencoders'},
    'classifier': {**{key: value for key, value in CLASSIFIER_SCHEMA.items()
                      if key not in ('inputs', 'train_generators')},
                   'input': str},  # Of transforms.IMAGE_INPUTS: what every classifier sees.
    # Autoencoder-GANs whose reconstructions of reals are fakes of one more generator
    # family; each is a generator of the study by its name here.
    'autoencoder_generators': {'*': AUTOENCODER_SCHEMA},
    'train_sets': {'*': tuple},  # Name -> the generators whose fakes it trains on.
    # Name -> a detector trained on reals alone (a model of reals); empty: none.
    'real_only': {'*': REAL_ONLY_SCHEMA},
    # Name -> a fusion of detectors by name (train sets, real-only detectors, 'D:<gan>'),
    # fitted on validation reals and the validation fakes of `fit_on` generators only.
    'fusions': {'*': {'members': tuple, 'fit_on': tuple}},
    # Family -> its generators; each needs a train set of every other family's generators
    # (leave-one-family-out). Empty: no such table.
    'families': {'*': tuple},
    # evals must hold 'fakes_<gan>' (reals='all', fakes=<gan>) for every GAN: the columns.
}
REAL_SOURCES = ('', 'seen', 'anomaly', 'all')


class ConfigError(UserError, ValueError):
  """A config that cannot run, with the key at fault in the message."""


def _is_group(value: Any) -> bool:
  return isinstance(value, (Mapping, ml_collections.ConfigDict))


def _check_keys(config: Mapping[str, Any], schema: Mapping[str, Any], prefix: str) -> None:
  for key in config.keys():
    if key not in schema and '*' not in schema:
      close = difflib.get_close_matches(key, list(schema), n=1)
      hint = f" Did you mean '{prefix}{close[0]}'?" if close else ''
      raise ConfigError(
          f"Unknown config key '{prefix}{key}'.{hint} Known keys here: {sorted(schema)}.")
  for key, expected in schema.items():
    if key == '*':
      for name, value in config.items():
        _check_value(value, expected, f'{prefix}{name}')
      continue
    if key not in config:
      raise ConfigError(f"Missing config key '{prefix}{key}'.")
    _check_value(config[key], expected, f'{prefix}{key}')


def _check_value(value: Any, expected: Any, key: str) -> None:
  if isinstance(expected, dict):
    if not _is_group(value):
      raise ConfigError(f"Config key '{key}' must be a group of keys, got {value!r}.")
    _check_keys(value, expected, f'{key}.')
    return
  ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
  if expected is float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
  if expected is tuple:
    ok = isinstance(value, (tuple, list))
  if not ok:
    raise ConfigError(
        f"Config key '{key}' must be of type {expected.__name__}, got {value!r} "
        f"({type(value).__name__}).")


# Rules on values, declared per key ('*' matches every entry of a group).
@dataclasses.dataclass(frozen=True)
class Choice:
  """The value must be one of `choices` (a registry's names)."""
  choices: Collection[str]

  def check(self, key: str, value: Any, num_devices: int) -> None:
    del num_devices
    if value not in self.choices:
      raise ConfigError(f"Config key '{key}' is {value!r}; use one of {sorted(self.choices)}.")


@dataclasses.dataclass(frozen=True)
class Range:
  """low <= value <= high, with either end open (excluded) where said."""
  low: float | None = None
  high: float | None = None
  low_open: bool = False
  high_open: bool = False

  def check(self, key: str, value: Any, num_devices: int) -> None:
    del num_devices
    too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
    too_high = self.high is not None and (value >= self.high if self.high_open
                                          else value > self.high)
    if too_low or too_high:
      raise ConfigError(f"Config key '{key}' must be {self.describe()}, got {value}.")

  def describe(self) -> str:
    if self.high is None:
      if self.low == 0 and self.low_open:
        return 'positive'
      return f"{'>' if self.low_open else '>='} {self.low:g}"
    low = '-inf' if self.low is None else f'{self.low:g}'
    return (f"in {'(' if self.low_open else '['}{low}, {self.high:g}"
            f"{')' if self.high_open else ']'}")


@dataclasses.dataclass(frozen=True)
class RealSource:
  """A `reals` source of config.evals: one of REAL_SOURCES, perturbed where it ends in
  '@<perturbation>' (data/perturb.py), e.g. 'seen@jpeg_75'."""

  def check(self, key: str, value: Any, num_devices: int) -> None:
    base, perturbation = perturb.split_source(value)
    Choice(REAL_SOURCES).check(key, base, num_devices)
    if perturbation:
      if not base:
        raise ConfigError(f"Config key '{key}' is {value!r}: name the reals to perturb, e.g. "
                          f"'seen@{perturbation}'.")
      try:
        perturb.parse(perturbation)
      except ValueError as error:
        raise ConfigError(f"Config key '{key}' is {value!r}. {error}") from None


@dataclasses.dataclass(frozen=True)
class DividesOverDevices:
  """A global batch size: every device takes an equal share."""

  def check(self, key: str, value: Any, num_devices: int) -> None:
    if value % num_devices:
      raise ConfigError(
          f"Config key '{key}' ({value}) must be divisible by the number of devices "
          f"({num_devices}): every device takes an equal share of the batch.")


POSITIVE = Range(0, low_open=True)
NOT_NEGATIVE = Range(0)
PROBABILITY = Range(0, 1)
BATCH = (POSITIVE, DividesOverDevices())


def _values(config: Any, key: str, prefix: str = '') -> Iterator[tuple[str, Any]]:
  """(concrete key, value) of a dotted key whose parts may be '*'."""
  first, _, rest = key.partition('.')
  names = list(config.keys()) if first == '*' else [first]
  for name in names:
    value = config[name]
    if rest:
      yield from _values(value, rest, f'{prefix}{name}.')
    else:
      yield f'{prefix}{name}', value


def check_rules(config: ml_collections.ConfigDict, rules: Mapping[str, Any],
                num_devices: int) -> None:
  """Applies each key's rule (or tuple of rules) to its values."""
  for key, key_rules in rules.items():
    for rule in key_rules if isinstance(key_rules, tuple) else (key_rules,):
      for concrete, value in _values(config, key):
        rule.check(concrete, value, num_devices)


COMMON_RULES = {
    'batch_size': BATCH, 'num_epochs': POSITIVE, 'log_every_steps': POSITIVE,
    'checkpoint_every_steps': POSITIVE, 'sample_every_steps': POSITIVE,
    'preemption_check_every_steps': POSITIVE, 'max_checkpoints_to_keep': POSITIVE,
    'data.validation_fraction': Range(0, 1, low_open=True, high_open=True),
    'gans.*.architecture': Choice(GAN_ARCHITECTURES),
    'gans.*.compute_dtype': Choice(COMPUTE_DTYPES),
    'evaluation.num_fake_samples': POSITIVE, 'evaluation.num_histogram_bins': POSITIVE,
    'evaluation.batch_size': BATCH,
    'evaluation.fake_recall_target': Range(0, 1, low_open=True),
    'evaluation.review_budget': Range(0, 1, low_open=True, high_open=True),
    'evals.*.reals': RealSource(),
}


def autoencoder_rules(group: str) -> dict[str, Any]:
  return {f'{group}.*.{key}': POSITIVE for key in ('depth', 'base_features', 'latent_features',
                                                   'num_epochs')} | {
      f'{group}.*.batch_size': BATCH,
      f'{group}.*.discriminator': Choice(GAN_ARCHITECTURES),
      f'{group}.*.upsampler': Choice(UPSAMPLERS),
      f'{group}.*.reconstruction_loss': Choice(RECONSTRUCTION_LOSSES)}


def augmentation_rules(group: str) -> dict[str, Any]:
  """The rules of an `augmentation` group (data/augment.py) at key `group`."""
  return {
      **{f'{group}.{key}': PROBABILITY for key in augment.Augmentation.PROBABILITIES},
      f'{group}.jpeg_quality_min': Range(1, 100),
      **{f'{group}.{key}': NOT_NEGATIVE for key in (
          'crop_padding', 'blur_sigma_max', 'rotation_degrees', 'brightness', 'contrast',
          'saturation')},
      f'{group}.resize_scale': Range(1),  # It scales up, then crops back.
      f'{group}.resample_scale_min': Range(0, 1, low_open=True),
  }


REAL_ONLY_RULES = {
    'real_only.*.architecture': Choice(REAL_ONLY_ARCHITECTURES),
    'real_only.*.batch_size': BATCH,
    **{f'real_only.*.{key}': POSITIVE for key in ('features', 'num_layers', 'num_epochs',
                                                  'max_train_reals',
                                                  'optimizer.learning_rate')},
    **augmentation_rules('real_only.*.augmentation'),
}
CLASSIFIER_RULES = {
    'classifier.architecture': Choice(CLASSIFIERS),
    'classifier.batch_size': BATCH, 'classifier.num_epochs': POSITIVE,
    'classifier.max_train_reals': POSITIVE,
    'classifier.pooling': Choice(HEAD_POOLINGS), 'classifier.loss': Choice(LOSSES),
    'classifier.head_l2': NOT_NEGATIVE, 'classifier.optimizer.weight_decay': NOT_NEGATIVE,
    'classifier.lr_decay_factor': Range(0, 1, low_open=True),
    'classifier.lr_decay_patience_epochs': POSITIVE,
    'classifier.early_stopping_patience_epochs': NOT_NEGATIVE,
    **augmentation_rules('classifier.augmentation'),
}


def validate_config(config: ml_collections.ConfigDict, schema: Mapping[str, Any], *,
                    num_devices: int) -> None:
  """Raises ConfigError naming the key: unknown, missing or mistyped keys, and the rules
  every study shares. A study's own checks follow (studies.validate)."""
  _check_keys(config, schema, '')
  check_rules(config, COMMON_RULES, num_devices)
  anomalies = list(config.data.anomaly_classes)
  bad = [c for c in anomalies if not isinstance(c, int) or not 0 <= c < NUM_FASHION_MNIST_CLASSES]
  if bad:
    raise ConfigError(
        f"Config key 'data.anomaly_classes' has class indices out of range 0..9: {bad}.")
  if len(set(anomalies)) != len(anomalies) or len(anomalies) >= NUM_FASHION_MNIST_CLASSES:
    raise ConfigError(
        f"Config key 'data.anomaly_classes' must be distinct and leave seen classes, "
        f"got {anomalies}.")
  _check_evals(config)
  for budget in config.evaluation.more_review_budgets:
    Range(0, 1, low_open=True, high_open=True).check('evaluation.more_review_budgets', budget,
                                                     num_devices)


QUALITY_RULES = {
    'quality.num_samples': POSITIVE, 'quality.neighbours': POSITIVE,
    'quality.feature_classifier.feature_dim': POSITIVE,
    'quality.feature_classifier.learning_rate': POSITIVE,
    'quality.feature_classifier.batch_size': BATCH,
    'quality.feature_classifier.num_epochs': POSITIVE,
}


GENERATOR_RULES = {
    'generators.*.architecture': Choice(GENERATORS),
    'generators.*.batch_size': BATCH, 'generators.*.num_epochs': POSITIVE,
    'generators.*.optimizer.learning_rate': POSITIVE,
    'generators.*.optimizer.decay_steps': NOT_NEGATIVE,
    'generators.*.optimizer.clip_global_norm': NOT_NEGATIVE,
    'generators.*.ema_decay': Range(0, 1, high_open=True),
}
# Per family, its options' rules, and how many widths its model takes (U-Net widths are
# multiples of its GroupNorm's 8 groups).
FAMILY_OPTION_RULES = {
    'vae': {'latent_dim': POSITIVE, 'kl_weight': NOT_NEGATIVE},
    'diffusion': {'num_timesteps': POSITIVE, 'noise_schedule': Choice(NOISE_SCHEDULES),
                  'sampling_steps': POSITIVE},
    'flow': {'steps_per_level': POSITIVE, 'temperature': POSITIVE},
}
FAMILY_WIDTHS = {'vae': (2, 1), 'diffusion': (3, 8), 'flow': (1, 1)}  # (count, multiple of).


def check_generators(config: ml_collections.ConfigDict, num_devices: int) -> None:
  """Each generator's keys and values, its family's options included."""
  check_rules(config, GENERATOR_RULES, num_devices)
  clashes = set(config.gans) & set(config.generators)
  if clashes:
    raise ConfigError(f"Config keys 'gans' and 'generators' share names {sorted(clashes)}: "
                      'every generator needs its own.')
  for name, generator in config.generators.items():
    family, prefix = GENERATORS[generator.architecture].family, f'generators.{name}'
    _check_keys(generator.options, FAMILY_STEPS[family].OPTIONS_SCHEMA, f'{prefix}.options.')
    check_rules(config, {f'{prefix}.options.{key}': rule
                         for key, rule in FAMILY_OPTION_RULES[family].items()}, num_devices)
    count, multiple = FAMILY_WIDTHS[family]
    widths = tuple(generator.features)
    if len(widths) != count or any(w <= 0 or w % multiple for w in widths):
      raise ConfigError(f"Config key '{prefix}.features' must hold {count} positive widths"
                        f"{f' (multiples of {multiple})' if multiple > 1 else ''} for "
                        f"{generator.architecture}, got {widths}.")


def check_seeds(config: ml_collections.ConfigDict) -> None:
  """Distinct integer seeds."""
  seeds = tuple(config.seeds)
  if not all(isinstance(seed, int) for seed in seeds) or len(set(seeds)) != len(seeds):
    raise ConfigError(f"Config key 'seeds' must hold distinct integers, got {seeds}.")


def check_dcgan(config: ml_collections.ConfigDict, num_devices: int) -> None:
  if not config.gans:
    raise ConfigError("Config key 'gans' names no model to train.")
  check_rules(config, QUALITY_RULES, num_devices)
  check_generators(config, num_devices)
  check_seeds(config)


def _check_evals(config: ml_collections.ConfigDict) -> None:
  fake_sources = ('', 'own', 'others', *config.gans.keys(),
                  *config.get('generators', {}).keys(),
                  *config.get('autoencoder_generators', {}).keys())
  for name, split in config.evals.items():
    if split.fakes not in fake_sources and not split.fakes.startswith('folder:'):
      raise ConfigError(f"Config key 'evals.{name}.fakes' is {split.fakes!r}; use one of "
                        f"{list(fake_sources)} or 'folder:<path>'.")
    if not split.reals and not split.fakes:
      raise ConfigError(f"Config key 'evals.{name}' names neither reals nor fakes.")


def check_autogan(config: ml_collections.ConfigDict, num_devices: int) -> None:
  _check_data_shape(config)
  check_seeds(config)
  check_generators(config, num_devices)
  check_rules(config, autoencoder_rules('autoencoders'), num_devices)
  _check_classifier(config, num_devices)
  classifier = config.classifier
  unknown = [kind for kind in classifier.inputs if kind not in transforms.INPUT_KINDS]
  if unknown or not classifier.inputs:
    raise ConfigError(f"Config key 'classifier.inputs' must list some of "
                      f"{list(transforms.INPUT_KINDS)}; unknown: {unknown}.")
  needs_autoencoder = [kind for kind in classifier.inputs if kind in transforms.AUTOENCODER_INPUTS]
  if needs_autoencoder and not config.autoencoders:
    raise ConfigError(f"Config key 'classifier.inputs' has {needs_autoencoder}, which need an "
                      "autoencoder, but 'autoencoders' is empty.")
  _check_generators(config, 'classifier.train_generators', classifier.train_generators)


def _check_data_shape(config: ml_collections.ConfigDict) -> None:
  shape = tuple(config.data.image_shape)
  if len(shape) != 3 or shape[2] not in (1, 3) or min(shape) <= 0:
    raise ConfigError(f"Config key 'data.image_shape' must be (height, width, 1 or 3), got {shape}.")
  if not config.data.folder and shape != (28, 28, 1):
    raise ConfigError(
        f"Config key 'data.folder' is empty, so the data is Fashion-MNIST, whose images are "
        f"(28, 28, 1), not 'data.image_shape' {shape}: set data.folder to a real/fake image "
        "folder (--config.data.folder=<root>).")


def _check_classifier(config: ml_collections.ConfigDict, num_devices: int) -> None:
  check_rules(config, CLASSIFIER_RULES, num_devices)
  classifier = config.classifier
  spec = CLASSIFIERS[classifier.architecture]
  if not spec.configurable_head:
    check_rules(config, {'classifier.hidden': POSITIVE}, num_devices)
    if classifier.pooling != 'flatten':
      raise ConfigError(f"Config key 'classifier.pooling' must be 'flatten' for "
                        f'{classifier.architecture}, whose head is its study\'s; pooling is set '
                        'for the ImageNet backbones.')
  else:
    check_rules(config, {'classifier.hidden': NOT_NEGATIVE}, num_devices)  # 0: no hidden layer.
  if spec.fixed_widths and classifier.features:
    raise ConfigError(f"Config key 'classifier.features' must be empty for "
                      f'{classifier.architecture}, whose widths are the published ones (its '
                      'pretrained weights need them).')
  if classifier.pretrained and not pathlib.Path(classifier.pretrained).is_file():
    raise ConfigError(f"Config key 'classifier.pretrained' names {classifier.pretrained!r}, "
                      "which is not a file: convert weights with tools/convert_weights.py.")


def study_generators(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The names of every source of fakes in a classifier study, in table order."""
  if config.data.get('folder'):
    return ('folder',)
  return (*config.gans.keys(), *config.get('generators', {}).keys(),
          *config.get('autoencoder_generators', {}).keys())


def _check_generators(config: ml_collections.ConfigDict, key: str, names) -> None:
  generators = study_generators(config)
  bad = [name for name in names if name not in generators]
  if bad or not names:
    raise ConfigError(f"Config key '{key}' must name some of {list(generators)}; "
                      f"unknown: {bad}.")


def check_detectors(config: ml_collections.ConfigDict, num_devices: int) -> None:
  _check_data_shape(config)
  check_seeds(config)
  _check_classifier(config, num_devices)
  check_rules(config, {'classifier.input': Choice(transforms.IMAGE_INPUTS)}, num_devices)
  check_generators(config, num_devices)
  check_rules(config, autoencoder_rules('autoencoder_generators'), num_devices)
  clashes = (set(config.gans) | set(config.generators)) & set(config.autoencoder_generators)
  if clashes:
    raise ConfigError(f"Config key 'autoencoder_generators' shares names {sorted(clashes)} "
                      "with 'gans' or 'generators': every generator needs its own.")
  if not config.train_sets:
    raise ConfigError("Config key 'train_sets' names no classifier to train.")
  check_rules(config, REAL_ONLY_RULES, num_devices)
  clashes = set(config.real_only) & set(config.train_sets)
  if clashes:
    raise ConfigError(f"Config key 'real_only' shares names {sorted(clashes)} with "
                      "'train_sets': every detector needs its own.")
  for name, generators in config.train_sets.items():
    _check_generators(config, f'train_sets.{name}', generators)
  held_out_sets(config)  # Each family's, or a ConfigError.
  _check_fusions(config)
  missing = [f'fakes_{name}' for name in study_generators(config)
             if f'fakes_{name}' not in config.evals]
  if missing:
    raise ConfigError(f"Config key 'evals' lacks {missing}: the table needs each generator's "
                      "test fakes against all test reals (reals='all', fakes=<gan>).")


def _check_fusions(config: ml_collections.ConfigDict) -> None:
  """Fusions name known detectors and generators, and fit one seed's detectors."""
  detectors = [*config.train_sets, *config.real_only, *(f'D:{gan}' for gan in config.gans)]
  for name, fusion in config.fusions.items():
    unknown = [member for member in fusion.members if member not in detectors]
    if unknown or len(fusion.members) < 2:
      raise ConfigError(f"Config key 'fusions.{name}.members' must name two or more of "
                        f'{detectors}; unknown: {unknown}.')
    _check_generators(config, f'fusions.{name}.fit_on', fusion.fit_on)
    if name in detectors:
      raise ConfigError(f"Config key 'fusions.{name}' is the name of another detector.")
  if config.fusions and len(config.seeds) > 1:
    raise ConfigError("Config key 'fusions' needs a study of one seed (config.seeds has "
                      f'{list(config.seeds)}): a fusion is fitted on one replica of each member.')


def held_out_sets(config: ml_collections.ConfigDict) -> dict[str, str]:
  """Family -> the train set of every generator of the other families (leave-one-family-out).

  Families must name study generators, each in one family at most.
  """
  generators, seen, sets = study_generators(config), set(), {}
  by_content = {frozenset(members): name for name, members in config.train_sets.items()}
  for family, members in config.families.items():
    _check_generators(config, f'families.{family}', members)
    if seen & set(members):
      raise ConfigError(f"Config key 'families.{family}' shares generators "
                        f'{sorted(seen & set(members))} with another family.')
    seen |= set(members)
  for family, members in config.families.items():
    others = frozenset(g for g in generators if g in seen and g not in members)
    if others not in by_content:
      raise ConfigError(f"Config key 'train_sets' has no set of {sorted(others)} (every family "
                        f"but '{family}'), which 'families' needs to hold '{family}' out.")
    sets[family] = by_content[others]
  return sets
