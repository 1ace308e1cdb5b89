"""Images from folders of files, converted to a model's input shape.

Unreadable, truncated, empty or non-image files are reported by name and skipped.
"""

import dataclasses
import pathlib

import numpy as np
from absl import logging
from PIL import Image, UnidentifiedImageError

from fakejax.data import pipeline
from fakejax.errors import UserError

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.webp', '.bmp', '.gif')


@dataclasses.dataclass(frozen=True)
class FolderImages:
  images: np.ndarray  # uint8 [N, H, W, C]
  paths: list[str]  # Of the images, in order.
  skipped: list[tuple[str, str]]  # (path, reason) of files that could not be read.


class ImageFolderError(UserError, FileNotFoundError):
  """An image folder that does not exist or holds no readable image."""


def image_files(root: str | pathlib.Path) -> list[pathlib.Path]:
  """Image files below `root` (recursive), sorted for a deterministic order."""
  root = pathlib.Path(root)
  if not root.is_dir():
    raise ImageFolderError(f'Image folder {root} does not exist.')
  return sorted(p for p in root.rglob('*') if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_image(path: str | pathlib.Path, shape: tuple[int, int, int]) -> np.ndarray:
  """One image as uint8 [H, W, C]: converted to grayscale or RGB, resized to (H, W)."""
  height, width, channels = shape
  with Image.open(path) as image:
    image.load()  # Decodes now: truncated files fail here, by name.
    image = image.convert('L' if channels == 1 else 'RGB')
    if image.size != (width, height):
      image = image.resize((width, height), Image.BILINEAR)
    return np.asarray(image, np.uint8).reshape(height, width, channels)


def load_image_folder(root: str | pathlib.Path, shape: tuple[int, int, int]) -> FolderImages:
  """Every readable image below `root`, as uint8 [N, *shape]."""
  images, paths, skipped = [], [], []
  for path in image_files(root):
    try:
      images.append(read_image(path, shape))
      paths.append(str(path))
    except (OSError, UnidentifiedImageError, ValueError) as error:
      skipped.append((str(path), f'{type(error).__name__}: {error}'))
      logging.warning('Skipped unreadable image %s (%s).', path, error)
  if not images:
    raise ImageFolderError(f'No readable image in {root} ({len(skipped)} unreadable files).')
  return FolderImages(np.stack(images), paths, skipped)


REAL_FAKE = ('real', 'fake')


@dataclasses.dataclass(frozen=True)
class RealFake:
  reals: np.ndarray  # uint8 [N, H, W, C]
  fakes: np.ndarray


@dataclasses.dataclass(frozen=True)
class RealFakeFolder:
  parts: dict[str, RealFake]  # 'train' and 'test'.
  skipped: list[tuple[str, str]]  # (path, reason) of unreadable files.


def load_real_fake_folder(root: str | pathlib.Path, shape: tuple[int, int, int],
                          test_fraction: float = 0.2, seed: int = 0) -> RealFakeFolder:
  """Train and test reals and fakes of a real/fake image folder.

  Layout `<root>/{train,test}/{real,fake}/*`, or `<root>/{real,fake}/*` split into train
  and test by a seeded permutation (`test_fraction` held out of each class).
  """
  root = pathlib.Path(root)
  skipped = []

  def read(folder: pathlib.Path) -> np.ndarray:
    loaded = load_image_folder(folder, shape)
    skipped.extend(loaded.skipped)
    return loaded.images

  if (root / 'train').is_dir():
    parts = {split: RealFake(read(root / split / 'real'), read(root / split / 'fake'))
             for split in ('train', 'test')}
  else:
    held_out = {label: pipeline.hold_out(read(root / label), test_fraction, seed)
                for label in REAL_FAKE}
    parts = {split: RealFake(held_out['real'][index], held_out['fake'][index])
             for index, split in enumerate(('train', 'test'))}
  return RealFakeFolder(parts=parts, skipped=skipped)
