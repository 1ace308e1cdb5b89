"""Augmentations: shapes kept, each one doing what it says, deterministic, resumable."""

import numpy as np
import pytest

from fakejax.data import augment, pipeline


def images(num, channels, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (num, 28, 28, channels), np.uint8)


@pytest.mark.parametrize('channels', [1, 3])
def test_every_augmentation_keeps_shape_and_dtype(channels):
  options = augment.Augmentation(flip_prob=1.0, crop_padding=2, blur_prob=1.0, jpeg_prob=1.0)
  out = augment.augment_image(images(1, channels)[0], options, np.random.default_rng(0))
  assert out.shape == (28, 28, channels) and out.dtype == np.uint8


def test_flip_mirrors_and_no_options_is_identity():
  image = images(1, 1)[0]
  rng = np.random.default_rng(0)
  np.testing.assert_array_equal(
      augment.augment_image(image, augment.Augmentation(flip_prob=1.0), rng), image[:, ::-1])
  np.testing.assert_array_equal(augment.augment_image(image, augment.Augmentation(), rng), image)
  assert augment.Augmentation().is_identity


def test_blur_smooths_and_jpeg_changes_pixels():
  image = images(1, 1)[0]  # White noise: blur lowers its variance; JPEG loses detail.
  blurred = augment.augment_image(
      image, augment.Augmentation(blur_prob=1.0, blur_sigma_max=3.0), np.random.default_rng(3))
  assert blurred.astype(float).std() < 0.8 * image.astype(float).std()
  jpeg = augment.augment_image(image, augment.Augmentation(jpeg_prob=1.0, jpeg_quality_min=30),
                               np.random.default_rng(0))
  assert np.abs(jpeg.astype(int) - image.astype(int)).mean() > 5


def test_augmented_batches_are_deterministic_and_the_same_after_a_resume():
  examples = {'image': images(64, 1), 'label': np.arange(64, dtype=np.int32)}
  options = augment.Augmentation(flip_prob=0.5, crop_padding=2, blur_prob=0.5, jpeg_prob=0.5)
  make = lambda: pipeline.train_batches(
      examples, seed=7, num_epochs=2, batch_size=16, process_index=0, process_count=1,
      augment=lambda batch, rng: augment.augment_batch(batch, rng, options))
  first = make()
  batches = [next(first) for _ in range(6)]
  again = make()
  for batch in batches:
    got = next(again)
    np.testing.assert_array_equal(got['image'], batch['image'])
    np.testing.assert_array_equal(got['label'], batch['label'])
  # Labels follow their images; the images really were changed.
  assert not np.array_equal(batches[0]['image'], examples['image'][batches[0]['label']])
  resumed = make()
  next(resumed)
  state = resumed.get_state()
  restored = make()
  restored.set_state(state)
  for batch in batches[1:]:
    np.testing.assert_array_equal(next(restored)['image'], batch['image'])
