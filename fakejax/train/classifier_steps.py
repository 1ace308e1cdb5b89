"""Real-vs-fake classifier state and pure step functions.

A classifier scores what a `prepare` function makes of the images (the image itself, or
its reconstruction, residual or spectrum under a frozen autoencoder). The frozen
parameters travel in the state, so that a checkpoint alone scores images.
"""

import functools
from collections.abc import Callable

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from fakejax.train import gan_steps

# (frozen parameters, images in [-1, 1]) -> the classifier's input.
Prepare = Callable[[dict, jax.Array], jax.Array]
REAL_LABEL, FAKE_LABEL = 1, 0  # The logit is that of "real", as a discriminator's.
# Binary cross-entropy on one logit, or 2-way cross-entropy on (fake, real) logits.
LOSSES = {'bce': 1, 'cross_entropy': 2}  # -> the number of outputs the model needs.


def real_logit(logits: jax.Array) -> jax.Array:
  """The logit of "real" from [N, 1] logits, or from [N, 2] (its softmax probability)."""
  if logits.shape[-1] == 1:
    return logits[:, 0]
  return logits[:, REAL_LABEL] - logits[:, FAKE_LABEL]


def classification_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Mean cross-entropy of integer labels under one or two logits per image."""
  if logits.shape[-1] == 1:
    return optax.sigmoid_binary_cross_entropy(logits[:, 0], labels.astype(jnp.float32)).mean()
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def head_l2_penalty(params: dict, weight: float) -> jax.Array:
  """`weight` times the squared kernel of the head's hidden layer, as Keras's L2."""
  if not weight or 'head_hidden' not in params:
    return jnp.zeros(())
  return weight * jnp.sum(jnp.square(params['head_hidden']['kernel']))


@flax.struct.dataclass
class ClassifierState:
  step: jax.Array
  rng: jax.Array  # Raw uint32 key; each step folds in the step number.
  params: dict
  batch_stats: dict
  opt_state: optax.OptState
  frozen: dict  # Parameters of `prepare` (an autoencoder's), never updated.
  # Decided on the host at epoch ends from validation AP (see `initial_schedule`).
  schedule: dict


def initial_schedule() -> dict:
  """Best validation AP so far, epochs since it, the learning-rate scale, stopped early."""
  return {'best_ap': jnp.float32(-1.0), 'epochs_since_best': jnp.int32(0),
          'lr_scale': jnp.float32(1.0), 'stopped': jnp.bool_(False)}


def init_state(model: nn.Module, tx: optax.GradientTransformation, prepare: Prepare,
               frozen: dict, image_shape: tuple[int, ...], rng: jax.Array) -> ClassifierState:
  """Initial state for a seed (pure: jit it with replicated out_shardings)."""
  init_key, train_key = jax.random.split(rng)
  inputs = prepare(frozen, jnp.zeros((1, *image_shape)))
  variables = model.init(init_key, inputs, train=False)
  return ClassifierState(step=jnp.zeros((), jnp.int32), rng=train_key,
                         params=variables['params'],
                         batch_stats=variables.get('batch_stats', {}),
                         opt_state=tx.init(variables['params']), frozen=frozen,
                         schedule=initial_schedule())


def make_train_step(model: nn.Module, tx: optax.GradientTransformation, prepare: Prepare,
                    skip_nonfinite: bool = False, head_l2: float = 0.0):
  """Returns `train_step(state, {'image': uint8, 'label': int}) -> (state, metrics)`.

  Cross-entropy on the model's one or two logits, plus `head_l2` on the head's hidden
  kernel; with `skip_nonfinite`, a step whose loss or update is not finite leaves the
  state as it was (metric `skipped_update`: 1).
  """
  def train_step(state: ClassifierState, batch: dict):
    inputs = prepare(state.frozen, gan_steps.to_model_range(batch['image']))
    labels = batch['label']
    dropout_key = jax.random.fold_in(state.rng, state.step)

    def loss_fn(params):
      logits, updates = model.apply(
          {'params': params, 'batch_stats': state.batch_stats}, inputs, train=True,
          rngs={'dropout': dropout_key}, mutable=['batch_stats'])
      loss = classification_loss(logits, labels) + head_l2_penalty(params, head_l2)
      return loss, (real_logit(logits), updates.get('batch_stats', state.batch_stats))

    (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    # Scaling Adam's update scales its learning rate (decayed on validation plateaus).
    updates = jax.tree.map(lambda u: u * state.schedule['lr_scale'], updates)
    updated = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                            batch_stats=batch_stats, opt_state=opt_state)
    finite = jnp.isfinite(loss) & jnp.isfinite(optax.global_norm(updates))
    if skip_nonfinite:
      updated = gan_steps.keep_if_finite(updated, state, finite)
    metrics = {
        'loss': loss,
        'accuracy': ((logits > 0) == (labels == REAL_LABEL)).mean(),
        'grad_norm': optax.global_norm(grads),
        'skipped_update': jnp.logical_and(skip_nonfinite, ~finite).astype(jnp.float32),
    }
    return updated, metrics

  return train_step


def variables(state: ClassifierState) -> dict:
  """What scoring needs: the classifier's variables and the frozen parameters."""
  return {'params': state.params, 'batch_stats': state.batch_stats, 'frozen': state.frozen}


@functools.cache
def make_score(model: nn.Module, prepare: Prepare) -> Callable[[dict, jax.Array], jax.Array]:
  """Returns `score(variables, images_uint8) -> P(real)` per image (inference mode).

  One function per (model, input): its compiled forms are cached by identity.
  """
  def score(scoring_variables: dict, images_uint8: jax.Array) -> jax.Array:
    inputs = prepare(scoring_variables['frozen'], gan_steps.to_model_range(images_uint8))
    logits = model.apply({'params': scoring_variables['params'],
                          'batch_stats': scoring_variables['batch_stats']}, inputs, train=False)
    return jax.nn.sigmoid(real_logit(logits))
  return score
