"""Robustness sweeps: reals and fakes perturbed alike; clean, the sweep is the evaluation."""

import json

import numpy as np
import pytest
from PIL import Image

from fakejax import errors
from fakejax.evaluation import robustness
from tools import robustness_sweep

LEVELS = ('jpeg_30', 'noise_0.05')


@pytest.fixture(scope='module')
def sweep(detectors_study, tmp_path_factory):
  out = tmp_path_factory.mktemp('sweep') / 'robustness'
  text = robustness_sweep.main([str(detectors_study), f'--levels={",".join(LEVELS)}',
                                '--detectors=leave-one-family-out,pixelcnn_reals',
                                '--max_images=100000', f'--out={out}'])
  return out, text, json.loads(out.with_suffix('.json').read_text())


def test_clean_the_sweep_gives_the_leave_one_family_out_tables_figures(sweep, detectors_study):
  _, _, result = sweep
  held_out = json.loads((detectors_study / 'leave_one_family_out.json').read_text())['families']
  clean = {row['family']: row for row in result['families']
           if row['label'] == robustness.LEAVE_ONE_OUT and row['perturbation'] == robustness.CLEAN}
  single = [row for row in held_out if len(row['generators']) == 1]  # Pooled = per generator.
  assert single
  for row in single:
    assert clean[row['family']]['detector'] == row['detector']
    assert clean[row['family']]['average_precision'] == pytest.approx(row['average_precision'])
    assert clean[row['family']]['fake_recall'] == pytest.approx(row['fake_recall_budget'])


def test_every_level_perturbs_reals_and_fakes_and_is_summarised(sweep):
  out, text, result = sweep
  rows = result['families']
  assert {row['perturbation'] for row in rows} == {robustness.CLEAN, *LEVELS}
  key = lambda row: (row['detector'], row['family'])
  clean = {key(row): row for row in rows if row['perturbation'] == robustness.CLEAN}
  moved = [row for row in rows if row['perturbation'] == 'noise_0.05'
           and row['average_precision'] != clean[key(row)]['average_precision']]
  assert moved  # Noise on every image changes the scores.
  # The real-only detector is judged on every family; one summary row per label and level.
  assert len({row['family'] for row in rows if row['label'] == 'pixelcnn_reals'}) == 2
  assert len(result['summary']) == 2 * (1 + len(LEVELS))
  assert text.count('| pixelcnn_reals |') == 1 + len(LEVELS)
  with Image.open(out.with_suffix('.png')) as plot:
    assert np.asarray(plot.convert('L')).std() > 1.0


def test_an_unknown_level_is_a_clear_error(detectors_study):
  with pytest.raises(errors.UserError, match='--levels.*jpeg_75'):
    robustness_sweep.main([str(detectors_study), '--levels=sharpen_2'])
