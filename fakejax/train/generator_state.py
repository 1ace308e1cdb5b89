"""The state of a generator trained without an adversary (VAE, diffusion, flow): one model's
parameters, its optimiser state, and an exponential moving average of the parameters,
which is what samples are drawn from."""

from collections.abc import Callable

import flax
import jax
import jax.numpy as jnp
import optax

from fakejax.train import gan_steps

Metrics = dict[str, jax.Array]


@flax.struct.dataclass
class GeneratorState:
  step: jax.Array
  rng: jax.Array  # Raw uint32 key; each step folds in the step number.
  params: dict
  opt_state: optax.OptState
  ema_params: dict


def init_state(params: dict, tx: optax.GradientTransformation, train_key: jax.Array
               ) -> GeneratorState:
  return GeneratorState(step=jnp.zeros((), jnp.int32), rng=train_key, params=params,
                        opt_state=tx.init(params), ema_params=params)


def step_key(state: GeneratorState) -> jax.Array:
  return jax.random.fold_in(state.rng, state.step)


def ema_decay_at(step: jax.Array, ema_decay: float) -> jax.Array:
  """`ema_decay`, warmed up as (1 + step) / (10 + step): early averages forget their start."""
  step = step.astype(jnp.float32)
  return jnp.minimum(ema_decay, (1.0 + step) / (10.0 + step))


def descend(state: GeneratorState, tx: optax.GradientTransformation,
            loss_fn: Callable[[dict], tuple[jax.Array, Metrics]], ema_decay: float,
            skip_nonfinite: bool) -> tuple[GeneratorState, Metrics]:
  """One optimiser step on `loss_fn(params) -> (loss, metrics)`, and the EMA's; with
  `skip_nonfinite`, a non-finite one is skipped. Returns the metrics with the loss."""
  (loss, loss_metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  decay = ema_decay_at(state.step, ema_decay)
  ema_params = jax.tree.map(lambda ema, new: decay * ema + (1.0 - decay) * new,
                            state.ema_params, params)
  updated = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                          ema_params=ema_params)
  finite = jnp.isfinite(loss) & jnp.isfinite(optax.global_norm(updates))
  if skip_nonfinite:
    updated = gan_steps.keep_if_finite(updated, state, finite)
  return updated, {
      'loss': loss, **loss_metrics, 'grad_norm': optax.global_norm(grads),
      'skipped_update': jnp.logical_and(skip_nonfinite, ~finite).astype(jnp.float32)}


def sampling_variables(state: GeneratorState) -> dict:
  """The variables samples are drawn with: the averaged parameters."""
  return {'params': state.ema_params}


TrainStep = Callable[[GeneratorState, jax.Array], tuple[GeneratorState, Metrics]]
