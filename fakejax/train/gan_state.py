"""The GAN state pytree: both players' parameters, batch statistics and optimiser states."""

import flax
import jax
import jax.numpy as jnp
import optax

from fakejax.models import GanModels


@flax.struct.dataclass
class GanState:
  step: jax.Array
  rng: jax.Array  # Raw uint32 key; each step folds in the step number.
  g_params: dict
  g_batch_stats: dict
  g_opt_state: optax.OptState
  d_params: dict
  d_batch_stats: dict
  d_opt_state: optax.OptState


def init_state(models: GanModels, tx: optax.GradientTransformation, latent_dim: int,
               rng: jax.Array) -> GanState:
  """Initial state for a seed (pure: jit it with replicated out_shardings)."""
  g_key, d_key, train_key = jax.random.split(rng, 3)
  g_vars = models.generator.init(g_key, jnp.zeros((1, latent_dim)), train=False)
  d_vars = models.discriminator.init(d_key, jnp.zeros((1, *models.image_shape)), train=False)
  return state_from_variables(g_vars, d_vars, tx, train_key)


def state_from_variables(g_vars: dict, d_vars: dict, tx: optax.GradientTransformation,
                         train_key: jax.Array) -> GanState:
  """Step 0 of a state whose players were initialised to `g_vars` and `d_vars`."""
  return GanState(
      step=jnp.zeros((), jnp.int32),
      rng=train_key,
      g_params=g_vars['params'],
      g_batch_stats=g_vars.get('batch_stats', {}),
      g_opt_state=tx.init(g_vars['params']),
      d_params=d_vars['params'],
      d_batch_stats=d_vars.get('batch_stats', {}),
      d_opt_state=tx.init(d_vars['params']),
  )


def generator_variables(state: GanState) -> dict:
  return {'params': state.g_params, 'batch_stats': state.g_batch_stats}


def discriminator_variables(state: GanState) -> dict:
  return {'params': state.d_params, 'batch_stats': state.d_batch_stats}
