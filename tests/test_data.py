"""Real Fashion-MNIST through TFDS and grain: class splits, order, process shards, errors."""

import numpy as np
import pytest

from fakejax.data import fashion_mnist, pipeline
from tests.conftest import TEST_IDX_COUNTS

DEBIAN_DIR = '/usr/share/datasets/fashion-mnist'


def labels_by_image(data: fashion_mnist.LabelledImages) -> dict[bytes, set[int]]:
  table = {}
  for image, label in zip(data.images, data.labels):
    table.setdefault(image.tobytes(), set()).add(int(label))
  return table


def test_tfds_dataset_holds_the_original_idx_contents(tfds_data_dir, idx_dir):
  tfds_test = fashion_mnist.load_split(tfds_data_dir, DEBIAN_DIR, False, 'test')
  idx_test = fashion_mnist.read_idx_split(idx_dir, 'test')
  assert tfds_test.images.shape == (TEST_IDX_COUNTS['test'], 28, 28, 1)
  debian_test = fashion_mnist.read_idx_split(DEBIAN_DIR, 'test')
  np.testing.assert_array_equal(  # The tests' files are the start of Debian's.
      idx_test.images, debian_test.images[:len(idx_test.images)])
  # Same examples, possibly in another order.
  assert labels_by_image(tfds_test) == labels_by_image(idx_test)


def test_training_batches_never_contain_anomaly_classes(tiny_config):
  splits = pipeline.load_study_splits(tiny_config.data, tiny_config.seed)
  train_labels = labels_by_image(fashion_mnist.load_split(
      tiny_config.data.data_dir, DEBIAN_DIR, False, tiny_config.data.train_split))
  batches = pipeline.train_batches(splits.train, seed=0, num_epochs=2, batch_size=32,
                                   process_index=0, process_count=1)
  seen = set(range(10)) - set(tiny_config.data.anomaly_classes)
  classes_trained_on = set()
  for batch in batches:
    for image in batch:
      classes_trained_on |= train_labels[image.tobytes()]
  assert classes_trained_on == seen


def test_anomaly_and_seen_test_splits_hold_the_right_classes(tiny_config):
  splits = pipeline.load_study_splits(tiny_config.data, tiny_config.seed)
  test_labels = labels_by_image(fashion_mnist.load_split(
      tiny_config.data.data_dir, DEBIAN_DIR, False, tiny_config.data.test_split))
  anomaly = set(tiny_config.data.anomaly_classes)
  assert all(test_labels[image.tobytes()] <= anomaly for image in splits.test_anomaly)
  assert all(not test_labels[image.tobytes()] & anomaly for image in splits.test_seen)
  assert len(splits.test_seen) + len(splits.test_anomaly) == 320


def test_validation_slice_is_disjoint_from_training(tiny_config):
  splits = pipeline.load_study_splits(tiny_config.data, tiny_config.seed)
  train = {image.tobytes() for image in splits.train}
  assert len(splits.validation) == round(0.1 * (len(splits.train) + len(splits.validation)))
  assert not any(image.tobytes() in train for image in splits.validation)


def test_batch_order_is_fixed_by_the_seed_and_reshuffled_each_epoch():
  images = np.arange(64, dtype=np.uint8).reshape(64, 1, 1, 1)
  order = lambda seed: np.concatenate(list(pipeline.train_batches(
      images, seed=seed, num_epochs=2, batch_size=16, process_index=0, process_count=1)))
  first, again, other = order(3), order(3), order(4)
  np.testing.assert_array_equal(first, again)
  assert not np.array_equal(first, other)
  epoch_1, epoch_2 = first[:64].ravel(), first[64:].ravel()
  assert sorted(epoch_1) == sorted(epoch_2) == list(range(64))
  assert not np.array_equal(epoch_1, epoch_2)


def test_batches_that_span_epochs_still_see_each_example_once_an_epoch():
  images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
  batches = list(pipeline.train_batches(images, seed=0, num_epochs=3, batch_size=4,
                                        process_index=0, process_count=1))
  assert len(batches) == 7  # 30 positions, whole batches of 4 only.
  stream = np.concatenate(batches).ravel()
  for epoch in range(2):
    assert sorted(stream[10 * epoch:10 * epoch + 10]) == list(range(10))
  assert not np.array_equal(stream[:10], stream[10:20])


def test_processes_read_disjoint_slices_that_make_the_global_batch():
  images = np.arange(48, dtype=np.uint8).reshape(48, 1, 1, 1)
  batches = lambda index, count: list(pipeline.train_batches(
      images, seed=0, num_epochs=1, batch_size=16, process_index=index, process_count=count))
  whole = batches(0, 1)
  halves = [batches(0, 2), batches(1, 2)]
  for step, global_batch in enumerate(whole):
    np.testing.assert_array_equal(
        np.concatenate([halves[0][step], halves[1][step]]), global_batch)


def test_resuming_the_iterator_continues_the_same_stream():
  images = np.arange(40, dtype=np.uint8).reshape(40, 1, 1, 1)
  make = lambda: pipeline.train_batches(images, seed=1, num_epochs=3, batch_size=8,
                                        process_index=0, process_count=1)
  uninterrupted = list(make())
  first = make()
  for _ in range(4):
    next(first)
  resumed = make()
  resumed.set_state(first.get_state())
  for expected, batch in zip(uninterrupted[4:], resumed, strict=True):
    np.testing.assert_array_equal(batch, expected)


def test_missing_dataset_says_what_to_install(tmp_path):
  with pytest.raises(fashion_mnist.DatasetUnavailableError) as error:
    fashion_mnist.prepare(str(tmp_path / 'tfds'), str(tmp_path / 'no_such_dir'),
                          allow_download=False)
  message = str(error.value)
  assert 'apt-get install dataset-fashion-mnist' in message
  assert '--config.data.local_dir' in message
  assert str(tmp_path / 'no_such_dir') in message


def test_corrupt_idx_file_is_named_in_the_error(tmp_path):
  import gzip
  import shutil
  for names in fashion_mnist.IDX_FILES.values():
    for name in names:
      shutil.copy(f'{DEBIAN_DIR}/{name}', tmp_path / name)
  with gzip.open(tmp_path / 't10k-labels-idx1-ubyte.gz', 'wb') as f:
    f.write(b'\x00' * 100)
  with pytest.raises(ValueError, match='t10k-labels-idx1-ubyte.gz is not an IDX label file'):
    fashion_mnist.read_idx_split(tmp_path, 'test')


def test_labelled_train_reals_are_the_study_train_reals_with_seen_class_indices(tiny_config):
  splits = pipeline.load_study_splits(tiny_config.data, tiny_config.seed)
  images, labels = pipeline.labelled_train_reals(tiny_config.data, tiny_config.seed)
  np.testing.assert_array_equal(images, splits.train)
  seen = sorted(set(range(10)) - set(tiny_config.data.anomaly_classes))
  original = labels_by_image(fashion_mnist.load_split(
      tiny_config.data.data_dir, DEBIAN_DIR, False, tiny_config.data.train_split))
  for image, label in zip(images, labels):
    assert original[image.tobytes()] == {seen[label]}
