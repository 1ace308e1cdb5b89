"""Training one real-vs-fake classifier: model, input, optimiser, schedule, pretrained start.

A classifier scores what its `prepare` function makes of the images (the image, or its
reconstruction, residual or spectrum under a frozen autoencoder); the frozen parameters
travel in its state, so a checkpoint alone scores images. Each epoch ends with the
validation AP, which decays the learning rate on plateaus and may stop training early.
"""

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from jax.sharding import Mesh

from fakejax import sharding
from fakejax.data import augment, transforms
from fakejax.evaluation import metrics, scoring
from fakejax.models import build_classifier, pretrained
from fakejax.models.autoencoder import AutoEncoder
from fakejax.train import classifier_steps, loop, optimizers


@functools.cache
def make_prepare(input_kind: str, autoencoder: AutoEncoder | None) -> classifier_steps.Prepare:
  """(frozen parameters, images) -> the classifier's input of `input_kind`.

  One function per input and autoencoder architecture, so scorers compile once.
  """
  def prepare(frozen: dict, images: jax.Array) -> jax.Array:
    reconstruct = None
    if autoencoder is not None:
      reconstruct = lambda x: autoencoder.apply({'params': frozen['autoencoder']}, x)
    return transforms.classifier_input(input_kind, images, reconstruct)
  return prepare


def classifier_model(classifier_config: ml_collections.ConfigDict) -> nn.Module:
  """The model a config's `classifier` group describes."""
  return build_classifier(
      classifier_config.architecture, hidden=classifier_config.hidden,
      dropout_rate=classifier_config.dropout_rate,
      outputs=classifier_steps.LOSSES[classifier_config.loss],
      features=classifier_config.features, pooling=classifier_config.pooling)


@dataclasses.dataclass
class Classifier:
  """A classifier's model and input; its scorer is compiled once and reused."""
  model: nn.Module
  prepare: classifier_steps.Prepare
  _scorer: scoring.Scorer | None = None

  def scorer(self, stacked_variables: dict, mesh: Mesh, batch_size: int) -> scoring.Scorer:
    """A Scorer under `stacked_variables` (leaves [K, ...] of `classifier_steps.variables`)."""
    if self._scorer is None or self._scorer.num_checkpoints != len(
        jax.tree.leaves(stacked_variables)[0]):
      self._scorer = scoring.Scorer(classifier_steps.make_score(self.model, self.prepare),
                                    stacked_variables, mesh, batch_size)
    self._scorer.variables = stacked_variables
    return self._scorer

  def state_scorer(self, state: classifier_steps.ClassifierState, mesh: Mesh,
                   batch_size: int) -> scoring.Scorer:
    """A Scorer of one training state."""
    stacked = jax.tree.map(lambda leaf: jnp.asarray(leaf)[None], classifier_steps.variables(state))
    return self.scorer(stacked, mesh, batch_size)


def classifier_of(classifier_config: ml_collections.ConfigDict, input_kind: str = 'image',
                  autoencoder: AutoEncoder | None = None) -> Classifier:
  """The classifier a config's `classifier` group describes, on `input_kind` inputs."""
  return Classifier(model=classifier_model(classifier_config),
                    prepare=make_prepare(input_kind, autoencoder))


@dataclasses.dataclass(frozen=True)
class ValidationSet:
  images: np.ndarray  # uint8 [N, H, W, C]
  is_fake: np.ndarray  # [N] 0 or 1


def validation_set(reals: np.ndarray, fakes: np.ndarray) -> ValidationSet:
  return ValidationSet(images=np.concatenate([reals, fakes]),
                       is_fake=np.concatenate([np.zeros(len(reals), np.int32),
                                               np.ones(len(fakes), np.int32)]))


def train_set(reals: np.ndarray, fakes_by_generator: list[np.ndarray]) -> dict:
  """Reals (labelled real) and as many fakes, pooled evenly from each generator's."""
  per_generator = len(reals) // len(fakes_by_generator)
  fakes = np.concatenate([fakes[:per_generator] for fakes in fakes_by_generator])
  return {'image': np.concatenate([reals, fakes]),
          'label': np.concatenate([np.full(len(reals), classifier_steps.REAL_LABEL, np.int32),
                                   np.full(len(fakes), classifier_steps.FAKE_LABEL, np.int32)])}


def _validation_metrics(fake_prob: np.ndarray, is_fake: np.ndarray) -> dict[str, float]:
  ap = float(metrics.average_precision(metrics.roc_points(fake_prob, is_fake)))
  # At P(fake) 0.5, as the studies reported their epochs.
  at_half = metrics.classification_report(metrics.confusion_matrix(fake_prob, is_fake, 0.5))
  return {'validation/average_precision': ap,
          'validation/accuracy': float(at_half['accuracy']),
          'validation/fake_recall': float(at_half['generated']['recall']),
          'validation/real_recall': float(at_half['real']['recall']),
          'validation/fake_f1': float(at_half['generated']['f1'])}


def _next_schedule(schedule: dict, ap: float, classifier_config) -> dict:
  """The plateau schedule after an epoch of validation AP `ap`."""
  best, since = float(schedule['best_ap']), int(schedule['epochs_since_best'])
  lr_scale = float(schedule['lr_scale'])
  if ap > best:
    best, since = ap, 0
  else:
    since += 1
    if since % classifier_config.lr_decay_patience_epochs == 0:
      lr_scale *= classifier_config.lr_decay_factor
  patience = classifier_config.early_stopping_patience_epochs
  return {'best_ap': np.float32(best), 'epochs_since_best': np.int32(since),
          'lr_scale': np.float32(lr_scale), 'stopped': np.bool_(bool(patience) and since >= patience)}


def plateau_schedule(classifier_config: ml_collections.ConfigDict, classifier: Classifier,
                     validation: ValidationSet, mesh: Mesh, batch_size: int):
  """The loop's epoch-end hook: validation AP, learning-rate decay on plateaus, early stop.

  The decisions are made from the same numbers on every process.
  """
  def on_epoch_end(state: classifier_steps.ClassifierState, epoch: int):
    del epoch  # The schedule counts epochs since the best itself.
    scorer = classifier.state_scorer(state, mesh, batch_size)
    fake_prob = 1.0 - scorer.score(validation.images)[0]
    epoch_metrics = _validation_metrics(fake_prob, validation.is_fake)
    schedule = _next_schedule(jax.device_get(state.schedule),
                              epoch_metrics['validation/average_precision'], classifier_config)
    state = state.replace(schedule=jax.device_put(schedule, sharding.replicated(mesh)))
    epoch_metrics['validation/best_average_precision'] = float(schedule['best_ap'])
    epoch_metrics['learning_rate'] = (classifier_config.optimizer.learning_rate
                                      * float(schedule['lr_scale']))
    return state, epoch_metrics, bool(schedule['stopped'])

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


def stopped_early(state: classifier_steps.ClassifierState) -> jax.Array:
  """Whether the schedule ended training (traceable, for replicas frozen in the step)."""
  return state.schedule['stopped']


def classifier_job(name: str, classifier_config: ml_collections.ConfigDict,
                   classifier: Classifier, image_shape: tuple[int, ...], *, frozen: dict,
                   skip_nonfinite: bool, metadata: dict, mesh: Mesh) -> loop.Job:
  """The loop's job that trains `classifier` on prepared images (no validation hook yet)."""
  tx = classifier_optimizer(classifier_config)
  augmentation = augment.Augmentation.from_config(classifier_config.augmentation)
  return loop.Job(
      name=f'classifier {name}',
      init=lambda key: classifier_steps.init_state(classifier.model, tx, classifier.prepare,
                                                   frozen, image_shape, key),
      train_step=classifier_steps.make_train_step(classifier.model, tx, classifier.prepare,
                                                  skip_nonfinite, classifier_config.head_l2),
      metadata={'architecture': classifier_config.architecture,
                'image_shape': list(image_shape), **metadata},
      augment=None if augmentation.is_identity else functools.partial(
          augment.augment_batch, options=augmentation),
      stopped_early=stopped_early,
      start_from=start_from_pretrained(classifier_config.pretrained,
                                       classifier_config.architecture, mesh)
      if classifier_config.pretrained else None)


def classifier_optimizer(classifier_config: ml_collections.ConfigDict):
  return optimizers.from_config(classifier_config.optimizer, frozen=classifier_config.frozen)


def restore_like_state(classifier_config: ml_collections.ConfigDict, classifier: Classifier,
                       image_shape: tuple[int, ...], frozen: dict,
                       mesh: Mesh) -> classifier_steps.ClassifierState:
  """The shapes, dtypes and shardings a checkpoint of this classifier fills."""
  tx = classifier_optimizer(classifier_config)
  init = lambda key: classifier_steps.init_state(classifier.model, tx, classifier.prepare,
                                                 frozen, image_shape, key)
  return sharding.abstract_replicated(init, mesh)
