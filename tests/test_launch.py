"""The multi-host launch scripts: syntax, lint, and what they would run."""

import shutil
import subprocess

import pytest

from tests.conftest import REPO_ROOT

SCRIPTS = sorted((REPO_ROOT / 'launch').glob('*.sh'))


def test_there_are_launch_scripts_for_tpu_vms_and_slurm():
  assert {p.name for p in SCRIPTS} == {'tpu_vm.sh', 'slurm_gpu.sh'}


@pytest.mark.parametrize('script', SCRIPTS, ids=lambda p: p.name)
def test_script_parses(script):
  subprocess.run(['bash', '-n', str(script)], check=True)


@pytest.mark.parametrize('script', SCRIPTS, ids=lambda p: p.name)
def test_script_passes_shellcheck(script):
  shellcheck = shutil.which('shellcheck')
  assert shellcheck, 'shellcheck is not installed (apt-get install shellcheck)'
  result = subprocess.run([shellcheck, str(script)], capture_output=True, text=True)
  assert result.returncode == 0, result.stdout


@pytest.mark.parametrize('script', SCRIPTS, ids=lambda p: p.name)
def test_missing_site_values_are_errors_before_anything_runs(script):
  result = subprocess.run(['bash', str(script)], capture_output=True, text=True)
  assert result.returncode == 2
  assert 'Missing --' in result.stderr


def test_slurm_dry_run_shows_one_process_per_gpu_with_multihost():
  result = subprocess.run(
      ['bash', str(REPO_ROOT / 'launch' / 'slurm_gpu.sh'), '--nodes=2', '--gpus_per_node=4',
       '--partition=p', '--time=01:00:00', '--workdir=/shared/w', '--venv=/shared/v',
       '--dry_run', '--', '--config.batch_size=512'], capture_output=True, text=True, check=True)
  assert '--nodes=2 --ntasks-per-node=4 --gpus-per-node=4' in result.stdout
  assert '--signal=TERM@120 --requeue' in result.stdout
  assert ('srun --gpus-per-task=1 python -m fakejax.main --multihost '
          '--config=configs/dcgan_fmnist.py --workdir=/shared/w --config.batch_size=512'
          in result.stdout)
