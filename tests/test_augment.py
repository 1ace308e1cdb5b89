"""Augmentations: shapes kept, each one doing what it says, deterministic, resumable."""

import numpy as np
import pytest

from fakejax.data import augment, pipeline


def images(num, channels, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (num, 28, 28, channels), np.uint8)


@pytest.mark.parametrize('channels', [1, 3])
def test_every_augmentation_keeps_shape_and_dtype(channels):
  options = augment.Augmentation(
      resize_crop_prob=1.0, resize_scale=256 / 224, flip_prob=1.0, crop_padding=2,
      rotation_prob=1.0, rotation_degrees=15.0, jitter_prob=1.0, brightness=0.4, contrast=0.4,
      saturation=0.4, blur_prob=1.0, jpeg_prob=1.0)
  assert not options.is_identity
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


def test_resampling_is_an_upload_resize_and_off_it_draws_nothing():
  rows, cols = np.meshgrid(np.arange(28), np.arange(28), indexing='ij')
  smooth = (128 + 100 * np.sin(rows / 4.0) * np.cos(cols / 5.0)).astype(np.uint8)[..., None]
  checkerboard = np.where((rows + cols) % 2, 255, 0).astype(np.uint8)[..., None]
  on = augment.Augmentation(resample_prob=1.0, resample_scale_min=0.5)
  for image, changed in ((smooth, False), (checkerboard, True)):
    out = augment.augment_image(image, on, np.random.default_rng(1))
    assert out.shape == image.shape and out.dtype == np.uint8
    assert (np.abs(out.astype(int) - image.astype(int)).mean() > 40) == changed
  # Off, it leaves the random stream as it was: the other augmentations are unchanged.
  jpeg = augment.Augmentation(jpeg_prob=0.5)
  off = augment.Augmentation(jpeg_prob=0.5, resample_scale_min=0.9)
  for seed in range(4):
    np.testing.assert_array_equal(
        augment.augment_image(checkerboard, jpeg, np.random.default_rng(seed)),
        augment.augment_image(checkerboard, off, np.random.default_rng(seed)))


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


def test_resize_crop_magnifies_a_window_of_the_image():
  image = np.zeros((28, 28, 1), np.uint8)
  image[:, 14:] = 255  # Left half black, right half white.
  out = augment.augment_image(image, augment.Augmentation(resize_crop_prob=1.0, resize_scale=2.0),
                              np.random.default_rng(0))
  # A 28-pixel window of the 56-pixel enlargement: the edge moved, still one edge.
  columns = out[0, :, 0].astype(int)
  assert np.all(np.diff(columns) >= 0) and not np.array_equal(out, image)


def test_rotation_turns_the_image_about_its_centre():
  image = np.zeros((28, 28, 1), np.uint8)
  image[13:15, :] = 255  # A horizontal bar through the centre.
  out = augment.augment_image(
      image, augment.Augmentation(rotation_prob=1.0, rotation_degrees=90.0),
      np.random.default_rng(1))
  off_bar = np.delete(out[:, :, 0], [13, 14], axis=0)
  assert off_bar.max() > 100  # The turned bar crosses other rows...
  assert out[13:15, 14, 0].min() > 100  # ...and still passes through the centre.


def test_colour_jitter_changes_brightness_and_contrast_within_its_strength():
  image = np.full((28, 28, 3), 100, np.uint8)
  image[:, :14] = 50
  options = augment.Augmentation(jitter_prob=1.0, brightness=0.5)
  outs = [augment.augment_image(image, options, np.random.default_rng(seed)) for seed in range(20)]
  ratios = [out.astype(float).mean() / image.astype(float).mean() for out in outs]
  assert 0.5 - 0.02 <= min(ratios) < 0.95 and 1.05 < max(ratios) <= 1.5 + 0.02
  gray = augment.augment_image(image[..., :1], augment.Augmentation(jitter_prob=1.0,
                                                                    saturation=1.0),
                               np.random.default_rng(0))
  np.testing.assert_array_equal(gray, image[..., :1])  # Saturation leaves gray images alone.
