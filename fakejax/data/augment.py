"""Training-time augmentations of uint8 images, deterministic per seed and batch index.

Applied alike to reals and fakes in the grain pipeline. Blur and JPEG re-encoding follow
Wang et al. (2020), who found them to make detectors generalise to unseen generators:
they wash out the fine artefacts one generator leaves and that a detector would
otherwise learn instead of what fakes share.
"""

import dataclasses
import io

import ml_collections
import numpy as np
from PIL import Image, ImageFilter


@dataclasses.dataclass(frozen=True)
class Augmentation:
  flip_prob: float = 0.0  # Horizontal flip.
  crop_padding: int = 0  # Pad by this many edge pixels, then crop back at a random offset.
  blur_prob: float = 0.0  # Gaussian blur, sigma ~ U[0, blur_sigma_max].
  blur_sigma_max: float = 3.0
  jpeg_prob: float = 0.0  # JPEG re-encoding, quality ~ U{jpeg_quality_min..100}.
  jpeg_quality_min: int = 30

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> 'Augmentation':
    return cls(**config.to_dict())

  @property
  def is_identity(self) -> bool:
    return not (self.flip_prob or self.crop_padding or self.blur_prob or self.jpeg_prob)


def _to_pil(image: np.ndarray) -> Image.Image:
  return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)


def _from_pil(image: Image.Image, channels: int) -> np.ndarray:
  array = np.asarray(image, np.uint8)
  return array[..., None] if channels == 1 else array


def augment_image(image: np.ndarray, options: Augmentation, rng: np.random.Generator) -> np.ndarray:
  """One uint8 image [H, W, C], augmented by `options` with draws from `rng`."""
  height, width, channels = image.shape
  if rng.random() < options.flip_prob:
    image = image[:, ::-1]
  if options.crop_padding:
    pad = options.crop_padding
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode='edge')
    top, left = rng.integers(0, 2 * pad + 1, size=2)
    image = padded[top:top + height, left:left + width]
  if rng.random() < options.blur_prob:
    sigma = rng.uniform(0.0, options.blur_sigma_max)
    image = _from_pil(_to_pil(image).filter(ImageFilter.GaussianBlur(sigma)), channels)
  if rng.random() < options.jpeg_prob:
    buffer = io.BytesIO()
    _to_pil(image).save(buffer, format='JPEG',
                        quality=int(rng.integers(options.jpeg_quality_min, 101)))
    image = _from_pil(Image.open(buffer), channels)
  return np.ascontiguousarray(image)


def augment_batch(batch: dict, rng: np.random.Generator, options: Augmentation) -> dict:
  """The batch with each of its images augmented independently."""
  images = np.stack([augment_image(image, options, rng) for image in batch['image']])
  return {**batch, 'image': images}
