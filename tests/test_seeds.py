"""Seeds as an axis: K replicas trained as one step equal K single-seed runs, resume after a
kill, and evaluate to intervals over seeds."""

import dataclasses
import json
import math
import shutil
import types

import jax
import numpy as np
import pytest

from configs import dcgan_fmnist, detectors_fmnist
from fakejax import config as config_lib
from fakejax import detectors, predict, sharding
from fakejax.data import pipeline
from fakejax.errors import UserError
from fakejax.evaluation import discriminators, intervals, restore
from fakejax.studies import common, dcgan, dedicated
from fakejax.train import gan_trainer, generator_trainer, loop
from fakejax.workdir import Workdir
from tests.conftest import final_state, shared_folder

SEEDS = (0, 3)
SINGLE = 3  # Replica 1 of SEEDS.
# Stated tolerance: the replicas' steps compute what the single-seed step computes, but XLA
# may fuse the K copies differently; measured differences are ~1e-7 after 12 Adam steps.
PARAMS_ATOL = 1e-5


def tiny_config(tfds_data_dir, seeds):
  config = dcgan_fmnist.get_config('tiny,gans=dcgan_tf')
  config.data.data_dir, config.data.allow_download = tfds_data_dir, False
  config.batch_size, config.checkpoint_every_steps, config.sample_every_steps = 8, 4, 8
  config.num_epochs, config.seeds = 2, seeds
  return config


def train(config, root, mesh):
  return gan_trainer.train_gan('dcgan_tf', config.gans.dcgan_tf,
                               loop.LoopSettings.from_config(config), IMAGES,
                               Workdir(root).gan('dcgan_tf'), mesh)


IMAGES = np.random.default_rng(0).integers(0, 255, (48, 28, 28, 1), np.uint8)


MESH = sharding.build_mesh(jax.devices()[:2])


@pytest.fixture(scope='module')
def root(tfds_data_dir, tmp_path_factory):
  """Once per test run: an uninterrupted run of SEEDS; a copy of it killed after its
  step-8 checkpoint, then resumed; and the single-seed run of SINGLE."""
  def build(folder):
    train(tiny_config(tfds_data_dir, SEEDS), folder / 'replicas', MESH)
    shutil.copytree(folder / 'replicas', folder / 'killed')
    shutil.rmtree(checkpoints_of(folder / 'killed') / '12')
    resumed = train(tiny_config(tfds_data_dir, SEEDS), folder / 'killed', MESH)
    (folder / 'killed' / 'resumed_from_step').write_text(str(resumed.resumed_from_step))
    train(tiny_config(tfds_data_dir, (SINGLE,)), folder / 'single', MESH)
  return shared_folder(tmp_path_factory, 'seeds_runs', build)


def checkpoints_of(root):
  return Workdir(root).gan('dcgan_tf').checkpoints


def test_replica_k_equals_the_single_seed_run_of_seed_k(root):
  stacked, single = final_state(checkpoints_of(root / 'replicas')), final_state(
      checkpoints_of(root / 'single'))
  assert int(single['step']) == 12
  k = SEEDS.index(SINGLE)
  for a, b in zip(jax.tree.leaves(stacked), jax.tree.leaves(single), strict=True):
    np.testing.assert_allclose(a[k], b, rtol=0, atol=PARAMS_ATOL)
  # The other replica is another run: its own initialisation, noise and data order.
  first_kernel = lambda state: jax.tree.leaves(state['d_params'])[-1]
  assert not np.allclose(first_kernel(stacked)[1 - k], first_kernel(single))


def test_a_killed_multi_seed_run_resumes_to_the_same_parameters(root):
  assert (root / 'killed' / 'resumed_from_step').read_text() == '8'
  got, want = final_state(checkpoints_of(root / 'killed')), final_state(
      checkpoints_of(root / 'replicas'))
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    assert a.shape[:1] == (len(SEEDS),)
    np.testing.assert_array_equal(a, b)


def test_resuming_with_other_seeds_names_both(root, tfds_data_dir, tmp_path):
  shutil.copytree(root / 'replicas', tmp_path / 'replicas')
  with pytest.raises(UserError, match=r'seeds \[0, 3\].*asks for seeds \[3\]'):
    train(tiny_config(tfds_data_dir, (SINGLE,)), tmp_path / 'replicas', MESH)


def test_a_stacked_checkpoint_restores_only_as_a_chosen_replica(root):
  config = tiny_config('', SEEDS)
  run = Workdir(root / 'replicas').gan('dcgan_tf')
  with pytest.raises(UserError, match='choose one replica'):
    restore.restore_gan(config.gans.dcgan_tf, run, 'dcgan_tf', [12], MESH)
  gan = restore.restore_gan(config.gans.dcgan_tf, run, 'dcgan_tf', [12], MESH, replica=1)
  single = final_state(checkpoints_of(root / 'single'))
  for a, b in zip(jax.tree.leaves(gan.d_variables['params']),
                  jax.tree.leaves(single['d_params']), strict=True):
    np.testing.assert_allclose(a[0], b, rtol=0, atol=PARAMS_ATOL)


def test_evaluation_gives_intervals_whose_values_are_each_seeds_run(root, tfds_data_dir,
                                                                     tmp_path):
  for run in ('replicas', 'single'):
    shutil.copytree(root / run, tmp_path / run)
  config = tiny_config(tfds_data_dir, SEEDS)
  reals = pipeline.load_study_splits(config.data, config.seed)
  combined = dcgan.evaluate(config, Workdir(tmp_path / 'replicas'), 'latest', MESH,
                            reals)['dcgan_tf'][-1]
  single = dcgan.evaluate(tiny_config(tfds_data_dir, (SINGLE,)), Workdir(tmp_path / 'single'),
                          'latest', MESH, reals)['dcgan_tf'][-1]
  auc = combined['splits']['own_fakes_vs_reals']['threshold_free']['roc_auc']
  want = single['splits']['own_fakes_vs_reals']['threshold_free']['roc_auc']
  assert combined['seeds'] == list(SEEDS)
  assert intervals.is_interval(auc) and len(auc['values']) == len(SEEDS)
  assert auc['values'][SEEDS.index(SINGLE)] == pytest.approx(want, abs=1e-3)
  run = Workdir(tmp_path / 'replicas').gan('dcgan_tf')
  assert json.loads(run.report_json(12).read_text())['seeds'] == list(SEEDS)
  for seed in SEEDS:
    assert (run.eval_dir(12) / f'seed_{seed}' / 'roc_curves.png').is_file()
  # Each replica is a detector of `predict`, with its own seed's thresholds.
  (tmp_path / 'replicas' / 'config.json').write_text(config.to_json_best_effort())
  detector = predict.load_detector(tmp_path / 'replicas', f'D:dcgan_tf/seed_{SINGLE}', -1,
                                   'youden', batch_size=16)
  seed_report = combined['thresholds']['youden']['values'][SEEDS.index(SINGLE)]
  assert detector.threshold == pytest.approx(seed_report)
  images = IMAGES[:16]
  want = restore.gan_scorer(restore.restore_gan(config.gans.dcgan_tf, run, 'dcgan_tf', [12], MESH,
                                                replica=SEEDS.index(SINGLE)), MESH, 16)
  np.testing.assert_allclose(detector.scorer.score(images)[0], want.score(images)[0])
  with pytest.raises(UserError, match='D:dcgan_tf/seed_0'):
    predict.load_detector(tmp_path / 'replicas', 'D:dcgan_tf', -1, 'youden', batch_size=16)


def test_each_replica_is_scored_on_its_own_replicas_other_fakes(root, tfds_data_dir, tmp_path):
  for run in ('replicas', 'single'):
    shutil.copytree(root / run, tmp_path / run)
  config = tiny_config(tfds_data_dir, SEEDS)
  config.evals.other_gan_fakes = dict(reals='', fakes='others')
  reals = pipeline.load_study_splits(config.data, config.seed)
  settings = common.eval_settings(config)
  settings = dataclasses.replace(settings, generators=(*settings.generators, 'other'))
  num_fakes = config.evaluation.num_fake_samples
  # Replica 0's other generator makes noise, replica 1's flat grey: their recalls differ.
  others = np.stack([np.random.default_rng(1).integers(0, 255, (num_fakes, 28, 28, 1), np.uint8),
                     np.full((num_fakes, 28, 28, 1), 128, np.uint8)])
  evaluate = lambda workdir, seeds, fakes: discriminators.evaluate_discriminators(
      config.gans, Workdir(tmp_path / workdir), 'latest', reals=reals,
      settings=settings, seed=config.seed, mesh=MESH, other_fakes={'other': fakes},
      seeds=seeds)['dcgan_tf']
  replicated = evaluate('replicas', SEEDS, others)
  assert [r['step'] for r in replicated] == [12, 12]
  k = SEEDS.index(SINGLE)
  (single,) = evaluate('single', (), others[k])
  recall = lambda report: (
      report['splits']['other_gan_fakes']['at_threshold']['youden']['generated']['recall'])
  assert recall(replicated[k]) == pytest.approx(recall(single), abs=1e-6)
  assert recall(replicated[0]) != pytest.approx(recall(replicated[1]), abs=1e-6)
  with pytest.raises(UserError, match=r'hold one seed, not the replicas of config.seeds \[0, 3\]'):
    evaluate('single', SEEDS, others)


def test_t_interval_of_known_values():
  got = intervals.t_interval([1.0, 2.0, 3.0])
  # mean 2, sample sd 1, t(0.975, 2 dof) = 4.3027.
  assert got['mean'] == 2.0
  assert got['half_width'] == pytest.approx(4.3027 / math.sqrt(3), rel=1e-4)
  assert math.isnan(intervals.t_interval([5.0])['half_width'])


def test_combine_keeps_shared_values_makes_intervals_and_drops_per_seed_curves():
  reports = [{'step': 4, 'auc': a, 'support': 10, 'curve': [a, 1.0], 'name': 'x'}
             for a in (0.5, 0.7)]
  got = intervals.combine(reports)
  assert got['step'] == 4 and got['support'] == 10 and got['name'] == 'x'
  assert got['auc']['values'] == [0.5, 0.7] and 'curve' not in got
  assert intervals.format_value(got['auc']) == '0.60 ± 1.27'


@pytest.mark.parametrize('seeds', [(1, 1), (0, 'one')])
def test_bad_seeds_are_named(seeds):
  config = dcgan_fmnist.get_config('tiny')
  config.seeds = seeds
  with pytest.raises(config_lib.ConfigError, match="'seeds' must hold distinct integers"):
    config_lib.check_seeds(config)


def seeds_report(accuracies):
  interval = intervals.t_interval(accuracies)
  split = {'at_threshold': {'default_0.5': {'accuracy': interval}}}
  return {'step': 1, 'seeds': [0, 1, 2], 'splits': {'own_fakes_vs_reals': split}}


def test_compare_runs_says_whether_two_configs_differ_beyond_their_seeds():
  from tools import compare_runs
  base = seeds_report([0.50, 0.52, 0.51])
  far, near = seeds_report([0.90, 0.91, 0.93]), seeds_report([0.49, 0.53, 0.52])
  rows = lambda other: [line for line in compare_runs.difference_markdown(
      ('a', {'g': base}), ('b', {'g': other})).splitlines() if line.startswith('| g | accuracy')]
  assert rows(far)[0].endswith('| yes |') and rows(near)[0].endswith('| no |')
  assert "Welch's t-test" in compare_runs.difference_markdown(('a', {'g': base}), ('b', {'g': far}))


def test_a_generator_of_another_family_trains_as_replicas_too(tmp_path):
  config = dcgan_fmnist.get_config('tiny')
  vae = dcgan_fmnist.GENERATOR_CONFIGS['vae']('tiny')
  vae.batch_size, vae.num_epochs = 8, 1
  train_vae = lambda seeds, root: generator_trainer.train_generator(
      'vae', vae, loop.LoopSettings.from_config(config, seeds=seeds), IMAGES,
      Workdir(root).generator('vae'), MESH)
  replicated = train_vae(SEEDS, tmp_path / 'replicas')
  single = train_vae((SINGLE,), tmp_path / 'single')
  k = SEEDS.index(SINGLE)
  restored = generator_trainer.restore_generator('vae', vae, IMAGES.shape[1:],
                                                 Workdir(tmp_path / 'replicas').generator('vae'),
                                                 MESH, replica=k)
  for got in (replicated.replica(k).sampling_variables, restored.sampling_variables):
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(single.sampling_variables),
                    strict=True):
      np.testing.assert_allclose(a, b, rtol=0, atol=PARAMS_ATOL)


def test_quality_rows_of_replicas_gain_a_row_across_their_seeds():
  run = lambda model: types.SimpleNamespace(name=model)
  rows = {f'g_seed_{s}': {'frechet_distance': fd, 'precision': 0.5, 'recall': 0.1 * s}
          for s, fd in ((0, 10.0), (1, 12.0), (2, 14.0))}
  rows['other'] = {'frechet_distance': 3.0, 'precision': 0.9, 'recall': 0.9}
  runs = {name: run('g') for name in rows if name != 'other'}
  runs['other'] = run('other')  # One seed: no row across seeds.
  (name, (replica, row)), = dcgan.across_seeds(rows, runs).items()
  assert name == 'g (3 seeds)' and replica == 'g_seed_0'
  assert row['frechet_distance']['mean'] == 12.0 and row['precision'] == 0.5
  assert row['recall']['values'] == pytest.approx([0.0, 0.1, 0.2])


@pytest.fixture(scope='module')
def classifier_seeds_study(finished_run, tfds_data_dir, tmp_path_factory):
  """The tiny detectors study on the session's GANs, its classifiers trained as replicas of
  SEEDS: the two that hold each family out."""
  def build(workdir):
    dedicated.run(detectors_seeds_config(finished_run, tfds_data_dir), workdir)
  return shared_folder(tmp_path_factory, 'classifier_seeds_study', build)


def detectors_seeds_config(gan_workdir, tfds_data_dir):
  config = detectors_fmnist.get_config('tiny')
  config.data.data_dir, config.data.allow_download = tfds_data_dir, False
  config.gan_workdir, config.seeds = str(gan_workdir), SEEDS
  config.train_sets = {name: config.train_sets[name] for name in ('pooled_dcgans', 'autogan_d1')}
  return config


def test_classifier_study_tables_give_intervals_over_each_replicas_report(
    classifier_seeds_study):
  study = classifier_seeds_study
  rows = json.loads((study / dedicated.GENERALISATION_JSON).read_text())
  for row in rows[:2]:  # The classifiers; the discriminators after them are one seed.
    assert row['seeds'] == list(SEEDS)
    step_dir = next((study / 'classifiers' / row['detector'] / 'eval').iterdir())
    for k, seed in enumerate(SEEDS):
      splits = json.loads((step_dir / f'seed_{seed}' / 'report.json').read_text())['splits']
      for generator in ('dcgan_tf', 'autogan_d1'):
        ap = row['average_precision'][generator]  # A number where all seeds agree.
        values = ap['values'] if intervals.is_interval(ap) else [ap] * len(SEEDS)
        assert values[k] == splits[f'fakes_{generator}']['threshold_free']['average_precision']
  held_out = json.loads((study / dedicated.HELD_OUT_JSON).read_text())
  worst = held_out['summary'][1]['average_precision']
  per_family = [row['average_precision'] for row in held_out['families']]
  # The worst family of each seed, then the interval across seeds.
  assert worst['values'] == pytest.approx([min(v['values'][k] for v in per_family)
                                           for k in range(len(SEEDS))])
  assert '±' in (study / dedicated.HELD_OUT_MD).read_text()
  assert f'Seeds {list(SEEDS)}' in (study / dedicated.GENERALISATION_MD).read_text()
  # compare_runs reads a classifier study's replicas too: a run against itself differs not.
  from tools import compare_runs
  reports = compare_runs.latest_reports(study)
  assert reports['pooled_dcgans']['seeds'] == list(SEEDS)
  difference = compare_runs.difference_markdown(('a', reports), ('b', reports))
  assert '| pooled_dcgans | accuracy | +0.000 | 1.000 | no |' in difference


def test_each_classifier_replica_is_a_detector_with_its_own_thresholds(classifier_seeds_study):
  study = classifier_seeds_study
  detector = predict.load_detector(study, f'pooled_dcgans/seed_{SINGLE}', -1, 'youden',
                                   batch_size=16)
  step_dir = next((study / 'classifiers' / 'pooled_dcgans' / 'eval').iterdir())
  seed_report = json.loads((step_dir / f'seed_{SINGLE}' / 'report.json').read_text())
  assert detector.threshold == pytest.approx(seed_report['thresholds']['youden'])
  other = predict.load_detector(study, f'pooled_dcgans/seed_{SEEDS[0]}', -1, 'youden',
                                batch_size=16)
  assert not np.allclose(detector.scorer.score(IMAGES[:16])[0], other.scorer.score(IMAGES[:16])[0])
  with pytest.raises(UserError, match=f'pooled_dcgans/seed_{SEEDS[0]}'):
    predict.load_detector(study, 'pooled_dcgans', -1, 'youden', batch_size=16)
  # The evaluation scores all replicas in one call, replica-major: row k is replica k's.
  config = restore.workdir_config(Workdir(study))
  entry = detectors.find_detector(config, Workdir(study), f'pooled_dcgans/seed_{SEEDS[0]}')
  together = detectors.restore_replicas(config, entry, entry.run.steps()[-1:], MESH, 16)
  np.testing.assert_allclose(together.scorer.score(IMAGES[:16])[SEEDS.index(SINGLE)],
                             detector.scorer.score(IMAGES[:16])[0], atol=1e-6)
  config.seeds = (*SEEDS, 7)
  with pytest.raises(UserError, match=r'seeds \[0, 3\], not the replicas of config.seeds \[0, 3, 7\]'):
    detectors.restore_replicas(config, entry, entry.run.steps()[-1:], MESH, 16)


def test_a_classifier_study_refuses_a_gan_workdir_of_several_seeds(root):
  run = Workdir(root / 'replicas').gan('dcgan_tf')
  with pytest.raises(UserError, match=r"GAN 'dcgan_tf' .* replicas of seeds \[0, 3\].*one seed"):
    common.latest_step(run, 'GAN', 'dcgan_tf')
  assert common.latest_step(Workdir(root / 'single').gan('dcgan_tf'), 'GAN', 'dcgan_tf') == 12
