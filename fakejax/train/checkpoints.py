"""One Orbax checkpoint manager for every trainer: model state plus data-iterator position.

Each checkpoint also stores a checksum of the state's values, so a checkpoint whose files
were damaged after writing (flipped bytes, missing files) is detected on restore; restore
then falls back to the previous good step.
"""

import os
import pathlib
import shutil
import socket
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from fakejax.errors import UserError
from fakejax.train import replicas
from fakejax.workdir import RunDir

ITEMS = ('state', 'data', 'meta')
INCOMPLETE_MARKER = '.orbax-checkpoint-tmp'


class CheckpointCorruptError(UserError, RuntimeError):
  """No checkpoint of a workdir could be restored."""


class CheckpointNotFoundError(UserError, FileNotFoundError):
  """A model has no checkpoint (at the asked step) in the workdir."""


class WorkdirNotWritableError(UserError, OSError):
  """The workdir cannot hold checkpoints (permissions or disk space)."""


def checkpoint_manager(directory: str | pathlib.Path, *, max_to_keep: int | None,
                       save_interval_steps: int) -> ocp.CheckpointManager:
  """Async manager keeping the last `max_to_keep` steps; the final step is always saved."""
  options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep, save_interval_steps=save_interval_steps, create=True)
  return ocp.CheckpointManager(pathlib.Path(directory).absolute(), options=options,
                               item_names=ITEMS)


@jax.jit
def state_checksum(state: Any) -> jax.Array:
  """A checksum of every bit of the state's values (uint32 sums of the raw words)."""
  def words(leaf):
    leaf = jnp.asarray(leaf)
    if leaf.dtype.itemsize != 4:
      leaf = leaf.astype(jnp.float32)
    return jax.lax.bitcast_convert_type(leaf, jnp.uint32).ravel()
  total = jnp.uint32(0)
  for index, leaf in enumerate(jax.tree.leaves(state)):
    # Position-weighted so that swapped values change the checksum too.
    w = words(leaf)
    total = total + jnp.sum(w * (jnp.arange(w.size, dtype=jnp.uint32) + jnp.uint32(index + 1)))
  return total


def save(manager: ocp.CheckpointManager, step: int, state: Any, data_state: dict,
         *, force: bool = False, metadata: dict | None = None) -> bool:
  """Saves state, data position, checksum and `metadata` at `step` when due (or `force`).

  `metadata` describes the model (architecture, input preprocessing) for the tools that
  load it later without the training config.
  """
  if not (force or manager.should_save(step)):
    return False
  meta = {**(metadata or {}), 'state_checksum': int(state_checksum(state))}
  return manager.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state),
      meta=ocp.args.JsonSave(meta)), force=force)


def read_metadata(manager: ocp.CheckpointManager, step: int) -> dict:
  """The metadata saved with `step`, without restoring the state."""
  return manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta


def stacked_seeds(manager: ocp.CheckpointManager, step: int) -> list[int] | None:
  """The seeds of the replicas checkpoint `step` holds stacked; None for one unstacked state."""
  seeds = read_metadata(manager, step).get('seeds')
  return seeds if seeds and len(seeds) > 1 else None


def check_seeds(manager: ocp.CheckpointManager, seeds: Sequence[int]) -> None:
  """Fails, naming both, if the newest checkpoint holds replicas of other seeds than `seeds`.

  A single-seed checkpoint holds one unstacked state (no 'seeds' in its metadata); one of
  K > 1 seeds holds K stacked states. Neither restores as the other.
  """
  step = manager.latest_step()
  if step is None:
    return
  try:
    saved = stacked_seeds(manager, step)
  except Exception:  # Unreadable metadata: the restore's own checks name the damage.
    return
  if saved != (list(seeds) if len(seeds) > 1 else None):
    raise UserError(
        f'The checkpoints in {manager.directory} hold the replicas of seeds {saved or "(one)"}; '
        f'the config asks for seeds {list(seeds)}. Train them in another --workdir.')


def _restore_step(manager: ocp.CheckpointManager, step: int, like_state: Any) -> tuple[Any, dict]:
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like_state)
  restored = manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract), data=ocp.args.JsonRestore(),
      meta=ocp.args.JsonRestore()))
  expected = restored.meta['state_checksum']
  actual = int(state_checksum(restored.state))
  if actual != expected:
    raise CheckpointCorruptError(
        f'the restored values do not match their checksum ({actual} != {expected})')
  return restored.state, restored.data


def restore(manager: ocp.CheckpointManager, step: int, like_state: Any) -> tuple[Any, dict]:
  """Restores (state, data position) of `step`, with the shardings of `like_state`."""
  return _restore_step(manager, step, like_state)


def _try_restore(manager: ocp.CheckpointManager, step: int,
                 like_state: Any) -> tuple[tuple[Any, dict] | None, str]:
  """`restore`'s (state, data position) and '', or None and why `step` cannot be read."""
  try:
    return _restore_step(manager, step, like_state), ''
  except Exception as error:  # Whatever broke, the step cannot be read.
    cause = _root_cause(error)
    return None, f'{type(cause).__name__}: {cause}'


def _root_cause(error: BaseException) -> BaseException:
  """The innermost cause: Orbax wraps a storage error in pages of specs."""
  while error.__cause__ is not None:
    error = error.__cause__
  return error


def read_state_as_numpy(state_dir: str | pathlib.Path) -> Any:
  """A saved 'state' item as NumPy arrays, whatever devices and processes wrote it."""
  checkpointer = ocp.PyTreeCheckpointer()
  tree = checkpointer.metadata(state_dir).item_metadata.tree
  as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
  return checkpointer.restore(state_dir, restore_args=as_numpy)


def warn_about_incomplete(directory: pathlib.Path) -> None:
  for path in sorted(directory.glob(f'*{INCOMPLETE_MARKER}*')):
    logging.warning('Ignoring the incomplete checkpoint %s (its writing was interrupted).', path)


def restore_latest_good(manager: ocp.CheckpointManager,
                        like_state: Any) -> tuple[Any, dict, int] | None:
  """(state, data position, step) of the newest checkpoint that restores intact, else None.

  Damaged checkpoints are skipped with a warning; if every one is damaged, raises
  CheckpointCorruptError naming them.
  """
  directory = pathlib.Path(manager.directory)
  warn_about_incomplete(directory)
  steps = sorted(manager.all_steps(), reverse=True)
  failures = []
  for step in steps:
    restored, failure = _try_restore(manager, step, like_state)
    if restored is None:
      failures.append(f'{directory / str(step)}: {failure}')
      logging.warning('Checkpoint %s cannot be restored (%s); trying an older one.',
                      directory / str(step), failure)
      continue
    return *restored, step
  if failures:
    raise CheckpointCorruptError(
        'No checkpoint could be restored:\n  ' + '\n  '.join(failures) +
        f'\nMove {directory} away to start this run from scratch.')
  return None


def check_workdir_writable(workdir: pathlib.Path, needed_bytes: int) -> None:
  """Fails at once if `workdir` cannot be written or lacks room for checkpoints."""
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    # One probe per host and process: processes of a multi-host run share the workdir.
    probe = workdir / f'.write_test.{socket.gethostname()}.{os.getpid()}'
    probe.write_bytes(b'ok')
    probe.unlink()
  except OSError as error:
    raise WorkdirNotWritableError(f'The workdir {workdir} is not writable: {error}.') from error
  free = shutil.disk_usage(workdir).free
  if free < needed_bytes:
    raise WorkdirNotWritableError(
        f'The workdir {workdir} has {free / 2**20:.0f} MiB free; checkpoints of this run need '
        f'about {needed_bytes / 2**20:.0f} MiB. Free some space or choose another --workdir.')


def state_bytes(state: Any) -> int:
  return int(sum(np.prod(leaf.shape) * leaf.dtype.itemsize for leaf in jax.tree.leaves(state)))


def saved_seeds(run: RunDir, step: int) -> list[int] | None:
  """`stacked_seeds` of the checkpoint of `step` in `run`."""
  with checkpoint_manager(run.checkpoints, max_to_keep=None, save_interval_steps=1) as manager:
    return stacked_seeds(manager, step)


def restore_replica_states(run: RunDir, steps: Sequence[int], like_state: Any,
                           replica: int | None, name: str) -> list[Any]:
  """`restore_states`, and of checkpoints holding several seeds' replicas, replica number
  `replica` of each; asking for a replica of a single-seed run, or none of a run of several,
  is an error naming the seeds."""
  seeds = saved_seeds(run, steps[-1])
  if (seeds is None) != (replica is None):
    raise UserError(f'The checkpoints of {name} in {run.checkpoints} hold '
                    f'{f"the replicas of seeds {seeds}" if seeds else "one seed"}; '
                    f'{"choose one replica" if seeds else "no replica can be chosen"}.')
  if seeds is None:
    return restore_states(run, steps, like_state)
  stacked = restore_states(run, steps, replicas.abstract_stacked(like_state, len(seeds)))
  return [replicas.replica(state, replica) for state in stacked]


def restore_every_replica(run: RunDir, steps: Sequence[int], like_state: Any,
                          seeds: Sequence[int], name: str) -> list[Any]:
  """Every replica of the checkpoints `steps` of a run of several seeds, replica-major (state
  k * len(steps) + i is replica k at steps[i]); checkpoints of other seeds are an error."""
  saved = saved_seeds(run, steps[-1])
  if saved != list(seeds):
    held = f'the replicas of seeds {saved}' if saved else 'one seed'
    raise UserError(f'The checkpoints of {name} in {run.checkpoints} hold {held}, not the '
                    f'replicas of config.seeds {list(seeds)}.')
  stacked = restore_states(run, steps, replicas.abstract_stacked(like_state, len(seeds)))
  return [replicas.replica(state, k) for k in range(len(seeds)) for state in stacked]


def restore_states(run: RunDir, steps: Sequence[int], like_state: Any) -> list[Any]:
  """The states of `steps` in `run`; a damaged one is an error naming it and the intact."""
  with checkpoint_manager(run.checkpoints, max_to_keep=None, save_interval_steps=1) as manager:
    states = []
    for step in steps:
      restored, failure = _try_restore(manager, step, like_state)
      if restored is None:  # Whatever broke, the user's next move is the same.
        intact = [s for s in run.steps()
                  if s != step and _try_restore(manager, s, like_state)[0] is not None]
        detail = (failure.splitlines() or [''])[0][:300]  # Storage errors run to pages.
        raise CheckpointCorruptError(
            f'The checkpoint of step {step} in {run.checkpoints / str(step)} cannot be '
            f'restored ({detail}). Intact steps: {intact or "none"}; '
            'choose one with --checkpoint_step (predict) or --steps (evaluate).')
      states.append(restored[0])
  return states
