"""Fusions of detectors: fitted on the chosen generators only, restorable, and served by
`predict` like any detector (the session's detectors study has the `,fusion` option)."""

import dataclasses

import numpy as np
import pytest

from configs import detectors_fmnist
from fakejax import config as config_lib, errors, fusion, predict, sharding
from fakejax.evaluation import assemble, restore
from fakejax.studies import common, dedicated
from fakejax.workdir import Workdir

# Of the tiny study: the autoencoder family held out; fused from the DCGANs' classifier,
# the real-only detector and both discriminators, fitted on the DCGANs' fakes.
HELD_OUT = 'fused_without_autoencoder'


def test_a_useful_member_weighs_and_a_noisy_one_does_not():
  rng = np.random.default_rng(0)
  reals = np.stack([rng.normal(2.0, 1.0, 400), rng.normal(0.0, 1.0, 400)])
  fakes = np.stack([rng.normal(-2.0, 1.0, 300), rng.normal(0.0, 1.0, 300)])
  weights, _ = fusion.fit_weights(reals, fakes)
  assert weights[0] > 1.0 and abs(weights[1]) < 0.2 * weights[0]


def test_a_damaged_fusion_file_is_named_in_a_clear_error(tmp_path):
  path = tmp_path / fusion.FUSION_JSON
  fusion.fit(['a', 'b'], [1, 2], ['g'], ['g'], np.full((2, 4), 0.9),
             {'g': np.full((2, 3), 0.1)}).write(path)
  assert fusion.Fusion.read(path).members == ('a', 'b')
  path.write_text('{"members": ["a"')  # Cut short.
  with pytest.raises(errors.UserError, match=str(path)):
    fusion.Fusion.read(path)


def study_data(study):
  config = restore.workdir_config(Workdir(study))
  mesh = sharding.build_mesh()
  data = common.study_data(config, Workdir(study), mesh, train=None,
                           more_sources=dedicated.autoencoder_sources(config, Workdir(study),
                                                                      mesh, None))
  return config, mesh, data


def with_validation_fakes(data, generator, images):
  fakes = dict(data.fakes)
  fakes[generator] = {**fakes[generator], 'validation': images}
  return dataclasses.replace(data, fakes=fakes)


def test_the_held_out_family_never_reaches_the_fitting(detectors_study):
  config, mesh, data = study_data(detectors_study)
  workdir = Workdir(detectors_study)
  stored = fusion.Fusion.read(workdir.fusion(HELD_OUT).path / fusion.FUSION_JSON)
  refitted = common.fit_fusion(config, workdir, HELD_OUT, data, mesh)
  assert refitted == stored  # Deterministic, from the same members' checkpoints.
  assert 'autogan_d1' not in stored.trained_on and 'autogan_d1' not in stored.fit_on
  rng = np.random.default_rng(1)
  noise = lambda g: rng.integers(0, 256, data.fakes[g]['validation'].shape).astype(np.uint8)
  # The held-out family's fakes replaced by noise: the very same fusion.
  assert common.fit_fusion(config, workdir, HELD_OUT,
                           with_validation_fakes(data, 'autogan_d1', noise('autogan_d1')),
                           mesh) == stored
  # A fitted-on generator's replaced: another fusion (so the check above can fail).
  changed = common.fit_fusion(config, workdir, HELD_OUT,
                              with_validation_fakes(data, 'dcgan_tf', noise('dcgan_tf')), mesh)
  assert changed.weights != stored.weights


def test_predict_serves_a_fusion_as_its_members_weighed(detectors_study):
  config = restore.workdir_config(Workdir(detectors_study))
  budget = assemble.budget_threshold(config.evaluation)
  detector = predict.load_detector(detectors_study, HELD_OUT, -1, budget, batch_size=32)
  stored = fusion.Fusion.read(Workdir(detectors_study).fusion(HELD_OUT).path / fusion.FUSION_JSON)
  images = np.random.default_rng(2).integers(0, 256, (40, 28, 28, 1)).astype(np.uint8)
  members = [predict.load_detector(detectors_study, name, step, budget, batch_size=32)
             for name, step in zip(stored.members, stored.member_steps)]
  expected = fusion.fused_p_real(stored, np.stack([m.scorer.score(images)[0] for m in members]))
  np.testing.assert_allclose(detector.scorer.score(images)[0], expected, rtol=1e-6)
  assert detector.step == fusion.FUSION_STEP and 'fusion of' in detector.architecture


def test_fusion_config_mistakes_are_named():
  config = detectors_fmnist.get_config('tiny,real_only,fusion')
  config.fusions[HELD_OUT].members = ('pooled_dcgans', 'D:no_such_gan')
  with pytest.raises(config_lib.ConfigError, match=f"fusions.{HELD_OUT}.members.*no_such_gan"):
    config_lib.check_detectors(config, 1)
  config = detectors_fmnist.get_config('tiny,real_only,fusion')
  config.fusions[HELD_OUT].fit_on = ('no_such_generator',)
  with pytest.raises(config_lib.ConfigError, match=f'fusions.{HELD_OUT}.fit_on'):
    config_lib.check_detectors(config, 1)
  config = detectors_fmnist.get_config('tiny,real_only,fusion')
  config.seeds = (0, 1)
  with pytest.raises(config_lib.ConfigError, match='one seed'):
    config_lib.check_detectors(config, 1)


def test_member_scores_are_kept_per_image_and_equal_scoring_anew():
  calls = []

  class CountingScorer:
    def score(self, images):
      calls.append(len(images))
      return images.reshape(len(images), -1).mean(axis=1)[None] / 255.0

  rng = np.random.default_rng(3)
  a, b = (rng.integers(0, 256, (50, 4, 4, 1)).astype(np.uint8) for _ in range(2))
  key = ('run', 'member', 1)
  scorer = CountingScorer()
  np.testing.assert_allclose(fusion.member_score(key, scorer, a), scorer.score(a)[0])
  pooled = np.concatenate([b, a[10:20], b[:7]])
  np.testing.assert_allclose(fusion.member_score(key, scorer, pooled), scorer.score(pooled)[0])
  # Scored once each: a, then (in the pooled set) b only; then the checks' own.
  assert calls == [len(a), len(a), len(b), len(pooled)]
  other_step = ('run', 'member', 2)  # Another checkpoint scores anew.
  fusion.member_score(other_step, scorer, a[:5])
  assert calls[-1] == 5


def test_a_members_evaluation_leaves_its_last_checkpoints_scores_to_the_fusions():
  class TwoCheckpoints:  # Checkpoint k scores an image as its mean brightness + k.
    num_checkpoints = 2

    def score(self, images):
      return images.reshape(len(images), -1).mean(axis=1)[None] / 255.0 + np.arange(2)[:, None]

    def score_own(self, images):
      return np.stack([self.score(row)[k] for k, row in enumerate(images)])

  rng = np.random.default_rng(4)
  shared, own = rng.integers(0, 256, (30, 4, 4, 1)), rng.integers(0, 256, (2, 20, 4, 4, 1))
  key = ('run', 'evaluated member', 7)
  evaluated = fusion.RememberingScorer(TwoCheckpoints(), key)
  np.testing.assert_array_equal(evaluated.score(shared), TwoCheckpoints().score(shared))
  np.testing.assert_array_equal(evaluated.score_own(own), TwoCheckpoints().score_own(own))

  class Refusing:
    def score(self, images):
      raise AssertionError(f'{len(images)} images scored again')

  # The fusion finds the last checkpoint's scores of both sets, own fakes of that row.
  both = np.concatenate([own[1], shared])
  np.testing.assert_allclose(fusion.member_score(key, Refusing(), both),
                             TwoCheckpoints().score(both)[1], rtol=1e-6)
  assert fusion.member_score(key, Refusing(), own[:, :0].reshape(0, 4, 4, 1)).shape == (0,)
  with pytest.raises(AssertionError, match='20 images'):  # Row 0's were not its checkpoint's.
    fusion.member_score(key, Refusing(), own[0])
