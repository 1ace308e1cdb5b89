"""Fake pools and user folders stored as TFDS ArrayRecord image sets, and read back."""

import json
import subprocess
import sys

import numpy as np
import pytest

from fakejax.data import folders, image_sets
from tests.conftest import REPO_ROOT, TWO_DEVICES, make_face_folder


def fakes_of(seed: int) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(seed)
  return {split: rng.integers(0, 256, (count, 28, 28, 1), dtype=np.uint8)
          for split, count in (('train', 6), ('validation', 3), ('test', 4))}


DESCRIPTION = {'generators': {'gan_a': {'checkpoint_step': 10}, 'gan_b': {'checkpoint_step': 12}},
               'num_train': 6, 'num_validation_and_test': 3, 'seed': 0}


def test_a_fake_pool_keeps_every_fake_with_its_generators_name(tmp_path):
  fakes = {'gan_a': fakes_of(0), 'gan_b': fakes_of(1)}
  image_sets.write_fake_pool(tmp_path / 'pool', fakes, DESCRIPTION)
  assert image_sets.is_prepared(tmp_path / 'pool')
  pool = image_sets.read_fake_pool(tmp_path / 'pool', DESCRIPTION)
  for name in fakes:
    for split in ('train', 'validation', 'test'):
      np.testing.assert_array_equal(pool[name][split], fakes[name][split])  # PNG: lossless.
  test = image_sets.read_split(tmp_path / 'pool', 'test')
  assert sorted(set(test.sources)) == ['gan_a', 'gan_b'] and len(test.images) == 8


def test_a_pool_made_differently_is_refused_not_reused(tmp_path):
  image_sets.write_fake_pool(tmp_path / 'pool', {'gan_a': fakes_of(0), 'gan_b': fakes_of(1)},
                             DESCRIPTION)
  newer = {**DESCRIPTION, 'generators': {**DESCRIPTION['generators'],
                                         'gan_b': {'checkpoint_step': 20}}}
  with pytest.raises(image_sets.ImageSetError, match=r"\['generators'\] differ.*Delete it"):
    image_sets.read_fake_pool(tmp_path / 'pool', newer)


def test_a_corrupt_image_set_is_reported_with_what_to_do(tmp_path):
  image_sets.write_fake_pool(tmp_path / 'pool', {'gan_a': fakes_of(0), 'gan_b': fakes_of(1)},
                             DESCRIPTION)
  for record_file in image_sets.dataset_dir(tmp_path / 'pool').glob('*train*'):
    record_file.write_bytes(b'garbage')
  with pytest.raises(image_sets.ImageSetError, match='delete that folder'):
    image_sets.read_split(tmp_path / 'pool', 'train')


def test_a_folder_is_prepared_once_with_corrupt_files_listed(tmp_path):
  root = tmp_path / 'faces'
  make_face_folder(root, num_per_class=10)
  prepared = image_sets.prepare_folder(root, (32, 32, 3), seed=0, data_dir=str(tmp_path / 'tfds'))
  skipped = json.loads((prepared / 'skipped.json').read_text())
  assert [pathlib_name(path) for path, _ in skipped] == ['broken.png']
  direct = folders.load_real_fake_folder(root, (32, 32, 3), seed=0).parts
  stored = image_sets.read_folder(prepared)
  for split in ('train', 'test'):
    np.testing.assert_array_equal(stored[split].reals, direct[split].reals)
    np.testing.assert_array_equal(stored[split].fakes, direct[split].fakes)
  for image in (root / 'real').iterdir():  # Prepared once: later runs read the copy.
    image.unlink()
  assert image_sets.prepare_folder(root, (32, 32, 3), seed=0,
                                   data_dir=str(tmp_path / 'tfds')) == prepared


def pathlib_name(path: str) -> str:
  return path.rsplit('/', 1)[-1]


def test_detectors_train_end_to_end_on_a_small_folder(tmp_path):
  root = tmp_path / 'faces'
  make_face_folder(root, num_per_class=40)
  workdir = tmp_path / 'run'
  command = [sys.executable, '-m', 'fakejax.main', '--config=configs/detectors_folder.py:tiny',
             f'--workdir={workdir}', f'--config.data.folder={root}',
             f'--config.data.data_dir={tmp_path / "tfds"}', '--config.classifier.num_epochs=3']
  result = subprocess.run(command, cwd=REPO_ROOT, env=TWO_DEVICES, capture_output=True,
                          text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-5000:]
  assert 'broken.png' in result.stderr  # Reported by name, and skipped.
  (row,) = json.loads((workdir / 'generalisation.json').read_text())
  assert row['detector'] == 'folder' and row['anomaly_real_recall'] is None
  assert row['average_precision']['folder'] > 0.9  # Brightness alone separates the classes.
  assert '| folder | resnet18 |' in (workdir / 'generalisation.md').read_text()
