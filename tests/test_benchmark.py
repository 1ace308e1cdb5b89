"""The benchmark tool: its PyTorch twins are the same networks, and a tiny run reports.

Both run the tool in a process of its own, which imports PyTorch before JAX: PyTorch's
CUDA build (which CI installs where the disk has room for torchvision) crashed when imported into a process
where JAX and TensorFlow had started, as in this one.
"""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

MODELS = ('alexnet', 'autogan_depth1', 'autogan_depth4', 'dcgan_radford', 'dcgan_tf',
          'efficientnet_b0', 'mobilenet_v2', 'mobilenet_v3_large', 'patch_cnn', 'resnet18',
          'sequential_cnn', 'wgan_gp', 'vae', 'ddpm', 'realnvp', 'pixelcnn')

# One process for the facts the tests check: the tool's models, their parameter counts in
# fakejax and in the PyTorch twin (which also runs one tiny train step), and the CPU peaks.
TOOL_FACTS = """
import json, sys
import jax
import numpy as np
from tools import benchmark
counts = {}
for model in sys.argv[1:]:
  state = jax.eval_shape(benchmark.WORKLOADS[model]('float32')[0], jax.random.PRNGKey(0))
  trees = [getattr(state, name) for name in ('g_params', 'd_params', 'params')
           if hasattr(state, name)]
  runner = benchmark.TorchRunner(model, batch_size=2, threads=1, device='cpu',
                                compute_dtype='float32')
  networks = [getattr(runner, name) for name in ('g', 'd') if hasattr(runner, name)]
  counts[model] = {
      'fakejax': sum(int(np.prod(leaf.shape)) for tree in trees
                     for leaf in jax.tree.leaves(tree)),
      'pytorch': sum(p.numel() for network in networks or [runner.inference_model]
                     for p in network.parameters())}
cpu = jax.devices('cpu')[0]
print(json.dumps({
    'workloads': sorted(benchmark.WORKLOADS),
    'counts': counts,
    'default_peak': benchmark.peak(cpu, 'float32', 0.0),
    'given_peak': benchmark.peak(cpu, 'float32', 1234.0),
    'measured_gflops': benchmark.measured_matmul_gflops(cpu, 'float32', size=256)}))
"""


def has_pytorch() -> bool:
  return subprocess.run([sys.executable, '-c', 'import torch'], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(not has_pytorch(),
                                reason="PyTorch (the bench extra) is not installed")


@pytest.fixture(scope='module')
def tool_facts() -> dict:
  run = subprocess.run([sys.executable, '-c', TOOL_FACTS, *MODELS], cwd=REPO_ROOT,
                       capture_output=True, text=True, timeout=600)
  assert run.returncode == 0, run.stderr[-3000:]
  return json.loads(run.stdout.strip().splitlines()[-1])


def test_benchmark_covers_these_models(tool_facts):
  assert tool_facts['workloads'] == sorted(MODELS)


def test_each_pytorch_twin_has_as_many_parameters(tool_facts):
  counts = tool_facts['counts']
  assert sorted(counts) == sorted(MODELS)
  for model, count in counts.items():
    assert count['pytorch'] == count['fakejax'] > 0, (model, count)


def test_the_peak_is_given_or_a_measured_matrix_product(tool_facts):
  gflops, source = tool_facts['default_peak']
  assert 0 < gflops < 100_000 and source == 'measured: 2048^3 float32 matrix product'
  assert tool_facts['given_peak'] == [1234.0, 'as given']
  assert 0 < tool_facts['measured_gflops'] < 10_000


def test_bfloat16_is_refused_for_models_that_compute_in_float32():
  run = subprocess.run(
      [sys.executable, 'tools/benchmark.py', '--models=dcgan_tf,alexnet',
       '--compute_dtype=bfloat16'],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
  assert run.returncode == 2
  assert "--compute_dtype=bfloat16 is for ['dcgan_tf', 'dcgan_radford', 'wgan_gp']; ['alexnet']" in run.stderr


def run_tiny_benchmark(tmp_path, *flags) -> tuple[str, list[dict]]:
  """The tool on `dcgan_tf` at batch 8, one step a round: (its table, its JSON). The peak
  is given: measuring it is `tool_facts`'s."""
  out = tmp_path / 'bench.json'
  run = subprocess.run(
      [sys.executable, 'tools/benchmark.py', '--models=dcgan_tf', '--batch_size=8',
       '--steps=1', '--peak_gflops=1000', *flags, f'--json={out}'],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
  assert run.returncode == 0, run.stderr[-3000:]
  return run.stdout, json.loads(out.read_text())


def test_a_tiny_run_prints_the_table_and_writes_json(tmp_path):
  table, (result,) = run_tiny_benchmark(tmp_path, '--score_calls=1', '--rounds=2')
  assert '| dcgan_tf | 8 |' in table
  assert len(result['rounds']['jax_train']) == len(result['rounds']['torch_train']) == 2
  assert result['train_img_per_s'] > 0 and result['torch_train_img_per_s'] > 0
  assert result['gflop_per_image'] > 0 and 0 < result['peak_fraction'] < 1


def test_a_tiny_seeds_run_reports_replicas_in_total_and_each(tmp_path):
  table, (two,) = run_tiny_benchmark(tmp_path, '--rounds=1', '--seeds=2')
  assert '| dcgan_tf | 2 | unrolled |' in table
  assert two['replicas'] == 2
  assert two['per_replica_img_per_s'] == pytest.approx(two['train_img_per_s'] / 2)
  assert two['torch_train_img_per_s'] > 0 and 0 < two['peak_fraction'] < 1
