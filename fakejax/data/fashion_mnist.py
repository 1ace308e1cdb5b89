"""Fashion-MNIST as a TFDS ArrayRecord dataset, prepared offline when the IDX files exist.

TFDS's stock builder cannot use Debian's copies of the original files (their gzip headers,
hence checksums, differ), so `LocalFashionMNIST` builds the same dataset (name, version,
features) from the decompressed IDX contents. Elsewhere TFDS downloads as usual.
"""

import dataclasses
import functools
import gzip
import os
import pathlib
import socket
import threading

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from fakejax.errors import UserError

IMAGE_SHAPE = (28, 28, 1)
NUM_CLASSES = 10
IDX_FILES = {
    'train': ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),
    'test': ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'),
}
# Where TFDS's stock builder downloads the IDX files from.
DOWNLOAD_HOST = 'fashion-mnist.s3-website.eu-central-1.amazonaws.com'
IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049


class DatasetUnavailableError(UserError, RuntimeError):
  """Fashion-MNIST is neither prepared, nor available locally, nor downloadable."""


@dataclasses.dataclass(frozen=True)
class LabelledImages:
  """Images as uint8 [N, 28, 28, 1] with their class labels int32 [N]."""
  images: np.ndarray
  labels: np.ndarray


def read_idx_split(local_dir: str | os.PathLike, split: str) -> LabelledImages:
  """Reads one split from the four original (gzipped) IDX files."""
  images_name, labels_name = IDX_FILES[split]
  with gzip.open(pathlib.Path(local_dir) / images_name, 'rb') as f:
    header = np.frombuffer(f.read(16), dtype='>i4')
    if header[0] != IDX_IMAGES_MAGIC:
      raise ValueError(f'{images_name} is not an IDX image file (magic {header[0]}).')
    images = np.frombuffer(f.read(), dtype=np.uint8).reshape(header[1], *IMAGE_SHAPE)
  with gzip.open(pathlib.Path(local_dir) / labels_name, 'rb') as f:
    header = np.frombuffer(f.read(8), dtype='>i4')
    if header[0] != IDX_LABELS_MAGIC:
      raise ValueError(f'{labels_name} is not an IDX label file (magic {header[0]}).')
    labels = np.frombuffer(f.read(), dtype=np.uint8).astype(np.int32)
  if len(images) != len(labels):
    raise ValueError(f'{split}: {len(images)} images but {len(labels)} labels.')
  return LabelledImages(images, labels)


class LocalFashionMNIST(tfds.image_classification.FashionMNIST, skip_registration=True):
  """TFDS `fashion_mnist` built from local IDX files instead of a download."""

  name = 'fashion_mnist'

  def __init__(self, *, local_dir: str, **kwargs):
    self._local_dir = local_dir
    super().__init__(**kwargs)

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    return {split: self._generate_examples(split) for split in IDX_FILES}

  def _generate_examples(self, split):
    data = read_idx_split(self._local_dir, split)
    for index, (image, label) in enumerate(zip(data.images, data.labels)):
      yield index, {'image': image, 'label': int(label)}


def unreachable_reason(host: str, port: int = 80, timeout_s: float = 5.0) -> str:
  """Why `host` cannot be reached ('' if it accepts a connection within `timeout_s`).

  Name resolution has no timeout of its own, so the probe runs in a daemon thread.
  """
  outcome = []

  def probe() -> None:
    try:
      socket.create_connection((host, port), timeout=timeout_s).close()
      outcome.append('')
    except OSError as error:
      outcome.append(f'{host} is unreachable ({type(error).__name__}: {error})')

  thread = threading.Thread(target=probe, daemon=True)
  thread.start()
  thread.join(timeout_s)
  return outcome[0] if outcome else f'{host} did not answer within {timeout_s:g} s'


def has_local_files(local_dir: str) -> bool:
  return bool(local_dir) and all(
      (pathlib.Path(local_dir) / name).is_file() for names in IDX_FILES.values() for name in names)


def _data_dir_or_default(data_dir: str) -> str | None:
  return data_dir or None


def prepare(data_dir: str, local_dir: str, allow_download: bool) -> tfds.core.DatasetBuilder:
  """Returns a builder of `fashion_mnist` in ArrayRecord format, preparing it if needed.

  Order: an already prepared dataset in `data_dir`; else the IDX files in `local_dir`;
  else TFDS's download (when allowed). Raises DatasetUnavailableError saying what to do.
  """
  builder = tfds.builder('fashion_mnist', data_dir=_data_dir_or_default(data_dir),
                         file_format='array_record')
  if builder.is_prepared():
    return builder
  if has_local_files(local_dir):
    logging.info('Building TFDS fashion_mnist from the IDX files in %s.', local_dir)
    builder = LocalFashionMNIST(local_dir=local_dir, data_dir=_data_dir_or_default(data_dir),
                                file_format='array_record')
    builder.download_and_prepare()
    return builder
  reasons = [f'it is not prepared in {builder.data_dir}',
             f"the original IDX files are not in '{local_dir}'"]
  if allow_download:
    unreachable = unreachable_reason(DOWNLOAD_HOST)
    if unreachable:
      # TFDS would retry for minutes before failing the same way.
      reasons.append(f'it cannot be downloaded: {unreachable}')
    else:
      try:
        builder.download_and_prepare()
        return builder
      except Exception as error:  # Any download failure ends in the same advice.
        reasons.append(f'downloading it failed ({type(error).__name__}: {error})')
  else:
    reasons.append('downloading is disabled (data.allow_download=False)')
  raise DatasetUnavailableError(
      'Fashion-MNIST is not available: ' + '; '.join(reasons) + '.\n'
      'Fix it with one of:\n'
      '  sudo apt-get install dataset-fashion-mnist   '
      '(Debian/Ubuntu: the IDX files in /usr/share/datasets/fashion-mnist)\n'
      '  --config.data.local_dir=/path/to/folder      '
      f'(a folder holding {", ".join(n for ns in IDX_FILES.values() for n in ns)})\n'
      '  --config.data.data_dir=/path/to/tensorflow_datasets   '
      '(where fashion_mnist is already prepared)\n'
      '  or run where TFDS can download (data.allow_download=True).')


@functools.lru_cache(maxsize=4)
def load_split(data_dir: str, local_dir: str, allow_download: bool, split: str) -> LabelledImages:
  """Reads and decodes one split (TFDS split syntax, e.g. 'train[:10%]') into memory.

  Fashion-MNIST is 47 MB decoded: holding it in RAM and batching by index is ~25x faster
  than decoding per example, and it is read once per process.
  """
  builder = prepare(data_dir, local_dir, allow_download)
  source = builder.as_data_source(split=split)
  try:
    records = source.__getitems__(range(len(source)))
  except Exception as error:
    raise DatasetUnavailableError(
        f'Reading split {split!r} of {builder.data_dir} failed ({error}); the prepared '
        'dataset may be corrupt: delete that folder to have it built again.') from error
  images = np.stack([record['image'] for record in records]).astype(np.uint8)
  labels = np.asarray([record['label'] for record in records], dtype=np.int32)
  return LabelledImages(images.reshape(-1, *IMAGE_SHAPE), labels)
