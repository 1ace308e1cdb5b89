"""The layer benchmark: every rewritten layer beside its textbook layer, timed and compared."""

import json
import subprocess
import sys

from tests.conftest import REPO_ROOT


# A layer of each form: scatter, strided, small map, depthwise, GroupNorm, max-pool.
# (tests/test_models.py proves every form equal to its textbook layer.)
ONE_OF_EACH_FORM = '64 -> 1$|dcgan_radford D|small map|MobileNetV3|GroupNorm|max-pool'


def test_a_tiny_run_times_and_compares_the_layers_it_is_asked_for(tmp_path):
  out = tmp_path / 'layers.json'
  run = subprocess.run(
      [sys.executable, 'tools/benchmark_layers.py', '--batch_size=2', '--rounds=2', '--calls=1',
       f'--match={ONE_OF_EACH_FORM}', f'--json={out}'], cwd=REPO_ROOT, capture_output=True,
      text=True, timeout=600)
  assert run.returncode == 0, run.stderr[-3000:]
  results = json.loads(out.read_text())
  assert [r['layer'] for r in results] == [
      'dcgan_tf G: 5x5/2 transposed, 64 -> 1', 'dcgan_radford D: 4x4/2 conv, 64 -> 128',
      'small map: 3x3 valid conv, 64 -> 128', 'MobileNetV3: 3x3/1 depthwise, 576',
      'U-Net: GroupNorm, 8 groups, 16 channels', 'CNN: 2x2 max-pool, 32']
  for r in results:
    assert f"| {r['layer']} | 2x" in run.stdout
    assert len(r['rounds_ms']['textbook']) == len(r['rounds_ms']['rewritten']) == 2
    assert r['textbook_ms'] > 0 and r['rewritten_ms'] > 0
    # The drop-in layers compute the same outputs and gradients.
    assert r['relative_difference'] < 1e-5, r


def test_a_pattern_that_finds_no_layer_names_them_all():
  run = subprocess.run([sys.executable, 'tools/benchmark_layers.py', '--match=lstm'],
                       cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
  assert run.returncode == 2
  assert "--match='lstm' finds no layer of ['dcgan_tf G: 5x5/2 transposed, 128 -> 64'" in run.stderr
