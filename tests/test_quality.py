"""Generator quality: the Fréchet distance and precision/recall, on features with known answers."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from fakejax import sharding
from fakejax.data import pipeline
from fakejax.evaluation import generator_quality, quality, restore
from fakejax.train import loop
from fakejax.workdir import Workdir
from tests.conftest import GANS, TINY_STEPS

DIMS = 8


def gaussian(count: int, seed: int, mean: float = 0.0, scale: float = 1.0) -> np.ndarray:
  rng = np.random.default_rng(seed)
  mixing = np.random.default_rng(99).normal(size=(DIMS, DIMS)) / np.sqrt(DIMS)
  return (mean + scale * rng.normal(size=(count, DIMS)) @ mixing).astype(np.float32)


def test_frechet_distance_of_two_samples_of_one_distribution_is_near_zero():
  same = float(quality.frechet_distance(gaussian(4000, 0), gaussian(4000, 1)))
  shifted = float(quality.frechet_distance(gaussian(4000, 0), gaussian(4000, 1, mean=1.0)))
  assert 0.0 <= same < 0.05
  assert shifted > 100 * same


def test_frechet_distance_of_a_shift_is_its_squared_length():
  features = gaussian(500, 0)
  shift = np.linspace(-1.0, 1.0, DIMS).astype(np.float32)
  np.testing.assert_allclose(quality.frechet_distance(features, features + shift),
                             np.sum(shift ** 2), rtol=1e-3)


def test_frechet_distance_of_a_doubled_spread_is_the_trace_of_the_covariance():
  # C and 4C: Tr(C + 4C - 2 sqrt(4 C^2)) = Tr(C).
  features = gaussian(500, 0)
  features = features - features.mean(0)
  covariance = np.cov(features, rowvar=False)
  np.testing.assert_allclose(quality.frechet_distance(features, 2 * features),
                             np.trace(covariance), rtol=1e-3)


def test_samples_of_one_distribution_have_high_precision_and_recall():
  scores = quality.precision_recall(gaussian(1500, 0), gaussian(1500, 1))
  assert float(scores['precision']) > 0.9 and float(scores['recall']) > 0.9


def test_fakes_far_from_the_reals_have_no_precision_or_recall():
  scores = quality.precision_recall(gaussian(500, 0), gaussian(500, 1, mean=50.0))
  assert float(scores['precision']) == float(scores['recall']) == 0.0


def test_a_collapsed_generator_is_precise_but_recalls_little():
  reals = gaussian(1200, 0)
  collapsed = reals[np.argsort(reals[:, 0])[:100]]  # Only one end of the distribution.
  collapsed = np.repeat(collapsed, 12, axis=0) + 0.01 * gaussian(1200, 1)
  scores = quality.precision_recall(reals, collapsed)
  assert float(scores['precision']) > 0.9
  assert float(scores['recall']) < 0.3


@pytest.mark.parametrize('count', [5, quality.DISTANCE_BLOCK_ROWS + 7])
def test_kth_neighbour_radii_match_a_direct_computation(count):
  features = gaussian(count, 3)
  distances = ((features[:, None] - features[None]) ** 2).sum(-1)
  want = np.sort(distances, axis=1)[:, 3]
  np.testing.assert_allclose(quality.kth_neighbour_radii(features, 3), want, rtol=1e-3,
                             atol=1e-4)


def test_the_study_measures_each_generator_beside_a_reals_reference(finished_run):
  table = json.loads((finished_run / 'quality' / generator_quality.QUALITY_JSON).read_text())
  rows = table['rows']
  assert set(rows) == {generator_quality.REFERENCE_ROW, *GANS}
  reference = rows[generator_quality.REFERENCE_ROW]
  for gan in GANS:
    # Generators of 12 steps are far from the reals and cover little of them; other
    # reals are near and cover them.
    assert rows[gan]['frechet_distance'] > 3 * reference['frechet_distance']
    assert rows[gan]['recall'] < reference['recall']
    assert table['details'][gan]['steps'] == TINY_STEPS
  markdown = (finished_run / 'quality' / generator_quality.QUALITY_MD).read_text()
  assert all(f'| {name} |' in markdown for name in rows)
  for gan in GANS:  # An 8x8 grid of 28x28 samples.
    assert Image.open(finished_run / 'quality' / f'samples_{gan}.png').size == (224, 224)


def test_an_early_checkpoint_scores_worse_than_the_last(finished_run, tiny_config, tmp_path):
  workdir = tmp_path / 'run'  # Restoring the feature network writes TensorBoard files.
  shutil.copytree(finished_run, workdir, ignore=shutil.ignore_patterns('eval'))
  mesh = sharding.build_mesh()
  features = generator_quality.feature_function(
      tiny_config.quality, loop.LoopSettings.from_config(tiny_config), tiny_config.data,
      Workdir(workdir), mesh, tiny_config.evaluation.batch_size)
  reals = pipeline.load_study_splits(tiny_config.data, tiny_config.seed)
  gan = GANS[0]
  stacked = restore.restore_gan(tiny_config.gans[gan], Workdir(workdir).gan(gan), gan,
                                [4, TINY_STEPS], mesh)
  early, late = restore.gan_sampler(stacked, mesh, 64).generate(256, seed=5)
  rows = generator_quality.measure({'early': early, 'late': late}, reals, features, 3)
  assert rows['late']['frechet_distance'] < rows['early']['frechet_distance']
