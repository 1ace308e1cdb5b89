"""`python -m fakejax.predict` on a tiny trained workdir and a folder of uploads."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from fakejax import predict
from fakejax.data import fashion_mnist
from fakejax.evaluation import evaluator
from tests.conftest import REPO_ROOT, TINY_STEPS, TWO_DEVICES

GAN = 'dcgan_tf'


@pytest.fixture(scope='module')
def uploads(tmp_path_factory):
  """Good images of every kind, and three files that cannot be read."""
  folder = tmp_path_factory.mktemp('uploads')
  real = fashion_mnist.read_idx_split('/usr/share/datasets/fashion-mnist', 'test').images
  Image.fromarray(real[0, ..., 0]).save(folder / 'gray_28.png')
  Image.fromarray(np.repeat(real[1], 3, axis=2)).resize((50, 40)).save(folder / 'rgb.jpg')
  rgba = np.concatenate([np.repeat(real[2], 3, axis=2), np.full((28, 28, 1), 255, np.uint8)], 2)
  (folder / 'nested').mkdir()
  Image.fromarray(rgba).save(folder / 'nested' / 'rgba.png')
  Image.fromarray(real[3, ..., 0]).resize((64, 64)).save(folder / 'big.webp')
  (folder / 'truncated.png').write_bytes((folder / 'gray_28.png').read_bytes()[:50])
  (folder / 'notes.jpg').write_text('this is not an image')
  (folder / 'empty.png').write_bytes(b'')
  return folder


def run_predict(workdir, *args) -> subprocess.CompletedProcess:
  return subprocess.run(
      [sys.executable, '-m', 'fakejax.predict', f'--workdir={workdir}', *args], cwd=REPO_ROOT,
      env=TWO_DEVICES, capture_output=True, text=True, timeout=600)


def test_rows_for_good_files_and_error_rows_for_bad_ones(finished_run, uploads, tmp_path):
  workdir, _ = finished_run
  result = run_predict(workdir, f'--gan={GAN}', '--operating_point=youden',
                       f'--output={tmp_path / "rows.jsonl"}',
                       f'--contact_sheet={tmp_path / "flagged.png"}', str(uploads))
  assert result.returncode == predict.ERRORS_EXIT_CODE, result.stderr[-3000:]
  rows = {pathlib_name(r['path']): r for r in map(json.loads, open(tmp_path / 'rows.jsonl'))}
  assert set(rows) == {'gray_28.png', 'rgb.jpg', 'rgba.png', 'big.webp', 'truncated.png',
                       'notes.jpg', 'empty.png'}
  report = json.loads((workdir / GAN / 'eval' / str(TINY_STEPS) / 'report.json').read_text())
  for name in ('gray_28.png', 'rgb.jpg', 'rgba.png', 'big.webp'):
    row = rows[name]
    assert 0.0 <= row['fake_probability'] <= 1.0
    assert row['decision'] == ('generated' if row['fake_probability'] >= row['threshold']
                               else 'real')
    assert row['threshold'] == report['thresholds']['youden']
    assert row['checkpoint_step'] == TINY_STEPS and row['error'] == ''
  for name in ('truncated.png', 'notes.jpg', 'empty.png'):
    assert rows[name]['decision'] == 'error'
    assert rows[name]['error']
  assert '3 could not be read' in result.stderr
  assert (tmp_path / 'flagged.png').stat().st_size > 0


def pathlib_name(path: str) -> str:
  return path.rsplit('/', 1)[-1]


def test_scores_equal_the_evaluation_modules(finished_run, tmp_path):
  workdir, _ = finished_run
  images = fashion_mnist.read_idx_split('/usr/share/datasets/fashion-mnist', 'test').images[:40]
  paths = []
  for index, image in enumerate(images):
    paths.append(tmp_path / f'{index:03d}.png')
    Image.fromarray(image[..., 0]).save(paths[-1])
  (tmp_path / 'list.txt').write_text('\n'.join(map(str, paths)) + '\n')
  detector = predict.load_detector(workdir, GAN, -1, '0.5', batch_size=16)
  rows = list(predict.score_paths(detector, predict.expand_paths([str(tmp_path / 'list.txt')]),
                                  batch_size=16))
  config = evaluator.workdir_config(workdir)
  gan = evaluator.restore_gan(config, workdir, GAN, [TINY_STEPS], detector.scorer.mesh)
  p_real = evaluator.gan_scorer(gan, detector.scorer.mesh, 64).score(images)[0]
  np.testing.assert_allclose([r['fake_probability'] for r in rows], 1.0 - p_real, atol=1e-6)
  assert [r['threshold'] for r in rows] == [0.5] * 40


def test_missing_checkpoint_is_a_clear_error_before_any_work(finished_run, uploads):
  workdir, _ = finished_run
  result = run_predict(workdir, f'--gan={GAN}', '--checkpoint_step=999', str(uploads))
  assert result.returncode == 1
  assert 'No checkpoint of dcgan_tf at step 999' in result.stderr
  assert result.stdout == ''


def test_several_gans_need_a_choice(finished_run, uploads):
  workdir, _ = finished_run
  result = run_predict(workdir, str(uploads))
  assert result.returncode == 1
  assert 'choose one with --gan' in result.stderr
