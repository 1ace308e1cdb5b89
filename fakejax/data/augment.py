"""Training-time augmentations of uint8 images, deterministic per seed and batch index.

Applied alike to reals and fakes in the grain pipeline, in this order: resize and crop,
flip, shift, rotation, colour jitter, blur, resampling, JPEG. Blur and JPEG re-encoding
follow Wang et al. (2020), who found them to make detectors generalise to unseen generators:
they wash out the fine artefacts one generator leaves and that a detector would
otherwise learn instead of what fakes share.
"""

import dataclasses
import io

import ml_collections
import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from fakejax.data import perturb


@dataclasses.dataclass(frozen=True)
class Augmentation:
  """Each augmentation with the probability that an image gets it; 0 turns it off."""
  # Scale up by resize_scale, then crop back to size at a random place: PyTorch's
  # Resize(256) + RandomCrop(224) is resize_scale 256 / 224.
  resize_crop_prob: float = 0.0
  resize_scale: float = 1.0
  flip_prob: float = 0.0  # Horizontal flip.
  crop_padding: int = 0  # Pad by this many edge pixels, then crop back at a random offset.
  rotation_prob: float = 0.0  # Rotation by U[-rotation_degrees, rotation_degrees].
  rotation_degrees: float = 0.0
  # Colour jitter as torchvision's: brightness, contrast and saturation (colour images
  # only) each scaled by U[1 - strength, 1 + strength].
  jitter_prob: float = 0.0
  brightness: float = 0.0
  contrast: float = 0.0
  saturation: float = 0.0
  blur_prob: float = 0.0  # Gaussian blur, sigma ~ U[0, blur_sigma_max].
  blur_sigma_max: float = 3.0
  # Resampling as uploads get it: down by a factor ~ U[resample_scale_min, 1] and back
  # up, bilinear (data/perturb.py's rescale), so that interpolation is no sign of a fake.
  resample_prob: float = 0.0
  resample_scale_min: float = 0.5
  jpeg_prob: float = 0.0  # JPEG re-encoding, quality ~ U{jpeg_quality_min..100}.
  jpeg_quality_min: int = 30

  PROBABILITIES = ('resize_crop_prob', 'flip_prob', 'rotation_prob', 'jitter_prob', 'blur_prob',
                   'resample_prob', 'jpeg_prob')

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> 'Augmentation':
    return cls(**config.to_dict())

  @property
  def is_identity(self) -> bool:
    return not (self.crop_padding or any(getattr(self, key) for key in self.PROBABILITIES))


def _to_pil(image: np.ndarray) -> Image.Image:
  return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)


def _from_pil(image: Image.Image, channels: int) -> np.ndarray:
  array = np.asarray(image, np.uint8)
  return array[..., None] if channels == 1 else array


def _resize_crop(image: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
  height, width, channels = image.shape
  big_height, big_width = round(height * scale), round(width * scale)
  big = _from_pil(_to_pil(image).resize((big_width, big_height), Image.BILINEAR), channels)
  top = rng.integers(0, big_height - height + 1)
  left = rng.integers(0, big_width - width + 1)
  return big[top:top + height, left:left + width]


def _jitter_colours(image: np.ndarray, options: Augmentation,
                    rng: np.random.Generator) -> np.ndarray:
  pil = _to_pil(image)
  enhancers = [(ImageEnhance.Brightness, options.brightness),
               (ImageEnhance.Contrast, options.contrast)]
  if image.shape[-1] == 3:
    enhancers.append((ImageEnhance.Color, options.saturation))
  for enhancer, strength in enhancers:
    if strength:
      pil = enhancer(pil).enhance(rng.uniform(max(0.0, 1.0 - strength), 1.0 + strength))
  return _from_pil(pil, image.shape[-1])


def augment_image(image: np.ndarray, options: Augmentation, rng: np.random.Generator) -> np.ndarray:
  """One uint8 image [H, W, C], augmented by `options` with draws from `rng`."""
  height, width, channels = image.shape
  if rng.random() < options.resize_crop_prob:
    image = _resize_crop(image, options.resize_scale, rng)
  if rng.random() < options.flip_prob:
    image = image[:, ::-1]
  if options.crop_padding:
    pad = options.crop_padding
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode='edge')
    top, left = rng.integers(0, 2 * pad + 1, size=2)
    image = padded[top:top + height, left:left + width]
  if rng.random() < options.rotation_prob:
    angle = rng.uniform(-options.rotation_degrees, options.rotation_degrees)
    image = _from_pil(_to_pil(image).rotate(angle, resample=Image.BILINEAR), channels)
  if rng.random() < options.jitter_prob:
    image = _jitter_colours(image, options, rng)
  if rng.random() < options.blur_prob:
    sigma = rng.uniform(0.0, options.blur_sigma_max)
    image = _from_pil(_to_pil(image).filter(ImageFilter.GaussianBlur(sigma)), channels)
  # Only when on: configs without it keep their random stream, so their augmentations.
  if options.resample_prob and rng.random() < options.resample_prob:
    image = perturb.rescale(image[None], rng.uniform(options.resample_scale_min, 1.0))[0]
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
