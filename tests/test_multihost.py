"""Two real JAX processes on this machine (4 CPU devices each) against one process of 8,
and a preemption signal that reaches only one of them.

With Adam, the cross-process reduction order (gloo) changes float rounding, which Adam
can turn into steps of up to one learning rate where gradients are near zero: parameters
agree to within one learning rate, where a wrong data slice would move them by many.
After 12 steps dcgan_tf agreed to 8e-5 (2e-6 with another data order); dcgan_radford
(BatchNorm in D) to ~2e-4, hence dcgan_tf only.
"""

import os
import re
import signal
import socket
import subprocess

import jax
import numpy as np

from configs import dcgan_fmnist
from tests.conftest import REPO_ROOT, final_state, main_command, wait_for_checkpoint

STEPS = 12  # One epoch of the tiny config.
VARIANT = 'tiny,gans=dcgan_tf'
GANS = ('dcgan_tf',)
LEARNING_RATE = dcgan_fmnist.dcgan_tf().optimizer.learning_rate


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def devices_env(count: int) -> dict[str, str]:
  return {**os.environ, 'XLA_FLAGS': f'--xla_force_host_platform_device_count={count}'}


def start_two_processes(workdir, data_dir, num_epochs: int) -> list[subprocess.Popen]:
  port = free_port()
  return [
      subprocess.Popen(
          main_command(workdir, data_dir, f'--config.num_epochs={num_epochs}',
                       f'--coordinator_address=127.0.0.1:{port}', '--num_processes=2',
                       f'--process_id={index}', variant=VARIANT),
          cwd=REPO_ROOT, env=devices_env(4), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
          text=True)
      for index in range(2)]


def run_two_processes(workdir, data_dir, num_epochs: int = 1) -> list[str]:
  processes = start_two_processes(workdir, data_dir, num_epochs)
  logs = [process.communicate(timeout=900)[1] for process in processes]
  for process, log in zip(processes, logs):
    assert process.returncode == 0, log[-5000:]
  return logs


def test_two_processes_train_like_one_and_resume(tfds_data_dir, tmp_path):
  single = subprocess.run(main_command(tmp_path / 'one', tfds_data_dir, '--config.num_epochs=1',
                                       variant=VARIANT),
                          cwd=REPO_ROOT, env=devices_env(8), capture_output=True, text=True,
                          timeout=900)
  assert single.returncode == 0, single.stderr[-5000:]

  logs = run_two_processes(tmp_path / 'two', tfds_data_dir)
  for index, log in enumerate(logs):
    assert f'Joined a run of 2 processes as process {index}: 4 local of 8 devices.' in log
  for gan in GANS:
    got = final_state(tmp_path / 'two' / gan / 'checkpoints')
    want = final_state(tmp_path / 'one' / gan / 'checkpoints')
    assert int(got['step']) == int(want['step']) == STEPS
    for name in ('g_params', 'd_params', 'g_batch_stats', 'd_batch_stats'):
      for a, b in zip(jax.tree.leaves(got[name]), jax.tree.leaves(want[name]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=LEARNING_RATE)
  # Only process 0 writes reports.
  assert (tmp_path / 'two' / 'report.md').is_file()

  logs = run_two_processes(tmp_path / 'two', tfds_data_dir)
  for log in logs:
    assert log.count(f'Resumed from the checkpoint of step {STEPS}') == len(GANS)


def test_sigterm_to_one_process_stops_both_after_the_same_step(tfds_data_dir, tmp_path):
  processes = start_two_processes(tmp_path, tfds_data_dir, num_epochs=2)
  wait_for_checkpoint(tmp_path / 'dcgan_tf' / 'checkpoints', processes[0])
  processes[1].send_signal(signal.SIGTERM)  # Only one host is preempted.
  logs = [process.communicate(timeout=600)[1] for process in processes]
  for process, log in zip(processes, logs):
    assert process.returncode == 143, log[-5000:]
  stopped_at = [re.search(r'stopped by SIGTERM at step (\d+)', log).group(1) for log in logs]
  assert stopped_at[0] == stopped_at[1], stopped_at
  assert int(stopped_at[0]) < 2 * STEPS  # The tiny config's two epochs were not finished.

  logs = run_two_processes(tmp_path, tfds_data_dir, num_epochs=2)
  for log in logs:
    assert f'Resumed from the checkpoint of step {stopped_at[0]}' in log
  assert int(final_state(tmp_path / 'dcgan_tf' / 'checkpoints')['step']) == 2 * STEPS
