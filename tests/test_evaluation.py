"""The evaluation module on real checkpoints (initial states saved at two steps)."""

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from fakejax import sharding, studies
from fakejax.data import pipeline
from fakejax.evaluation import discriminators, report, restore, scoring
from fakejax.models import build_gan
from fakejax.studies import common
from fakejax.train import checkpoints, gan_trainer, optimizers
from fakejax.workdir import RunDir, Workdir


def save_untrained_checkpoints(config, workdir, steps_and_seeds):
  mesh = sharding.build_mesh()
  for name, gan_config in config.gans.items():
    models = build_gan(gan_config.architecture)
    tx = optimizers.from_config(gan_config.optimizer)
    manager = checkpoints.checkpoint_manager(workdir / name / 'checkpoints', max_to_keep=None,
                                             save_interval_steps=1)
    for step, seed in steps_and_seeds:
      state = gan_trainer.init_sharded_state(models, tx, gan_config.latent_dim, seed, mesh)
      checkpoints.save(manager, step, state, {'next_index': step})
    manager.wait_until_finished()


@pytest.fixture(scope='module')
def checkpointed(tmp_path_factory, tfds_data_dir):
  from configs import dcgan_fmnist
  config = dcgan_fmnist.get_config('tiny')
  config.data.data_dir = tfds_data_dir
  config.data.allow_download = False
  workdir = tmp_path_factory.mktemp('checkpointed')
  save_untrained_checkpoints(config, workdir, [(10, 1), (20, 2)])
  return config, workdir


def evaluate_workdir(config, workdir, which_steps):
  """The discriminators' reports of a DCGAN-study workdir, as the study evaluates them."""
  return discriminators.evaluate_discriminators(
      config.gans, Workdir(workdir), which_steps,
      reals=pipeline.load_study_splits(config.data, config.seed),
      settings=common.eval_settings(config), seed=config.seed, mesh=sharding.build_mesh())


def numbers(gan_report) -> list[float]:
  """Every number of a report, in a fixed order (mistake images excluded)."""
  leaves = jax.tree.leaves({k: v for k, v in gan_report.items() if k != 'mistakes'})
  return [float(leaf) for leaf in leaves if isinstance(leaf, (int, float))]


def test_stacked_checkpoints_give_the_numbers_of_each_checkpoint_alone(checkpointed):
  config, workdir = checkpointed
  together = evaluate_workdir(config, workdir, 'all')
  alone_10 = evaluate_workdir(config, workdir, '10')
  for name in config.gans:
    assert [r['step'] for r in together[name]] == [10, 20]
    alone = alone_10[name]
    assert len(alone) == 1
    np.testing.assert_allclose(numbers(alone[0]), numbers(together[name][0]),
                               rtol=1e-5, atol=1e-6)
    # Different checkpoints really are different detectors.
    assert (together[name][0]['splits']['seen_class_reals']['threshold_free']
            != together[name][1]['splits']['seen_class_reals']['threshold_free'])


def test_a_bfloat16_config_scores_float32_checkpoints_in_bfloat16(checkpointed):
  config, workdir = checkpointed
  mixed = config.copy_and_resolve_references()
  mixed.gans.dcgan_radford.compute_dtype = 'bfloat16'
  mesh = sharding.build_mesh()
  images = np.random.default_rng(0).integers(0, 256, (64, 28, 28, 1), dtype=np.uint8)
  scores = {}
  for dtype, gan_config in (('float32', config), ('bfloat16', mixed)):
    gan = restore.restore_gan(gan_config.gans.dcgan_radford, Workdir(workdir).gan('dcgan_radford'),
                              'dcgan_radford', [20], mesh)
    assert gan.models.discriminator.dtype == jnp.dtype(dtype)
    scores[dtype] = restore.gan_scorer(gan, mesh, batch_size=64).score(images)
  assert scores['bfloat16'].dtype == np.float32
  assert not np.array_equal(scores['bfloat16'], scores['float32'])
  np.testing.assert_allclose(scores['bfloat16'], scores['float32'], atol=0.01)


@pytest.fixture(scope='module')
def latest_reports(checkpointed):
  config, workdir = checkpointed
  return evaluate_workdir(config, workdir, 'latest')


def test_reports_are_written_as_json_markdown_and_plots(latest_reports, tmp_path):
  gan_report = latest_reports['dcgan_tf'][0]
  out = report.write_checkpoint_report(RunDir(tmp_path), gan_report)
  loaded = json.loads((out / 'report.json').read_text())
  assert loaded['step'] == 20
  assert loaded['thresholds']['default_0.5'] == 0.5
  table = (out / 'report.md').read_text()
  assert '| generated |' in table and 'weighted avg' in table
  for plot in ('confusion_matrices', 'roc_curves', 'score_histograms', 'most_confident_mistakes'):
    assert (out / f'{plot}.png').stat().st_size > 1000


def test_operating_points_are_ordered_by_threshold(latest_reports):
  gan_report = latest_reports['dcgan_radford'][0]
  thresholds = gan_report['thresholds']
  assert set(thresholds) == {'default_0.5', 'youden', 'fake_recall_0.95', 'review_budget_0.02',
                             'review_budget_0.01', 'review_budget_0.05'}
  budgets = [thresholds[f'review_budget_{b}'] for b in ('0.01', '0.02', '0.05')]
  assert budgets == sorted(budgets, reverse=True)  # A larger budget: a lower threshold.
  points = gan_report['operating_points']
  for point in points.values():
    assert 0.0 <= point['review_load'] <= 1.0
  # A lower threshold flags at least as many uploads.
  ordered = sorted(points.values(), key=lambda p: p['threshold'])
  loads = [p['review_load'] for p in ordered]
  assert loads == sorted(loads, reverse=True)


def test_fakes_from_an_image_folder_skip_unreadable_files(checkpointed, tmp_path):
  config, workdir = checkpointed
  folder = tmp_path / 'uploads'
  folder.mkdir()
  rng = np.random.default_rng(0)
  for i in range(5):
    Image.fromarray(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)).save(folder / f'{i}.png')
  (folder / 'truncated.png').write_bytes((folder / '0.png').read_bytes()[:60])
  (folder / 'notes.jpg').write_text('not an image')
  (folder / 'empty.webp').write_bytes(b'')
  config = config.copy_and_resolve_references()
  config.evals.folder_fakes = dict(reals='', fakes=f'folder:{folder}')
  gan_report = evaluate_workdir(config, workdir, 'latest')['dcgan_tf'][0]
  split = gan_report['splits']['folder_fakes']
  assert split['support'] == {'real': 0, 'generated': 5}
  assert split['paired_with'] == 'all test reals'


def test_a_damaged_checkpoint_is_named_with_its_step_and_the_intact_ones(checkpointed, tmp_path):
  config, workdir = checkpointed
  shutil.copytree(workdir, tmp_path / 'copy')
  run = Workdir(tmp_path / 'copy').gan('dcgan_tf')
  state_dir = run.checkpoints / '20' / 'state'
  largest = max((p for p in state_dir.rglob('*') if p.is_file()), key=lambda p: p.stat().st_size)
  data = bytearray(largest.read_bytes())
  data[len(data) // 2:len(data) // 2 + 64] = bytes(64)
  largest.write_bytes(bytes(data))
  with pytest.raises(checkpoints.CheckpointCorruptError,
                     match=r'step 20 in .*copy/dcgan_tf/checkpoints/20 .*Intact steps: \[10\]'):
    restore.restore_gan(config.gans.dcgan_tf, run, 'dcgan_tf', [20], sharding.build_mesh())


def test_missing_checkpoint_is_a_clear_error(checkpointed, tmp_path):
  config, _ = checkpointed
  with pytest.raises(checkpoints.CheckpointNotFoundError, match='No checkpoint of GAN'):
    evaluate_workdir(config, tmp_path, 'latest')
  _, workdir = checkpointed
  with pytest.raises(checkpoints.CheckpointNotFoundError, match=r'steps \[15\]'):
    evaluate_workdir(config, workdir, '15')


def test_workdirs_from_before_configs_named_their_experiment_still_load(tiny_config, tmp_path):
  values = tiny_config.to_dict()
  del values['experiment']
  for gan in values['gans'].values():
    del gan['compute_dtype']
  (tmp_path / 'config.json').write_text(json.dumps(values))
  config = restore.workdir_config(Workdir(tmp_path))
  assert config.experiment == 'dcgan_detectors'
  assert {gan.compute_dtype for gan in config.gans.values()} == {'float32'}
  studies.validate(config, num_devices=8)


@pytest.mark.parametrize('num_images', [1000, 999, 64])
def test_scoring_in_chunks_gives_the_same_scores_on_every_shard_layout(num_images):
  mesh = sharding.build_mesh()
  score = lambda variables, images: (images.astype(jnp.float32).mean(axis=(1, 2, 3))
                                     * variables['scale'])
  images = np.random.default_rng(0).integers(0, 256, (num_images, 4, 4, 1), dtype=np.uint8)
  chunked = jax.jit(scoring.in_chunks(score, mesh.size, chunk_size=25))
  if num_images % mesh.size == 0:  # As the Scorer places them: split over the devices.
    images = jax.device_put(images, sharding.batch_sharded(mesh))
  np.testing.assert_allclose(chunked({'scale': 2.0}, images), score({'scale': 2.0}, images),
                             rtol=1e-6)


def test_image_mosaic_puts_each_image_under_its_caption_band_on_white():
  images = np.arange(1, 4, dtype=np.uint8)[:, None, None, None] * np.ones((3, 4, 6, 1), np.uint8)
  mosaic = report.image_mosaic(images, columns=2, gap=1, band=2)
  assert mosaic.shape == (2 * (2 + 4), 2 * 6 + 1, 3)
  np.testing.assert_array_equal(mosaic[2:6, 0:6], 1)
  np.testing.assert_array_equal(mosaic[2:6, 7:13], 2)
  np.testing.assert_array_equal(mosaic[8:12, 0:6], 3)
  for blank in (mosaic[:2], mosaic[6:8], mosaic[:, 6], mosaic[8:, 7:]):  # Bands, gap, no image.
    assert (blank == 255).all()
