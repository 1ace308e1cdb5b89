"""The one place where an experiment config is checked, before any work starts.

The schema lists every key the code reads with its type; values live only in `configs/`.
"""

import difflib
import pathlib
from collections.abc import Mapping
from typing import Any

import ml_collections

NUM_FASHION_MNIST_CLASSES = 10

OPTIMIZER_SCHEMA = {'learning_rate': float, 'b1': float, 'b2': float}
GAN_SCHEMA = {'architecture': str, 'latent_dim': int, 'optimizer': OPTIMIZER_SCHEMA,
              'compute_dtype': str}  # Of models.COMPUTE_DTYPES.
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
                     'num_histogram_bins': int}
# The DCGAN study: train every GAN, evaluate each discriminator as a detector.
DCGAN_SCHEMA = {
    'experiment': str,
    'seed': int,
    'batch_size': int,
    'num_epochs': int,
    'log_every_steps': int,
    'checkpoint_every_steps': int,
    'sample_every_steps': int,
    'preemption_check_every_steps': int,
    'skip_nonfinite_updates': bool,
    'max_checkpoints_to_keep': int,
    'data': DATA_SCHEMA,
    # Any number of named entries, each of GAN_SCHEMA.
    'gans': {'*': GAN_SCHEMA},
    'evaluation': EVALUATION_SCHEMA,
    # Any number of named splits.
    'evals': {'*': {'reals': str, 'fakes': str}},
}
AUTOENCODER_SCHEMA = {
    'depth': int,
    'base_features': int,
    'latent_features': int,
    'discriminator': str,  # A GAN architecture whose discriminator judges reconstructions.
    'reconstruction_loss': str,
    'reconstruction_weight': float,
    'adversarial_weight': float,
    'optimizer': OPTIMIZER_SCHEMA,
    'batch_size': int,
    'num_epochs': int,
}
CLASSIFIER_SCHEMA = {
    'architecture': str,  # Of models.CLASSIFIER_ARCHITECTURES.
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
    'augmentation': {'resize_crop_prob': float, 'resize_scale': float, 'flip_prob': float,
                     'crop_padding': int, 'rotation_prob': float, 'rotation_degrees': float,
                     'jitter_prob': float, 'brightness': float, 'contrast': float,
                     'saturation': float, 'blur_prob': float, 'blur_sigma_max': float,
                     'jpeg_prob': float, 'jpeg_quality_min': int},
    'inputs': tuple,  # Of transforms.INPUT_KINDS.
    'train_generators': tuple,  # GAN names (Fashion-MNIST) or ('folder',).
}
# The autoencoder-GAN study: autoencoders trained on reals, classifiers on their outputs.
AUTOGAN_SCHEMA = {
    **{key: DCGAN_SCHEMA[key] for key in (
        'experiment', 'seed', 'batch_size', 'num_epochs', 'log_every_steps',
        'checkpoint_every_steps', 'sample_every_steps', 'preemption_check_every_steps',
        'skip_nonfinite_updates', 'max_checkpoints_to_keep')},
    # Empty folder: Fashion-MNIST; else `<folder>/{train,test}/{real,fake}/` image files.
    'data': {**DATA_SCHEMA, 'folder': str, 'image_shape': tuple},
    'gans': {'*': GAN_SCHEMA},
    'gan_workdir': str,  # Where the GANs' checkpoints are; empty: trained in the workdir.
    'autoencoders': {'*': AUTOENCODER_SCHEMA},
    'classifier': CLASSIFIER_SCHEMA,
    'evaluation': EVALUATION_SCHEMA,
    'evals': {'*': {'reals': str, 'fakes': str}},
}
# Dedicated classifiers, one per set of training generators, tested on every generator.
DETECTORS_SCHEMA = {
    **{key: value for key, value in AUTOGAN_SCHEMA.items() if key != 'autoencoders'},
    'classifier': {key: value for key, value in CLASSIFIER_SCHEMA.items()
                   if key not in ('inputs', 'train_generators')},
    # Autoencoder-GANs whose reconstructions of reals are fakes of one more generator
    # family; each is a generator of the study by its name here.
    'autoencoder_generators': {'*': AUTOENCODER_SCHEMA},
    'train_sets': {'*': tuple},  # Name -> the generators whose fakes it trains on.
    # evals must hold 'fakes_<gan>' (reals='all', fakes=<gan>) for every GAN: the columns.
}
SCHEMAS = {'dcgan_detectors': DCGAN_SCHEMA, 'autogan': AUTOGAN_SCHEMA,
           'detectors': DETECTORS_SCHEMA}

REAL_SOURCES = ('', 'seen', 'anomaly', 'all')


class ConfigError(ValueError):
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


def _lookup(config: ml_collections.ConfigDict, key: str) -> Any:
  """The value of a dotted key, e.g. 'evaluation.batch_size'."""
  value = config
  for part in key.split('.'):
    value = value[part]
  return value


def _check_positive(config: ml_collections.ConfigDict, *keys: str) -> None:
  for key in keys:
    value = _lookup(config, key)
    if value <= 0:
      raise ConfigError(f"Config key '{key}' must be positive, got {value}.")


def _check_divisible(config: ml_collections.ConfigDict, key: str, num_devices: int) -> None:
  value = _lookup(config, key)
  if value % num_devices:
    raise ConfigError(
        f"Config key '{key}' ({value}) must be divisible by the number of devices "
        f"({num_devices}): every device takes an equal share of the batch.")


def validate_config(config: ml_collections.ConfigDict, *, num_devices: int,
                    architectures: Mapping[str, Any]) -> None:
  """Raises ConfigError naming the key for anything that cannot run.

  Args:
    config: the experiment config.
    num_devices: devices of all processes the global batch is split over.
    architectures: the known model architectures, by name.
  """
  experiment = config.get('experiment')
  if experiment not in SCHEMAS:
    raise ConfigError(f"Config key 'experiment' is {experiment!r}; known experiments: "
                      f"{sorted(SCHEMAS)}.")
  _check_keys(config, SCHEMAS[experiment], '')
  _check_positive(config, 'batch_size', 'num_epochs', 'log_every_steps',
                  'checkpoint_every_steps', 'sample_every_steps', 'preemption_check_every_steps',
                  'max_checkpoints_to_keep')
  _check_divisible(config, 'batch_size', num_devices)
  anomalies = list(config.data.anomaly_classes)
  bad = [c for c in anomalies if not isinstance(c, int) or not 0 <= c < NUM_FASHION_MNIST_CLASSES]
  if bad:
    raise ConfigError(
        f"Config key 'data.anomaly_classes' has class indices out of range 0..9: {bad}.")
  if len(set(anomalies)) != len(anomalies) or len(anomalies) >= NUM_FASHION_MNIST_CLASSES:
    raise ConfigError(
        f"Config key 'data.anomaly_classes' must be distinct and leave seen classes, "
        f"got {anomalies}.")
  if not 0.0 < config.data.validation_fraction < 1.0:
    raise ConfigError(
        f"Config key 'data.validation_fraction' must be in (0, 1), got "
        f"{config.data.validation_fraction}.")
  if not config.gans and experiment == 'dcgan_detectors':
    raise ConfigError("Config key 'gans' names no model to train.")
  from fakejax.models import COMPUTE_DTYPES  # pylint: disable=g-import-not-at-top
  for name, gan in config.gans.items():
    if gan.architecture not in architectures:
      raise ConfigError(
          f"Config key 'gans.{name}.architecture' is {gan.architecture!r}; known "
          f"architectures: {sorted(architectures)}.")
    if gan.compute_dtype not in COMPUTE_DTYPES:
      raise ConfigError(f"Config key 'gans.{name}.compute_dtype' is {gan.compute_dtype!r}; use "
                        f"one of {sorted(COMPUTE_DTYPES)}.")
  _check_positive(config, 'evaluation.num_fake_samples', 'evaluation.batch_size',
                  'evaluation.num_histogram_bins')
  if not 0.0 < config.evaluation.fake_recall_target <= 1.0:
    raise ConfigError("Config key 'evaluation.fake_recall_target' must be in (0, 1], got "
                      f"{config.evaluation.fake_recall_target}.")
  _check_evals(config)
  if experiment == 'autogan':
    _check_autogan(config, num_devices, architectures)
  if experiment == 'detectors':
    _check_detectors(config, num_devices, architectures)
  _check_divisible(config, 'evaluation.batch_size', num_devices)


def _check_evals(config: ml_collections.ConfigDict) -> None:
  fake_sources = ('', 'own', 'others', *config.gans.keys(),
                  *config.get('autoencoder_generators', {}).keys())
  for name, split in config.evals.items():
    if split.reals not in REAL_SOURCES:
      raise ConfigError(f"Config key 'evals.{name}.reals' is {split.reals!r}; use one of "
                        f"{list(REAL_SOURCES)}.")
    if split.fakes not in fake_sources and not split.fakes.startswith('folder:'):
      raise ConfigError(f"Config key 'evals.{name}.fakes' is {split.fakes!r}; use one of "
                        f"{list(fake_sources)} or 'folder:<path>'.")
    if not split.reals and not split.fakes:
      raise ConfigError(f"Config key 'evals.{name}' names neither reals nor fakes.")


def _check_autogan(config: ml_collections.ConfigDict, num_devices: int,
                   architectures: Mapping[str, Any]) -> None:
  from fakejax.data.transforms import INPUT_KINDS  # pylint: disable=g-import-not-at-top
  _check_data_shape(config)
  _check_autoencoders(config, 'autoencoders', num_devices, architectures)
  classifier = config.classifier
  _check_classifier(config, num_devices)
  unknown = [kind for kind in classifier.inputs if kind not in INPUT_KINDS]
  if unknown or not classifier.inputs:
    raise ConfigError(f"Config key 'classifier.inputs' must list some of {list(INPUT_KINDS)}; "
                      f"unknown: {unknown}.")
  needs_autoencoder = [kind for kind in classifier.inputs if kind not in ('image', 'image_spectrum')]
  if needs_autoencoder and not config.autoencoders:
    raise ConfigError(f"Config key 'classifier.inputs' has {needs_autoencoder}, which need an "
                      "autoencoder, but 'autoencoders' is empty.")
  _check_generators(config, 'classifier.train_generators', classifier.train_generators)


def _check_autoencoders(config: ml_collections.ConfigDict, group: str, num_devices: int,
                        architectures: Mapping[str, Any]) -> None:
  from fakejax.train.autoencoder_gan import RECONSTRUCTION_LOSSES  # pylint: disable=g-import-not-at-top
  for name, autoencoder in config[group].items():
    key = f'{group}.{name}'
    _check_positive(config, f'{key}.depth', f'{key}.base_features', f'{key}.latent_features',
                    f'{key}.batch_size', f'{key}.num_epochs')
    if autoencoder.discriminator not in architectures:
      raise ConfigError(f"Config key '{key}.discriminator' is {autoencoder.discriminator!r}; "
                        f"known architectures: {sorted(architectures)}.")
    if autoencoder.reconstruction_loss not in RECONSTRUCTION_LOSSES:
      raise ConfigError(f"Config key '{key}.reconstruction_loss' is "
                        f"{autoencoder.reconstruction_loss!r}; use one of "
                        f"{sorted(RECONSTRUCTION_LOSSES)}.")
    _check_divisible(config, f'{key}.batch_size', num_devices)


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
  from fakejax import models  # pylint: disable=g-import-not-at-top
  from fakejax.models.classifiers import HEAD_POOLINGS  # pylint: disable=g-import-not-at-top
  from fakejax.data import augment  # pylint: disable=g-import-not-at-top
  from fakejax.train.classifier_steps import LOSSES  # pylint: disable=g-import-not-at-top
  classifier = config.classifier
  architecture = classifier.architecture
  if architecture not in models.CLASSIFIER_ARCHITECTURES:
    raise ConfigError(f"Config key 'classifier.architecture' is {architecture!r}; "
                      f"known: {sorted(models.CLASSIFIER_ARCHITECTURES)}.")
  _check_positive(config, 'classifier.batch_size', 'classifier.num_epochs',
                  'classifier.max_train_reals')
  if architecture not in models.CONFIGURABLE_HEADS:
    _check_positive(config, 'classifier.hidden')
    if classifier.pooling != 'flatten':
      raise ConfigError(f"Config key 'classifier.pooling' must be 'flatten' for {architecture}, "
                        "whose head is its study's; pooling is set for the ImageNet backbones.")
  elif classifier.hidden < 0:
    raise ConfigError(f"Config key 'classifier.hidden' must be >= 0 (0: no hidden layer), got "
                      f"{classifier.hidden}.")
  if classifier.pooling not in HEAD_POOLINGS:
    raise ConfigError(f"Config key 'classifier.pooling' is {classifier.pooling!r}; use one of "
                      f"{list(HEAD_POOLINGS)}.")
  if classifier.loss not in LOSSES:
    raise ConfigError(f"Config key 'classifier.loss' is {classifier.loss!r}; use one of "
                      f"{list(LOSSES)}.")
  if architecture in models.FIXED_WIDTHS and classifier.features:
    raise ConfigError(f"Config key 'classifier.features' must be empty for {architecture}, "
                      "whose widths are the published ones (its pretrained weights need them).")
  if classifier.pretrained and not pathlib.Path(classifier.pretrained).is_file():
    raise ConfigError(f"Config key 'classifier.pretrained' names {classifier.pretrained!r}, "
                      "which is not a file: convert weights with tools/convert_weights.py.")
  if classifier.head_l2 < 0 or classifier.optimizer.weight_decay < 0:
    raise ConfigError("Config keys 'classifier.head_l2' and 'classifier.optimizer.weight_decay' "
                      "must not be negative.")
  _check_divisible(config, 'classifier.batch_size', num_devices)
  if not 0.0 < classifier.lr_decay_factor <= 1.0:
    raise ConfigError("Config key 'classifier.lr_decay_factor' must be in (0, 1], got "
                      f"{classifier.lr_decay_factor}.")
  _check_positive(config, 'classifier.lr_decay_patience_epochs')
  if classifier.early_stopping_patience_epochs < 0:
    raise ConfigError("Config key 'classifier.early_stopping_patience_epochs' must be >= 0.")
  augmentation = classifier.augmentation
  for key in augment.Augmentation.PROBABILITIES:
    if not 0.0 <= augmentation[key] <= 1.0:
      raise ConfigError(f"Config key 'classifier.augmentation.{key}' must be in [0, 1], got "
                        f"{augmentation[key]}.")
  if not 1 <= augmentation.jpeg_quality_min <= 100:
    raise ConfigError("Config key 'classifier.augmentation.jpeg_quality_min' must be in "
                      f"1..100, got {augmentation.jpeg_quality_min}.")
  negative = [key for key in ('crop_padding', 'blur_sigma_max', 'rotation_degrees', 'brightness',
                              'contrast', 'saturation') if augmentation[key] < 0]
  if negative:
    raise ConfigError(f"Config key 'classifier.augmentation.{negative[0]}' must not be negative, "
                      f"got {augmentation[negative[0]]}.")
  if augmentation.resize_scale < 1.0:
    raise ConfigError("Config key 'classifier.augmentation.resize_scale' must be >= 1 (it "
                      f"scales up, then crops back), got {augmentation.resize_scale}.")


def study_generators(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The names of every source of fakes in a classifier study, in table order."""
  if config.data.get('folder'):
    return ('folder',)
  return (*config.gans.keys(), *config.get('autoencoder_generators', {}).keys())


def _check_generators(config: ml_collections.ConfigDict, key: str, names) -> None:
  generators = study_generators(config)
  bad = [name for name in names if name not in generators]
  if bad or not names:
    raise ConfigError(f"Config key '{key}' must name some of {list(generators)}; "
                      f"unknown: {bad}.")


def _check_detectors(config: ml_collections.ConfigDict, num_devices: int,
                     architectures: Mapping[str, Any]) -> None:
  _check_data_shape(config)
  _check_classifier(config, num_devices)
  _check_autoencoders(config, 'autoencoder_generators', num_devices, architectures)
  clashes = set(config.gans) & set(config.autoencoder_generators)
  if clashes:
    raise ConfigError(f"Config keys 'autoencoder_generators' and 'gans' share names "
                      f"{sorted(clashes)}: every generator needs its own.")
  if not config.train_sets:
    raise ConfigError("Config key 'train_sets' names no classifier to train.")
  for name, generators in config.train_sets.items():
    _check_generators(config, f'train_sets.{name}', generators)
  missing = [f'fakes_{name}' for name in study_generators(config)
             if f'fakes_{name}' not in config.evals]
  if missing:
    raise ConfigError(f"Config key 'evals' lacks {missing}: the table needs each generator's "
                      "test fakes against all test reals (reals='all', fakes=<gan>).")
