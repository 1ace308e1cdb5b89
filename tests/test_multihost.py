"""Two real JAX processes on this machine (2 CPU devices each) against the session's run
of one process (2 devices), with a preemption signal that reaches only one of them.

The global batch is the same either way. With Adam, the cross-process reduction order
(gloo) changes float rounding, which Adam can turn into steps of up to one learning rate
where gradients are near zero: parameters agree to within one learning rate, where a
wrong data slice would move them by many. After 12 steps dcgan_tf agreed to 8e-5 (2e-6
with another data order); dcgan_radford (BatchNorm in D) to ~2e-4, hence dcgan_tf only.
"""

import re
import signal
import socket
import subprocess

import jax
import numpy as np

from configs import dcgan_fmnist
from tests.conftest import (REPO_ROOT, TINY_STEPS, devices_env, final_state, main_command,
                            wait_for_checkpoint)

# The tiny config: its first checkpoint comes well before the end, to preempt the run.
VARIANT = 'tiny,gans=dcgan_tf'
GANS = ('dcgan_tf',)
LEARNING_RATE = dcgan_fmnist.dcgan_tf().optimizer.learning_rate


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def start_two_processes(workdir, data_dir) -> list[subprocess.Popen]:
  port = free_port()
  return [
      subprocess.Popen(
          main_command(workdir, data_dir, f'--coordinator_address=127.0.0.1:{port}', '--num_processes=2',
                       f'--process_id={index}', variant=VARIANT),
          cwd=REPO_ROOT, env=devices_env(2), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
          text=True)
      for index in range(2)]


def run_two_processes(workdir, data_dir, processes=None) -> list[str]:
  """Waits for (or starts) two processes of one run; returns their logs."""
  processes = processes or start_two_processes(workdir, data_dir)
  logs = [process.communicate(timeout=900)[1] for process in processes]
  for process, log in zip(processes, logs):
    assert process.returncode == 0, log[-5000:]
  return logs


def test_two_processes_stop_together_resume_and_train_like_one(request, tfds_data_dir,
                                                               tmp_path):
  """Preempted on one host only, both stop after the same step; the same command resumes
  both and ends with the parameters of one process (the session's finished run, whose
  GANs each train alike whichever others the run trains)."""
  processes = start_two_processes(tmp_path / 'two', tfds_data_dir)
  wait_for_checkpoint(tmp_path / 'two' / 'dcgan_tf' / 'checkpoints', processes[0])
  processes[1].send_signal(signal.SIGTERM)  # Only one host is preempted.
  logs = [process.communicate(timeout=600)[1] for process in processes]
  for index, (process, log) in enumerate(zip(processes, logs)):
    assert process.returncode == 143, log[-5000:]
    assert f'Joined a run of 2 processes as process {index}: 2 local of 4 devices.' in log
  stopped_at = [re.search(r'stopped by SIGTERM at step (\d+)', log).group(1) for log in logs]
  assert stopped_at[0] == stopped_at[1], stopped_at
  assert int(stopped_at[0]) < TINY_STEPS  # The epoch was not finished.

  for log in run_two_processes(tmp_path / 'two', tfds_data_dir):
    assert f'Resumed from the checkpoint of step {stopped_at[0]}' in log
  # Asked for only now: these runs go on while another worker trains the reference.
  reference_dir = request.getfixturevalue('finished_run')
  for gan in GANS:
    got = final_state(tmp_path / 'two' / gan / 'checkpoints')
    want = final_state(reference_dir / gan / 'checkpoints')
    assert int(got['step']) == int(want['step']) == TINY_STEPS
    for name in ('g_params', 'd_params', 'g_batch_stats', 'd_batch_stats'):
      for a, b in zip(jax.tree.leaves(got[name]), jax.tree.leaves(want[name]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=LEARNING_RATE)
  # Only process 0 writes reports.
  assert (tmp_path / 'two' / 'report.md').is_file()
