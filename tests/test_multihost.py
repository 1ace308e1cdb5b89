"""Two real JAX processes on this machine (4 CPU devices each) against one process of 8.

dcgan_tf only: with Adam, the cross-process reduction order (gloo) changes float rounding,
which Adam can turn into steps of up to one learning rate where gradients are near zero.
After 12 steps dcgan_tf agrees to ~2e-6; dcgan_radford (BatchNorm in D) to ~2e-4.
"""

import os
import socket
import subprocess

import jax
import numpy as np

from tests.conftest import REPO_ROOT, final_state, main_command

STEPS = 12  # One epoch of the tiny config.
VARIANT = 'tiny,gans=dcgan_tf'
GANS = ('dcgan_tf',)


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def devices_env(count: int) -> dict[str, str]:
  return {**os.environ, 'XLA_FLAGS': f'--xla_force_host_platform_device_count={count}'}


def run_two_processes(workdir, data_dir) -> list[str]:
  port = free_port()
  processes = [
      subprocess.Popen(
          main_command(workdir, data_dir, '--config.num_epochs=1',
                       f'--coordinator_address=127.0.0.1:{port}', '--num_processes=2',
                       f'--process_id={index}', variant=VARIANT),
          cwd=REPO_ROOT, env=devices_env(4), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
          text=True)
      for index in range(2)]
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
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  # Only process 0 writes reports.
  assert (tmp_path / 'two' / 'report.md').is_file()

  logs = run_two_processes(tmp_path / 'two', tfds_data_dir)
  for log in logs:
    assert log.count(f'Resumed from the checkpoint of step {STEPS}') == len(GANS)
