r"""Kills the tiny study at random moments, resumes it, and checks nothing was lost.

Each trial starts the tiny config in a fresh workdir, sends SIGKILL or SIGTERM either at a
random moment or while a checkpoint is being written, runs the same command again to the
end, and compares the final parameters with an uninterrupted run's (bit for bit). The
runs only train (`train_only`): what follows training reads the parameters compared.

  python tools/fault_injection.py --trials=50 --data_dir=/tmp/tensorflow_datasets

Prints one line per trial and "survived K of N".
"""

import argparse
import dataclasses
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

import jax
import numpy as np
from absl import logging

from fakejax.train import checkpoints
from fakejax.workdir import RunDir

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]  # Where `fakejax.main` runs.

COMPARED = ('g_params', 'd_params', 'g_batch_stats', 'd_batch_stats')
INCOMPLETE_MARKER = checkpoints.INCOMPLETE_MARKER


@dataclasses.dataclass
class Trial:
  signal_name: str
  moment: str  # 'random' or 'during_save'
  interrupted_at_s: float  # Seconds after the start.
  survived: bool
  detail: str = ''


def main_command(workdir: pathlib.Path, data_dir: str, gans: Sequence[str] = ()) -> list[str]:
  """The tiny study's command, training only; with `gans`, only those GANs."""
  variant = 'tiny' + (f',gans={"+".join(gans)}' if gans else '')
  return [sys.executable, '-m', 'fakejax.main', f'--config=configs/dcgan_fmnist.py:{variant}',
          f'--workdir={workdir}', f'--config.data.data_dir={data_dir}',
          '--config.train_only=True']


def environment(num_devices: int) -> dict[str, str]:
  """This process's environment with `num_devices` CPU devices; other XLA flags are kept
  (runs compared bit for bit must be compiled alike)."""
  device_count = '--xla_force_host_platform_device_count'
  kept = [flag for flag in os.environ.get('XLA_FLAGS', '').split()
          if not flag.startswith(device_count)]
  return {**os.environ, 'XLA_FLAGS': ' '.join([*kept, f'{device_count}={num_devices}'])}


def run_to_end(workdir: pathlib.Path, data_dir: str, env: dict, gans: Sequence[str] = ()) -> None:
  result = subprocess.run(main_command(workdir, data_dir, gans), cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True)
  if result.returncode != 0:
    raise RuntimeError(f'run in {workdir} failed:\n{result.stderr[-3000:]}')


def final_parameters(workdir: pathlib.Path, gans: Sequence[str] = ()) -> dict:
  """The latest parameters of `gans` (default: every GAN of the workdir), by GAN."""
  states = {}
  for gan_dir in sorted(p for p in workdir.iterdir() if RunDir(p).checkpoints.is_dir()
                        and (not gans or p.name in gans)):
    run = RunDir(gan_dir)
    # As NumPy: the runs used more devices than this process has.
    state = checkpoints.read_state_as_numpy(run.checkpoints / str(run.steps()[-1]) / 'state')
    states[gan_dir.name] = {name: state[name] for name in COMPARED}
  return states


def same_parameters(got: dict, want: dict) -> bool:
  if got.keys() != want.keys():
    return False
  return all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)))


def saving_now(workdir: pathlib.Path) -> bool:
  return any(INCOMPLETE_MARKER in p.name for p in workdir.glob('*/checkpoints/*'))


def interrupt(process: subprocess.Popen, workdir: pathlib.Path, signal_number: int,
              moment: str, delay_s: float, timeout_s: float) -> float | None:
  """Sends the signal at the chosen moment; returns when (s after start), or None if it ended."""
  start = time.monotonic()
  while time.monotonic() - start < timeout_s:
    if process.poll() is not None:
      return None
    elapsed = time.monotonic() - start
    if (moment == 'random' and elapsed >= delay_s) or (moment == 'during_save' and saving_now(workdir)):
      process.send_signal(signal_number)
      process.wait()
      return elapsed
    time.sleep(0.005)
  process.kill()
  process.wait()
  raise TimeoutError('the run neither ended nor reached the moment to interrupt it')


def run_trial(workdir: pathlib.Path, data_dir: str, reference: dict, rng: random.Random,
              run_seconds: float, env: dict, gans: Sequence[str] = ()) -> tuple[Trial, float]:
  """One interrupted run, resumed to the end; returns it and the run length to draw from.

  A run that ends before its random moment is no trial: it is drawn again, within the
  length that run just took.
  """
  while True:
    signal_name = rng.choice(['SIGKILL', 'SIGTERM'])
    moment = rng.choice(['random', 'during_save'])
    shutil.rmtree(workdir, ignore_errors=True)
    start = time.monotonic()
    process = subprocess.Popen(main_command(workdir, data_dir, gans), cwd=REPO_ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    at = interrupt(process, workdir, getattr(signal, signal_name), moment,
                   delay_s=rng.uniform(0.05, 1.0) * run_seconds, timeout_s=10 * run_seconds)
    if at is not None:
      break
    run_seconds = time.monotonic() - start
  try:
    run_to_end(workdir, data_dir, env, gans)
    survived = same_parameters(final_parameters(workdir), reference)
    detail = '' if survived else 'final parameters differ from the uninterrupted run'
  except Exception as error:  # A failed resume is a trial lost, reported as such.
    survived, detail = False, str(error).splitlines()[0]
  return Trial(signal_name, moment, at, survived, detail), run_seconds


def timed_second_reference(workdir: pathlib.Path, data_dir: str, env: dict,
                           gans: Sequence[str], reference: dict) -> float:
  """Times a cached uninterrupted run (the signals' time scale) and checks that it agrees
  with the reference: otherwise any difference in a trial would mean nothing."""
  start = time.monotonic()
  run_to_end(workdir, data_dir, env, gans)
  seconds = time.monotonic() - start
  if not same_parameters(final_parameters(workdir), reference):
    raise RuntimeError('two uninterrupted runs disagree: the comparison would mean nothing')
  return seconds


def run_trials(num_trials: int, data_dir: str, root: pathlib.Path, seed: int = 0,
               num_devices: int = 2, reference_dir: pathlib.Path | None = None,
               gans: Sequence[str] = (), run_seconds: float | None = None,
               log=print) -> list[Trial]:
  """Runs `num_trials` interrupted runs under `root`, against an uninterrupted reference.

  The reference is run first unless `reference_dir` holds a finished one (same devices;
  it may hold more GANs than `gans`, the ones each trial trains, default all: each GAN
  trains alike whichever others the run trains). `run_seconds`, the length of a cached
  uninterrupted run, is measured by a second one unless given.
  """
  env = environment(num_devices)
  if reference_dir is None:
    reference_dir = root / 'reference'
    run_to_end(reference_dir, data_dir, env, gans)  # Also fills the compilation cache.
  reference = final_parameters(reference_dir, gans)
  if run_seconds is None:
    run_seconds = timed_second_reference(root / 'second_reference', data_dir, env, gans,
                                         reference)
  log(f'uninterrupted run: {run_seconds:.0f} s')
  rng = random.Random(seed)
  trials = []
  for index in range(num_trials):
    trial, run_seconds = run_trial(root / f'trial_{index:03d}', data_dir, reference, rng,
                                   run_seconds, env, gans)
    trials.append(trial)
    log(f'trial {index + 1}/{num_trials}: {trial.signal_name} {trial.moment} at '
        f'{trial.interrupted_at_s:.1f} s: '
        f'{"survived" if trial.survived else "LOST: " + trial.detail}')
  return trials


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--trials', type=int, default=50)
  parser.add_argument('--data_dir', required=True, help='TFDS data dir with fashion_mnist.')
  parser.add_argument('--workdir', default='', help='Where the runs go (default: a temp dir).')
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--gans', default='',
                      help="Train only these GANs of the tiny config, '+'-separated (default: all).")
  args = parser.parse_args()
  logging.set_verbosity(logging.ERROR)  # Orbax's notes on each checkpoint read.
  root = pathlib.Path(args.workdir or tempfile.mkdtemp(prefix='fault_injection_'))
  trials = run_trials(args.trials, args.data_dir, root, args.seed,
                      gans=tuple(filter(None, args.gans.split('+'))))
  print(f'survived {sum(t.survived for t in trials)} of {len(trials)}')


if __name__ == '__main__':
  main()
