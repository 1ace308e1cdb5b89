"""Training a real-only detector: a model of real images (a PixelCNN), no fakes at all.

With an augmentation (JPEG, resampling), it is a model of honest uploads as they arrive,
re-encoded and resized, rather than of pristine images.

It learns the training reals' likelihood; its score is how far an image's coding cost
departs from what the model expects (`likelihood_steps.surprise`). It shares the
classifiers' state and loop (checkpoints, resume, seeds as replicas), not their schedule:
validation AP needs fakes, and this detector sees none, so it trains its fixed epochs.
"""

import functools

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh

from fakejax import sharding
from fakejax.data import augment
from fakejax.evaluation import scoring
from fakejax.models.pixelcnn import PixelCnn
from fakejax.train import classifier_steps, likelihood_steps, loop, optimizers

ARCHITECTURES = ('pixelcnn',)


def model_of(real_only_config: ml_collections.ConfigDict) -> PixelCnn:
  """The model a config's `real_only.<name>` group describes."""
  return PixelCnn(features=real_only_config.features, num_layers=real_only_config.num_layers)


def _identity(frozen: dict, images: jax.Array) -> jax.Array:
  del frozen
  return images


def _init(model: PixelCnn, real_only_config: ml_collections.ConfigDict,
          image_shape: tuple[int, ...]):
  tx = optimizers.from_config(real_only_config.optimizer)
  return tx, lambda key: classifier_steps.init_state(model, tx, _identity, {}, image_shape, key)


def real_only_job(name: str, real_only_config: ml_collections.ConfigDict,
                  image_shape: tuple[int, ...], skip_nonfinite: bool) -> loop.Job:
  """The loop's job that trains real-only detector `name` on reals."""
  model = model_of(real_only_config)
  tx, init = _init(model, real_only_config, image_shape)
  augmentation = augment.Augmentation.from_config(real_only_config.augmentation)
  return loop.Job(
      name=f'real-only detector {name}', init=init,
      train_step=likelihood_steps.make_train_step(model, tx, skip_nonfinite),
      metadata={'architecture': real_only_config.architecture, 'image_shape': list(image_shape),
                'trained_on': []},
      augment=None if augmentation.is_identity else functools.partial(
          augment.augment_batch, options=augmentation))


def train_set(reals: np.ndarray) -> dict:
  """Reals only, labelled real."""
  return {'image': reals, 'label': np.full(len(reals), classifier_steps.REAL_LABEL, np.int32)}


def restore_like_state(real_only_config: ml_collections.ConfigDict, image_shape: tuple[int, ...],
                       mesh: Mesh) -> classifier_steps.ClassifierState:
  """The shapes, dtypes and shardings a checkpoint of this detector fills."""
  _, init = _init(model_of(real_only_config), real_only_config, image_shape)
  return sharding.abstract_replicated(init, mesh)


def scorer(real_only_config: ml_collections.ConfigDict, stacked_variables: dict, mesh: Mesh,
           batch_size: int) -> scoring.Scorer:
  """A Scorer of the stacked checkpoints' `classifier_steps.variables`."""
  return scoring.Scorer(likelihood_steps.make_score(model_of(real_only_config)),
                        stacked_variables, mesh, batch_size)
