"""The layer benchmark: every rewritten layer beside its textbook layer, timed and compared."""

import json
import subprocess
import sys

from tests.conftest import REPO_ROOT, load_tool


benchmark_layers = load_tool('benchmark_layers')


def test_a_tiny_run_times_and_compares_every_layer(tmp_path):
  out = tmp_path / 'layers.json'
  run = subprocess.run(
      [sys.executable, 'tools/benchmark_layers.py', '--batch_size=2', '--rounds=2', '--calls=1',
       f'--json={out}'], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
  assert run.returncode == 0, run.stderr[-3000:]
  results = json.loads(out.read_text())
  assert [r['layer'] for r in results] == [case.name for case in benchmark_layers.CASES]
  for r in results:
    assert f"| {r['layer']} | 2x" in run.stdout
    assert len(r['rounds_ms']['textbook']) == len(r['rounds_ms']['rewritten']) == 2
    assert r['textbook_ms'] > 0 and r['rewritten_ms'] > 0
    # The drop-in layers compute the same outputs and gradients.
    assert r['relative_difference'] < 1e-5, r
