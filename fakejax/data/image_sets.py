"""Real and fake images stored as TFDS ArrayRecord datasets: fake pools and user folders.

Every example is an image with its `source` (a generator's name, or 'real') and its
`is_fake` label. A fake pool holds the fakes of several generators, so that a detector
trains on some and is tested on the others; a real/fake folder is prepared once into the
same form, with corrupt files reported by name and skipped. TFDS writes to a temporary
folder and renames it when complete, so an interrupted preparation leaves nothing half
written; a prepared set is read back with `tfds.builder_from_directory`, no code needed.
"""

import dataclasses
import hashlib
import json
import pathlib
from collections.abc import Callable, Iterator

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from fakejax.data import folders
from fakejax.errors import UserError

REAL_SOURCE = 'real'
VERSION = '1.0.0'


class ImageSetError(UserError, RuntimeError):
  """A stored image set that is corrupt, or that does not hold what the config asks for."""


class RealFakeImages(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Images with their source and real/fake label; splits and examples given at build time."""

  VERSION = tfds.core.Version(VERSION)

  def __init__(self, *, image_shape: tuple[int, int, int],
               splits: dict[str, Callable[[], Iterator[dict]]], description: str, **kwargs):
    self._image_shape = tuple(image_shape)
    self._splits = splits
    self._description = description
    super().__init__(file_format='array_record', **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=self._description,
        disable_shuffling=True,  # Stored in the order given: the seeded splits stay as made.
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(shape=self._image_shape),
            'source': tfds.features.Text(),
            'is_fake': tfds.features.ClassLabel(names=['real', 'fake']),
        }))

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download: the examples are made here.
    return {split: self._generate_examples(examples) for split, examples in self._splits.items()}

  def _generate_examples(self, examples: Callable[[], Iterator[dict]]):
    for index, example in enumerate(examples()):
      yield index, example


@dataclasses.dataclass(frozen=True)
class ImageSplit:
  images: np.ndarray  # uint8 [N, H, W, C]
  sources: np.ndarray  # str [N]: a generator's name, or 'real'

  def of(self, source: str) -> np.ndarray:
    return self.images[self.sources == source]


def dataset_dir(data_dir: str | pathlib.Path) -> pathlib.Path:
  return pathlib.Path(data_dir) / RealFakeImages.name / VERSION


def is_prepared(data_dir: str | pathlib.Path) -> bool:
  return (dataset_dir(data_dir) / 'dataset_info.json').is_file()


def build(data_dir: str | pathlib.Path, image_shape: tuple[int, int, int],
          splits: dict[str, Callable[[], Iterator[dict]]], description: str) -> None:
  RealFakeImages(image_shape=image_shape, splits=splits, description=description,
                 data_dir=str(data_dir)).download_and_prepare()


def read_split(data_dir: str | pathlib.Path, split: str) -> ImageSplit:
  """One split of a prepared set, decoded into memory (batched reads: ~30x per example)."""
  try:
    builder = tfds.builder_from_directory(str(dataset_dir(data_dir)))
    source = builder.as_data_source(split=split)
    records = source.__getitems__(range(len(source))) if len(source) else []
  except Exception as error:
    raise ImageSetError(f'Reading split {split!r} of the image set in {data_dir} failed '
                        f'({type(error).__name__}: {error}); delete that folder to have it '
                        'prepared again.') from error
  shape = builder.info.features['image'].shape
  images = np.stack([record['image'] for record in records]) if records else np.zeros(
      (0, *shape), np.uint8)
  sources = np.asarray([_text(record['source']) for record in records], dtype=str)
  return ImageSplit(images=images.reshape(-1, *shape), sources=sources)


def _text(value) -> str:
  return value.decode() if isinstance(value, bytes) else str(value)


def _examples(images: np.ndarray, source: str) -> Iterator[dict]:
  for image in images:
    yield {'image': image, 'source': source, 'is_fake': int(source != REAL_SOURCE)}


def write_fake_pool(data_dir: str | pathlib.Path, fakes: dict[str, dict[str, np.ndarray]],
                    description: dict) -> None:
  """Stores generator name -> split -> uint8 fakes as one set, with `description`
  (generators, checkpoints, sample counts, seeds) kept beside it to check reuse against."""
  names = sorted(fakes)
  shape = next(iter(fakes[names[0]].values())).shape[1:]
  splits = {split: (lambda split=split: (example for name in names
                                         for example in _examples(fakes[name][split], name)))
            for split in fakes[names[0]]}
  build(data_dir, shape, splits,
        description=f'Fakes of {", ".join(names)}; how they were made is in pool.json.')
  (pathlib.Path(data_dir) / 'pool.json').write_text(json.dumps(description, indent=2,
                                                               sort_keys=True) + '\n')


def read_fake_pool(data_dir: str | pathlib.Path, expected: dict) -> dict[str, dict[str, np.ndarray]]:
  """Generator name -> split -> fakes of a stored pool made as `expected` describes."""
  stored = json.loads((pathlib.Path(data_dir) / 'pool.json').read_text())
  if stored != expected:
    changed = sorted(key for key in set(stored) | set(expected) if stored.get(key) != expected.get(key))
    raise ImageSetError(
        f'The fake pool in {data_dir} was made differently ({changed} differ: stored '
        f'{ {key: stored.get(key) for key in changed} }, wanted '
        f'{ {key: expected.get(key) for key in changed} }). Delete it, or set another '
        'fake_pool folder, to sample it again.')
  pool = {name: {} for name in expected['generators']}
  for split in ('train', 'validation', 'test'):
    part = read_split(data_dir, split)
    for name in pool:
      pool[name][split] = part.of(name)
  return pool


def folder_set_dir(data_dir: str, root: str | pathlib.Path,
                   image_shape: tuple[int, int, int], seed: int) -> pathlib.Path:
  """Where the prepared copy of a folder lives: one per folder, shape and split seed."""
  root = pathlib.Path(root).resolve()
  key = hashlib.sha256(f'{root}|{tuple(image_shape)}|{seed}'.encode()).hexdigest()[:12]
  base = pathlib.Path(data_dir) if data_dir else pathlib.Path.home() / 'tensorflow_datasets'
  return base / 'real_fake_folders' / f'{root.name}_{key}'


def prepare_folder(root: str | pathlib.Path, image_shape: tuple[int, int, int], seed: int,
                   data_dir: str = '', test_fraction: float = 0.2) -> pathlib.Path:
  """Prepares a real/fake folder (see `folders.load_real_fake_folder`) as an image set once.

  Returns the set's folder. Files skipped as unreadable are listed in its `skipped.json`.
  A folder whose files change after preparation needs its prepared copy deleted.
  """
  target = folder_set_dir(data_dir, root, image_shape, seed)
  if is_prepared(target):
    return target
  loaded = folders.load_real_fake_folder(root, image_shape, test_fraction=test_fraction,
                                         seed=seed)
  splits = {split: (lambda part=part: (
      example for source, images in ((REAL_SOURCE, part.reals), ('folder', part.fakes))
      for example in _examples(images, source)))
            for split, part in loaded.parts.items()}
  logging.info('Preparing %s as a TFDS image set in %s.', root, target)
  build(target, image_shape, splits, description=f'Real/fake images of {root}.')
  (target / 'skipped.json').write_text(json.dumps(loaded.skipped, indent=2) + '\n')
  return target


def read_folder(target: pathlib.Path) -> dict[str, folders.RealFake]:
  """{'train', 'test'} reals and fakes of a prepared folder."""
  splits = {}
  for split in ('train', 'test'):
    part = read_split(target, split)
    splits[split] = folders.RealFake(reals=part.of(REAL_SOURCE), fakes=part.of('folder'))
  return splits

