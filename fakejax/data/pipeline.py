"""Seen/anomaly class splits of Fashion-MNIST and the grain pipeline that batches them.

Every process computes the same global batch of indices from the seed and keeps only its
own slice, so a run on P processes sees exactly the data of a run on one process.
"""

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import grain
import jax
import ml_collections
import numpy as np

from fakejax.data import fashion_mnist


@dataclasses.dataclass(frozen=True)
class StudySplits:
  """Real images of the study, uint8 [N, 28, 28, 1]."""
  train: np.ndarray  # Seen classes of the train split, minus the validation slice.
  validation: np.ndarray  # Seen classes of the train split, never trained on.
  test_seen: np.ndarray  # Seen classes of the test split.
  test_anomaly: np.ndarray  # Held-out (anomaly) classes of the test split.


def split_by_class(data: fashion_mnist.LabelledImages, anomaly_classes) -> tuple[np.ndarray, np.ndarray]:
  """Returns (seen-class images, anomaly-class images)."""
  is_anomaly = np.isin(data.labels, np.asarray(anomaly_classes, dtype=np.int32))
  return data.images[~is_anomaly], data.images[is_anomaly]


def hold_out(images: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Splits images into (kept, held out) by a seeded permutation."""
  order = np.random.default_rng(seed).permutation(len(images))
  num_held_out = int(round(len(images) * fraction))
  return images[np.sort(order[num_held_out:])], images[np.sort(order[:num_held_out])]


def load_study_splits(data_config: ml_collections.ConfigDict, seed: int) -> StudySplits:
  """Loads Fashion-MNIST (a config's `data` group) and splits it by its anomaly classes."""
  read = lambda split: fashion_mnist.load_split(
      data_config.data_dir, data_config.local_dir, data_config.allow_download, split)
  train_seen, _ = split_by_class(read(data_config.train_split), data_config.anomaly_classes)
  train, validation = hold_out(train_seen, data_config.validation_fraction, seed)
  test_seen, test_anomaly = split_by_class(read(data_config.test_split),
                                           data_config.anomaly_classes)
  return StudySplits(train=train, validation=validation, test_seen=test_seen,
                     test_anomaly=test_anomaly)


def labelled_train_reals(data_config: ml_collections.ConfigDict,
                         seed: int) -> tuple[np.ndarray, np.ndarray]:
  """The train reals of `load_study_splits` with their class as an index among the seen
  classes (0..K-1), for the feature network of the quality metrics."""
  data = fashion_mnist.load_split(data_config.data_dir, data_config.local_dir,
                                  data_config.allow_download, data_config.train_split)
  seen_classes = np.setdiff1d(np.arange(fashion_mnist.NUM_CLASSES),
                              np.asarray(data_config.anomaly_classes, np.int32))
  is_seen = np.isin(data.labels, seen_classes)
  images, labels = data.images[is_seen], data.labels[is_seen]
  # The permutation of `hold_out` depends only on the count and the seed.
  kept, _ = hold_out(np.arange(len(images)), data_config.validation_fraction, seed)
  return images[kept], np.searchsorted(seen_classes, labels[kept]).astype(np.int32)


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
  return num_examples // batch_size


def count_examples(examples) -> int:
  """Examples in an array, or in a dict of arrays with a leading example axis."""
  return len(jax.tree.leaves(examples)[0])


def train_batches(examples, *, seed: int, num_epochs: int, batch_size: int,
                  process_index: int, process_count: int,
                  augment: Callable[[Any, np.random.Generator], Any] | None = None
                  ) -> grain.DatasetIterator:
  """An iterator of this process's slice of each global batch of `examples`.

  `examples` is an array (uint8 images) or a dict of arrays (images and labels) with a
  leading example axis. Shuffled anew each epoch from `seed`; batches may span epoch
  boundaries. Its position is `get_state()`/`set_state()`, saved with every checkpoint.
  `augment(local_batch, rng)` transforms each batch with a generator seeded by `seed`
  and the batch's index, so augmented batches are the same after a resume.
  """
  num_examples = count_examples(examples)
  if steps_per_epoch(num_examples, batch_size) == 0:
    raise ValueError(
        f'The training set has {num_examples} examples, fewer than one batch of {batch_size}.')
  per_process = batch_size // process_count
  begin = process_index * per_process
  order = EpochOrder(num_examples, seed)

  def gather(batch_index: int):
    indices = order.indices(batch_index * batch_size + begin, per_process)
    return jax.tree.map(lambda array: array[indices], examples)

  dataset = grain.MapDataset.range(num_epochs * num_examples // batch_size).map(gather)
  if augment is not None:
    dataset = dataset.random_map(augment, seed=seed)
  # A batch takes ~0.2 ms to gather: one thread and a short buffer prepare it during a step.
  return iter(dataset.to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=4)))


class EpochOrder:
  """The examples' order: each epoch a permutation of its own, drawn from (seed, epoch).

  One vectorised permutation per epoch, rather than a shuffle of each index: grain's
  per-element shuffle and batching took ~3 ms a batch of 256, more than a DCGAN's whole
  train step on a GPU.
  """

  def __init__(self, num_examples: int, seed: int):
    self.num_examples, self.seed = num_examples, seed
    # A batch spans at most two epochs.
    self.permutation = functools.lru_cache(maxsize=2)(self._permutation)

  def _permutation(self, epoch: int) -> np.ndarray:
    return np.random.default_rng([self.seed, epoch]).permutation(self.num_examples)

  def indices(self, start: int, count: int) -> np.ndarray:
    """Example indices at positions [start, start + count) of the epochs laid end to end."""
    epochs, offsets = np.divmod(np.arange(start, start + count), self.num_examples)
    return np.concatenate([self.permutation(int(epoch))[offsets[epochs == epoch]]
                           for epoch in np.unique(epochs)])
