"""`python -m fakejax.predict` on a tiny trained workdir and a folder of uploads."""

import json
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from fakejax import detectors, predict
from fakejax.data import fashion_mnist
from fakejax.evaluation import restore
from fakejax.workdir import Workdir
from tests.conftest import REPO_ROOT, TWO_DEVICES

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


# `python -m fakejax.predict ARGS`, saying at exit whether TensorFlow was loaded: predict
# writes no TensorBoard files, so it never should (importing it takes seconds).
PREDICT_NOTING_TENSORFLOW = '''
import atexit, runpy, sys
atexit.register(lambda: 'tensorflow' in sys.modules and print(TENSORFLOW_LOADED, file=sys.stderr))
runpy.run_module('fakejax.predict', run_name='__main__', alter_sys=True)
'''
TENSORFLOW_LOADED = 'TensorFlow was loaded'


def run_predict(workdir, *args) -> subprocess.CompletedProcess:
  result = subprocess.run(
      [sys.executable, '-c', PREDICT_NOTING_TENSORFLOW.replace(
          'TENSORFLOW_LOADED', repr(TENSORFLOW_LOADED)), f'--workdir={workdir}', *args],
      cwd=REPO_ROOT, env=TWO_DEVICES, capture_output=True, text=True, timeout=600)
  assert TENSORFLOW_LOADED not in result.stderr
  return result


# (workdir fixture, detector name): a GAN's discriminator in the DCGAN study's workdir and
# in a classifier study's (whose GANs live in its gan_workdir), a dedicated classifier,
# and an autoencoder-study classifier whose input is a residual under a frozen autoencoder.
DETECTORS = [('finished_run', f'D:{GAN}'), ('detectors_study', f'D:{GAN}'),
             ('detectors_study', 'pooled_all'), ('autogan_study', 'residual@depth1')]


def workdir_of(request, fixture: str):
  return request.getfixturevalue(fixture)


@pytest.mark.parametrize('fixture,name', DETECTORS[1:])
def test_rows_for_good_files_and_error_rows_for_bad_ones(request, fixture, name, uploads,
                                                        tmp_path):
  workdir = workdir_of(request, fixture)
  result = run_predict(workdir, f'--detector={name}', '--operating_point=youden',
                       f'--output={tmp_path / "rows.jsonl"}',
                       f'--contact_sheet={tmp_path / "flagged.png"}', str(uploads))
  assert result.returncode == predict.ERRORS_EXIT_CODE, result.stderr[-3000:]
  rows = {pathlib_name(r['path']): r for r in map(json.loads, open(tmp_path / 'rows.jsonl'))}
  assert set(rows) == {'gray_28.png', 'rgb.jpg', 'rgba.png', 'big.webp', 'truncated.png',
                       'notes.jpg', 'empty.png'}
  entry = detectors.find_detector(restore.workdir_config(Workdir(workdir)), Workdir(workdir), name)
  step = entry.run.steps()[-1]
  # Thresholds chosen on this workdir's own validation split, never another study's.
  assert entry.reports.path.is_relative_to(workdir)
  report = json.loads(entry.reports.report_json(step).read_text())
  for image_name in ('gray_28.png', 'rgb.jpg', 'rgba.png', 'big.webp'):
    row = rows[image_name]
    assert 0.0 <= row['fake_probability'] <= 1.0
    assert row['decision'] == ('generated' if row['fake_probability'] >= row['threshold']
                               else 'real')
    assert row['threshold'] == report['thresholds']['youden']
    assert row['checkpoint_step'] == step and row['error'] == ''
    assert row['model'].startswith(name)
  for image_name in ('truncated.png', 'notes.jpg', 'empty.png'):
    assert rows[image_name]['decision'] == 'error'
    assert rows[image_name]['error']
  assert '3 could not be read' in result.stderr
  assert (tmp_path / 'flagged.png').stat().st_size > 0


def pathlib_name(path: str) -> str:
  return path.rsplit('/', 1)[-1]


@pytest.mark.parametrize('fixture,name', DETECTORS)
def test_scores_equal_the_evaluation_modules(request, fixture, name, tmp_path):
  """Predict reads files; the evaluation scores arrays with the restored detector."""
  workdir = workdir_of(request, fixture)
  images = fashion_mnist.read_idx_split('/usr/share/datasets/fashion-mnist', 'test').images[:40]
  paths = []
  for index, image in enumerate(images):
    paths.append(tmp_path / f'{index:03d}.png')
    Image.fromarray(image[..., 0]).save(paths[-1])
  (tmp_path / 'list.txt').write_text('\n'.join(map(str, paths)) + '\n')
  detector = predict.load_detector(workdir, name, -1, '0.5', batch_size=16)
  rows = list(predict.score_paths(detector, predict.expand_paths([str(tmp_path / 'list.txt')]),
                                  batch_size=16))
  config = restore.workdir_config(Workdir(workdir))
  entry = detectors.find_detector(config, Workdir(workdir), name)
  restored = detectors.restore_detector(config, entry, entry.run.steps()[-1:],
                                        detector.scorer.mesh, config.evaluation.batch_size)
  p_real = restored.scorer.score(images)[0]
  np.testing.assert_allclose([r['fake_probability'] for r in rows], 1.0 - p_real, atol=1e-6)
  # The detector restored twice is compiled once.
  assert restored.scorer._score_shared is detector.scorer._score_shared
  assert [r['threshold'] for r in rows] == [0.5] * 40


def test_missing_checkpoint_is_a_clear_error_before_any_work(finished_run, uploads):
  workdir = finished_run
  result = run_predict(workdir, f'--detector=D:{GAN}', '--checkpoint_step=999', str(uploads))
  assert result.returncode == 1
  assert f'No checkpoint of D:{GAN} at step 999' in result.stderr
  assert 'Traceback' not in result.stderr
  assert result.stdout == ''


def test_several_detectors_need_a_choice_and_the_error_lists_them(detectors_study, uploads):
  result = run_predict(detectors_study, str(uploads))
  assert result.returncode == 1
  assert 'choose one with --detector' in result.stderr
  for name in ('pooled_all', 'pooled_dcgans', f'D:{GAN}', 'D:dcgan_radford'):
    assert f"'{name}'" in result.stderr
  assert 'Traceback' not in result.stderr


def test_a_damaged_checkpoint_is_named_with_the_intact_steps(finished_run, uploads, tmp_path):
  workdir = finished_run
  copy = tmp_path / 'copy'
  shutil.copytree(workdir / GAN / 'checkpoints', copy / GAN / 'checkpoints')
  shutil.copy(workdir / 'config.json', copy / 'config.json')
  run = Workdir(copy).gan(GAN)
  latest = run.steps()[-1]
  flip_bytes_of_largest_file(run.checkpoints / str(latest) / 'state')
  result = run_predict(copy, f'--detector=D:{GAN}', '--operating_point=0.5', str(uploads))
  assert result.returncode == 1, result.stderr[-3000:]
  assert f'step {latest} in {run.checkpoints / str(latest)}' in result.stderr
  assert f'Intact steps: {run.steps()[:-1]}' in result.stderr and len(run.steps()) > 1
  assert 'Traceback' not in result.stderr


def flip_bytes_of_largest_file(folder: pathlib.Path) -> None:
  largest = max((p for p in folder.rglob('*') if p.is_file()), key=lambda p: p.stat().st_size)
  data = bytearray(largest.read_bytes())
  middle = len(data) // 2
  data[middle:middle + 64] = bytes(255 - b for b in data[middle:middle + 64])
  largest.write_bytes(bytes(data))
