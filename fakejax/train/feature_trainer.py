"""Training the feature network of the quality metrics: the seen classes, from their labels.

The network (`models.features.FeatureClassifier`) learns which of the seen classes an
image shows; its last hidden layer is the feature space where generated images are
compared with reals (`evaluation/quality.py`). It trains through the shared loop, so it
checkpoints, resumes and logs like every other model.
"""

from collections.abc import Callable

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import Mesh

from fakejax.models.features import FeatureClassifier
from fakejax.train import gan_steps, loop
from fakejax.workdir import RunDir


@flax.struct.dataclass
class FeatureState:
  step: jax.Array
  params: dict
  opt_state: optax.OptState


def feature_model(num_classes: int, feature_config: ml_collections.ConfigDict) -> FeatureClassifier:
  return FeatureClassifier(num_classes=num_classes, widths=tuple(feature_config.widths),
                           feature_dim=feature_config.feature_dim)


def init_state(model: FeatureClassifier, tx: optax.GradientTransformation,
               image_shape: tuple[int, ...], rng: jax.Array) -> FeatureState:
  params = model.init(rng, jnp.zeros((1, *image_shape)))['params']
  return FeatureState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))


def make_train_step(model: FeatureClassifier, tx: optax.GradientTransformation):
  """Returns `train_step(state, {'image': uint8, 'label': int}) -> (state, metrics)`."""
  def train_step(state: FeatureState, batch: dict):
    images = gan_steps.to_model_range(batch['image'])

    def loss_fn(params):
      logits = model.apply({'params': params}, images)
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label']).mean()
      return loss, logits

    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    state = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                          opt_state=opt_state)
    return state, {'loss': loss, 'accuracy': (logits.argmax(-1) == batch['label']).mean(),
                   'skipped_update': jnp.zeros(())}
  return train_step


def make_features(model: FeatureClassifier) -> Callable[[dict, jax.Array], jax.Array]:
  """Returns `features(params, images_uint8) -> [N, feature_dim]`."""
  def features(params: dict, images_uint8: jax.Array) -> jax.Array:
    return model.apply({'params': params}, gan_steps.to_model_range(images_uint8), features=True)
  return features


def train_feature_classifier(feature_config: ml_collections.ConfigDict,
                             settings: loop.LoopSettings, images: np.ndarray,
                             labels: np.ndarray, run: RunDir, mesh: Mesh
                             ) -> tuple[FeatureClassifier, FeatureState]:
  """Trains (or resumes) the feature network on labelled uint8 images."""
  model = feature_model(int(labels.max()) + 1, feature_config)
  tx = optax.adam(feature_config.learning_rate)
  job = loop.Job(name='feature classifier',
                 init=lambda key: init_state(model, tx, images.shape[1:], key),
                 train_step=make_train_step(model, tx),
                 metadata={'num_classes': int(labels.max()) + 1,
                           'feature_config': feature_config.to_dict()})
  result = loop.train(job, settings.for_model(feature_config),
                      {'image': images, 'label': labels.astype(np.int32)}, run, mesh)
  return model, result.state
