"""One Orbax checkpoint manager for every trainer: model state plus data-iterator position."""

import pathlib
from typing import Any

import jax
import orbax.checkpoint as ocp


def checkpoint_manager(directory: str | pathlib.Path, *, max_to_keep: int,
                       save_interval_steps: int) -> ocp.CheckpointManager:
  """Async manager keeping the last `max_to_keep` steps; the final step is always saved."""
  options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep, save_interval_steps=save_interval_steps, create=True)
  return ocp.CheckpointManager(pathlib.Path(directory).absolute(), options=options,
                               item_names=('state', 'data'))


def save(manager: ocp.CheckpointManager, step: int, state: Any, data_state: dict,
         *, force: bool = False) -> bool:
  """Saves state and data position at `step` when due (or `force`); returns whether it did."""
  return manager.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state)), force=force)


def restore(manager: ocp.CheckpointManager, step: int, like_state: Any) -> tuple[Any, dict]:
  """Restores (state, data position) of `step`, with the shardings of `like_state`."""
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like_state)
  restored = manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract), data=ocp.args.JsonRestore()))
  return restored.state, restored.data
