"""Real-vs-fake classifiers trained and evaluated on the project's data: shared by studies.

The data are reals (Fashion-MNIST splits, or a real/fake folder) and the fakes of each
generator, drawn apart for training, validation and test. A classifier is a loop `Job`;
its report comes from the evaluation module, on the same splits as the discriminators.
"""

import dataclasses
import functools
import pathlib
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from fakejax import sharding
from fakejax.config import validate_config
from fakejax.data import augment, image_sets, pipeline
from fakejax.evaluation import evaluator, metrics
from fakejax.models import GAN_ARCHITECTURES
from fakejax.models import CLASSIFIER_ARCHITECTURES, CONFIGURABLE_HEADS, pretrained
from fakejax.train import classifier_steps, gan_trainer, loop

# Latent seeds of the classifiers' training fakes, apart from the evaluation's.
TRAIN_FAKES_SEED_OFFSET = 3_000_017


@dataclasses.dataclass(frozen=True)
class StudyData:
  reals: pipeline.StudySplits
  # Generator name -> {'train', 'validation', 'test'} -> uint8 fakes [N, H, W, C].
  fakes: dict[str, dict[str, np.ndarray]]


def generator_fakes(config: ml_collections.ConfigDict, gan_dir: pathlib.Path, name: str,
                    step: int, num_train: int, mesh: Mesh) -> dict[str, np.ndarray]:
  """Train, validation and test fakes of GAN `name`'s checkpoint `step` (distinct latents)."""
  gan = evaluator.restore_gan(config, gan_dir, name, [step], mesh)
  sampler = evaluator.Sampler(gan, mesh, config.evaluation.batch_size)
  num = config.evaluation.num_fake_samples
  return {'train': sampler.generate(num_train, config.seed + TRAIN_FAKES_SEED_OFFSET)[0],
          'validation': sampler.generate(num, config.seed + evaluator.VALIDATION_FAKES_SEED_OFFSET)[0],
          'test': sampler.generate(num, config.seed + evaluator.TEST_FAKES_SEED_OFFSET)[0]}


def latest_gan_step(gan_dir: pathlib.Path, name: str) -> int:
  steps = evaluator.checkpoint_steps(gan_dir, name)
  if not steps:
    raise evaluator.CheckpointNotFoundError(
        f"No checkpoint of GAN '{name}' in {gan_dir / name / 'checkpoints'}: train it with "
        f'configs/dcgan_fmnist.py, or leave gan_workdir empty to train it here.')
  return steps[-1]


@dataclasses.dataclass(frozen=True)
class FakeSource:
  """A generator of the study: what it is made from (a stored pool is reused only for
  the same), and how to draw its train, validation and test fakes."""
  description: dict
  draw: Callable[[], dict[str, np.ndarray]]


def gan_sources(config: ml_collections.ConfigDict, gan_dir: pathlib.Path, num_train: int,
                mesh: Mesh) -> dict[str, FakeSource]:
  """Each GAN's latest checkpoint, which both describes its fakes and draws them."""
  steps = {name: latest_gan_step(gan_dir, name) for name in config.gans}
  return {name: FakeSource(
      description={'architecture': gan.architecture, 'checkpoint_step': steps[name]},
      draw=functools.partial(generator_fakes, config, gan_dir, name, steps[name], num_train,
                             mesh))
          for name, gan in config.gans.items()}


def fake_pool(config: ml_collections.ConfigDict, sources: dict[str, FakeSource],
              workdir: pathlib.Path, num_train: int) -> dict[str, dict[str, np.ndarray]]:
  """Every generator's fakes, from the study's stored pool (drawn and stored the first time).

  The pool is a TFDS dataset in `<workdir>/fake_pool` with the generator's name on each
  fake. It is reused only if made from the same generators, counts and seed.
  """
  pool_dir = workdir / 'fake_pool'
  description = {
      'generators': {name: source.description for name, source in sources.items()},
      'num_train': num_train, 'num_validation_and_test': config.evaluation.num_fake_samples,
      'seed': config.seed}
  if not image_sets.is_prepared(pool_dir):
    # Drawing is collective, so every process takes part; process 0 stores the pool.
    fakes = {}
    for name, source in sources.items():
      logging.info('Drawing the fakes of %s for the pool in %s.', name, pool_dir)
      fakes[name] = source.draw()
    if jax.process_index() == 0:
      image_sets.write_fake_pool(pool_dir, fakes, description)
    multihost_utils.sync_global_devices('fake pool written')
  logging.info('Fakes of %s from the pool in %s.', sorted(sources), pool_dir)
  return image_sets.read_fake_pool(pool_dir, description)


# (reals, number of training fakes, mesh) -> more generators than the GANs, by name.
MoreSources = Callable[[pipeline.StudySplits, int, Mesh], dict[str, FakeSource]]


def load_study_data(config: ml_collections.ConfigDict, workdir: pathlib.Path, mesh: Mesh,
                    more_sources: MoreSources | None = None) -> StudyData:
  """Reals and every generator's fakes; trains the GANs first when gan_workdir is empty."""
  if config.data.folder:
    return folder_study_data(config)
  reals = pipeline.load_study_splits(config)
  gan_dir = pathlib.Path(config.gan_workdir) if config.gan_workdir else workdir
  num_train = min(len(reals.train), config.classifier.max_train_reals)
  if not config.gan_workdir:
    for name in config.gans:
      gan_trainer.train_gan(config, name, reals.train, workdir, mesh)
  sources = gan_sources(config, gan_dir, num_train, mesh)
  if more_sources is not None:
    sources.update(more_sources(reals, num_train, mesh))
  return StudyData(reals=reals, fakes=fake_pool(config, sources, workdir, num_train))


def start_study(config: ml_collections.ConfigDict, workdir: str | pathlib.Path,
                more_sources: MoreSources | None = None) -> tuple[pathlib.Path, Mesh, StudyData]:
  """Checks the config, records it in the workdir, and loads the reals and fakes."""
  workdir = pathlib.Path(workdir)
  mesh = sharding.build_mesh()
  validate_config(config, num_devices=mesh.size, architectures=GAN_ARCHITECTURES)
  if jax.process_index() == 0:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / 'config.json').write_text(config.to_json_best_effort(indent=2) + '\n')
  data = load_study_data(config, workdir, mesh, more_sources)
  logging.info('Reals: %d train, %d validation, %d seen test, %d anomaly test; fakes of %s.',
               len(data.reals.train), len(data.reals.validation), len(data.reals.test_seen),
               len(data.reals.test_anomaly), sorted(data.fakes))
  return workdir, mesh, data


def folder_study_data(config: ml_collections.ConfigDict) -> StudyData:
  """A real/fake folder: its fakes are generator 'folder'; validation is held out of train."""
  shape = tuple(config.data.image_shape)
  prepared = image_sets.prepare_folder(config.data.folder, shape, config.seed,
                                       config.data.data_dir)
  parts = image_sets.read_folder(prepared)
  fraction = config.data.validation_fraction
  train_reals, validation_reals = pipeline.hold_out(parts['train'].reals, fraction, config.seed)
  train_fakes, validation_fakes = pipeline.hold_out(parts['train'].fakes, fraction, config.seed)
  reals = pipeline.StudySplits(train=train_reals, validation=validation_reals,
                               test_seen=parts['test'].reals,
                               test_anomaly=np.zeros((0, *shape), np.uint8))
  return StudyData(reals=reals, fakes={'folder': {
      'train': train_fakes, 'validation': validation_fakes, 'test': parts['test'].fakes}})


def identity_input(frozen: dict, images: jax.Array) -> jax.Array:
  del frozen
  return images


@dataclasses.dataclass
class Classifier:
  model: nn.Module
  prepare: classifier_steps.Prepare
  job: loop.Job
  _scorer: evaluator.Scorer | None = None

  def scorer(self, state: classifier_steps.ClassifierState, mesh: Mesh,
             batch_size: int) -> evaluator.Scorer:
    """A Scorer of images under `state`; compiled once, for validation and evaluation."""
    stacked = jax.tree.map(lambda leaf: jnp.asarray(leaf)[None], classifier_steps.variables(state))
    if self._scorer is None:
      self._scorer = evaluator.Scorer(classifier_steps.make_score(self.model, self.prepare),
                                      stacked, mesh, batch_size)
    self._scorer.variables = stacked
    return self._scorer


def build_classifier_model(classifier_config: ml_collections.ConfigDict) -> nn.Module:
  """The configured architecture with its head; widths only where the config sets them."""
  architecture = classifier_config.architecture
  options = dict(hidden=classifier_config.hidden, dropout_rate=classifier_config.dropout_rate,
                 outputs=classifier_steps.LOSSES[classifier_config.loss])
  if classifier_config.features:
    options['features'] = tuple(classifier_config.features)
  if architecture in CONFIGURABLE_HEADS:
    options['pooling'] = classifier_config.pooling
  return CLASSIFIER_ARCHITECTURES[architecture](**options)


# In `classifier.frozen`: every top-level module but the head (a frozen pretrained base).
FROZEN_BACKBONE = 'backbone'


def frozen_labels(frozen_prefixes: tuple[str, ...]):
  """params -> 'frozen' or 'trained' per leaf, by the top-level module's name prefix."""
  def is_frozen(name: str) -> bool:
    if FROZEN_BACKBONE in frozen_prefixes and not name.startswith(pretrained.HEAD_PREFIX):
      return True
    return name.startswith(frozen_prefixes)

  def labels(params: dict) -> dict:
    unused = [p for p in frozen_prefixes if p != FROZEN_BACKBONE
              and not any(name.startswith(p) for name in params)]
    if unused:
      raise ValueError(f"Config key 'classifier.frozen' has {unused}, which name no module; "
                       f'top-level modules: {sorted(params)}.')
    return {name: jax.tree.map(lambda _, frozen=is_frozen(name):
                               'frozen' if frozen else 'trained', subtree)
            for name, subtree in params.items()}
  return labels


def build_optimizer(classifier_config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """Adam (AdamW with weight decay) on every parameter but those of frozen modules."""
  settings = classifier_config.optimizer
  if settings.weight_decay:
    tx = optax.adamw(settings.learning_rate, b1=settings.b1, b2=settings.b2,
                     weight_decay=settings.weight_decay)
  else:
    tx = optax.adam(settings.learning_rate, b1=settings.b1, b2=settings.b2)
  frozen = tuple(classifier_config.frozen)
  if not frozen:
    return tx
  return optax.multi_transform({'trained': tx, 'frozen': optax.set_to_zero()},
                               frozen_labels(frozen))


@dataclasses.dataclass(frozen=True)
class ValidationSet:
  images: np.ndarray  # uint8 [N, H, W, C]
  is_fake: np.ndarray  # [N] 0 or 1


def validation_set(data: StudyData, trained_on) -> ValidationSet:
  """Validation reals and the validation fakes of the generators trained on."""
  fakes = np.concatenate([data.fakes[name]['validation'] for name in trained_on])
  return ValidationSet(
      images=np.concatenate([data.reals.validation, fakes]),
      is_fake=np.concatenate([np.zeros(len(data.reals.validation), np.int32),
                              np.ones(len(fakes), np.int32)]))


def plateau_schedule(classifier_config: ml_collections.ConfigDict, model: 'Classifier',
                     validation: ValidationSet, mesh: Mesh, batch_size: int):
  """The loop's epoch-end hook: validation AP, learning-rate decay on plateaus, early stop.

  The decisions are made from the same numbers on every process.
  """
  def on_epoch_end(state: classifier_steps.ClassifierState, epoch: int):
    del epoch  # The schedule counts epochs since the best itself.
    fake_prob = 1.0 - model.scorer(state, mesh, batch_size).score(validation.images)[0]
    ap = float(metrics.average_precision(metrics.roc_points(fake_prob, validation.is_fake)))
    at_half = metrics.classification_report(
        metrics.confusion_matrix(fake_prob, validation.is_fake, 0.5))
    schedule = jax.device_get(state.schedule)
    best, since, lr_scale = float(schedule['best_ap']), int(schedule['epochs_since_best']), float(
        schedule['lr_scale'])
    if ap > best:
      best, since = ap, 0
    else:
      since += 1
      if since % classifier_config.lr_decay_patience_epochs == 0:
        lr_scale *= classifier_config.lr_decay_factor
    patience = classifier_config.early_stopping_patience_epochs
    stop = bool(patience) and since >= patience
    new_schedule = {'best_ap': np.float32(best), 'epochs_since_best': np.int32(since),
                    'lr_scale': np.float32(lr_scale), 'stopped': np.bool_(stop)}
    state = state.replace(schedule=jax.device_put(new_schedule, sharding.replicated(mesh)))
    learning_rate = classifier_config.optimizer.learning_rate * lr_scale
    return state, {'validation/average_precision': ap, 'validation/best_average_precision': best,
                   # At P(fake) 0.5, as the studies reported their epochs.
                   'validation/accuracy': float(at_half['accuracy']),
                   'validation/fake_recall': float(at_half['generated']['recall']),
                   'validation/real_recall': float(at_half['real']['recall']),
                   'validation/fake_f1': float(at_half['generated']['f1']),
                   'learning_rate': learning_rate}, stop

  return on_epoch_end


def start_from_pretrained(path: str, architecture: str, mesh: Mesh):
  """The loop's `start_from`: a fresh state whose backbone holds converted weights."""
  weights = pretrained.load(path, architecture)

  def start_from(state: classifier_steps.ClassifierState) -> classifier_steps.ClassifierState:
    variables = {'params': state.params, 'batch_stats': state.batch_stats}
    merged = jax.device_put(pretrained.merge(jax.device_get(variables), weights),
                            sharding.replicated(mesh))
    logging.info('Backbone of %s from %s.', architecture, path)
    return state.replace(params=merged['params'], batch_stats=merged['batch_stats'])

  return start_from


def stopped_early(state: classifier_steps.ClassifierState) -> bool:
  return bool(jax.device_get(state.schedule['stopped']))


def classifier(config: ml_collections.ConfigDict, name: str, image_shape: tuple[int, ...],
               prepare: classifier_steps.Prepare = identity_input, frozen: dict | None = None,
               metadata: dict | None = None, validation: ValidationSet | None = None,
               mesh: Mesh | None = None) -> Classifier:
  """The model of `config.classifier` and the loop's job that trains it on prepared images.

  With a `validation` set, every epoch ends with its AP, decaying the learning rate on
  plateaus and stopping early as the config says.
  """
  model = build_classifier_model(config.classifier)
  frozen = frozen or {}
  tx = build_optimizer(config.classifier)
  augmentation = augment.Augmentation.from_config(config.classifier.augmentation)
  job = loop.Job(
      name=f'classifier {name}',
      init=lambda key: classifier_steps.init_state(model, tx, prepare, frozen, image_shape, key),
      train_step=classifier_steps.make_train_step(model, tx, prepare,
                                                  config.skip_nonfinite_updates,
                                                  config.classifier.head_l2),
      metadata={'architecture': config.classifier.architecture,
                'image_shape': list(image_shape), **(metadata or {})},
      augment=None if augmentation.is_identity else functools.partial(
          augment.augment_batch, options=augmentation),
      stopped_early=stopped_early,
      start_from=start_from_pretrained(config.classifier.pretrained,
                                       config.classifier.architecture, mesh)
      if config.classifier.pretrained else None)
  result = Classifier(model=model, prepare=prepare, job=job)
  if validation is not None:
    job.on_epoch_end = plateau_schedule(config.classifier, result, validation, mesh,
                                        config.evaluation.batch_size)
  return result


def train_set(config: ml_collections.ConfigDict, data: StudyData, generators) -> dict:
  """Reals (labelled 1) and as many fakes (0), pooled evenly from `generators`."""
  reals = data.reals.train[:config.classifier.max_train_reals]
  per_generator = len(reals) // len(generators)
  fakes = np.concatenate([data.fakes[name]['train'][:per_generator] for name in generators])
  return {'image': np.concatenate([reals, fakes]),
          'label': np.concatenate([np.full(len(reals), classifier_steps.REAL_LABEL, np.int32),
                                   np.full(len(fakes), classifier_steps.FAKE_LABEL, np.int32)])}


def evaluate(config: ml_collections.ConfigDict, detector: evaluator.Detector, model: Classifier,
             state: classifier_steps.ClassifierState, data: StudyData, mesh: Mesh) -> dict:
  """The evaluation module's report of a trained classifier on every split of config.evals.

  Its 'own' fakes pool the generators it trained on; every generator's test fakes are
  also a set of their own, so that splits may name any generator.
  """
  scorer = model.scorer(state, mesh, config.evaluation.batch_size)
  own = lambda split: np.concatenate(
      [data.fakes[name][split] for name in detector.trained_on])[None]
  shared = {f'gan:{name}': fakes['test'] for name, fakes in data.fakes.items()}
  shared.update(evaluator.folder_fakes(config, tuple(config.data.image_shape)))
  sets = evaluator.score_sets(scorer, data.reals, own('test'), own('validation'), shared)
  return evaluator.evaluate_detector(config, detector, sets)[0]
