"""What uploads go through before a detector sees them: JPEG, resampling, blur, noise.

A perturbation is named `<kind>_<level>`: 'jpeg_75' (re-encoded at quality 75),
'rescale_0.5' (bilinear down to half the size and back up), 'blur_1' (Gaussian blur of
sigma 1 pixel), 'noise_0.05' (Gaussian noise of that standard deviation, in units of the
full intensity range). Each maps uint8 images [N, H, W, C] to uint8 images of the same
shape, deterministically (noise from a fixed seed), so evaluations are reproducible.
The evaluation uses them as real sources of `config.evals`: 'seen@jpeg_75' is the seen-class
test reals re-encoded, where a detector must not flag honest photos for their format.
"""

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageFilter


def _pil_map(images: np.ndarray, transform: Callable[[Image.Image], Image.Image]) -> np.ndarray:
  """`transform` of each image through PIL, back to uint8 [N, H, W, C]."""
  channels = images.shape[-1]
  out = np.empty_like(images)
  for index, image in enumerate(images):
    pil = Image.fromarray(image[..., 0] if channels == 1 else image)
    array = np.asarray(transform(pil), np.uint8)
    out[index] = array[..., None] if channels == 1 else array
  return out


def jpeg(images: np.ndarray, quality: float) -> np.ndarray:
  def encode(pil: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    pil.save(buffer, format='JPEG', quality=int(quality))
    return Image.open(buffer)
  return _pil_map(images, encode)


def rescale(images: np.ndarray, factor: float) -> np.ndarray:
  height, width = images.shape[1:3]
  small = (max(1, round(width * factor)), max(1, round(height * factor)))
  return _pil_map(images, lambda pil: pil.resize(small, Image.BILINEAR).resize(
      (width, height), Image.BILINEAR))


def blur(images: np.ndarray, sigma: float) -> np.ndarray:
  return _pil_map(images, lambda pil: pil.filter(ImageFilter.GaussianBlur(sigma)))


def noise(images: np.ndarray, std: float) -> np.ndarray:
  draws = np.random.default_rng(0).normal(0.0, std * 255.0, images.shape)
  return np.clip(np.rint(images + draws), 0, 255).astype(np.uint8)


# Kind -> (images, level) -> images; a level's valid range.
PERTURBATIONS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    'jpeg': jpeg, 'rescale': rescale, 'blur': blur, 'noise': noise}
LEVELS = {'jpeg': (1, 100), 'rescale': (0.01, 1.0), 'blur': (0.0, 100.0), 'noise': (0.0, 10.0)}


def parse(name: str) -> tuple[str, float]:
  """('jpeg', 75.0) of 'jpeg_75'; a ValueError naming the known kinds otherwise."""
  kind, _, level = name.rpartition('_')
  try:
    value = float(level)
  except ValueError:
    value = None
  if kind not in PERTURBATIONS or value is None or not (
      LEVELS[kind][0] <= value <= LEVELS[kind][1]):
    raise ValueError(f'Unknown perturbation {name!r}: use <kind>_<level>, kind one of '
                     f'{sorted(PERTURBATIONS)} with levels in {LEVELS}, e.g. jpeg_75.')
  return kind, value


def perturb(images: np.ndarray, name: str) -> np.ndarray:
  """`images` through the perturbation `name` (e.g. 'jpeg_75')."""
  kind, level = parse(name)
  return PERTURBATIONS[kind](images, level)


def split_source(source: str) -> tuple[str, str]:
  """('seen', 'jpeg_75') of a real source 'seen@jpeg_75'; ('seen', '') of 'seen'."""
  base, _, perturbation = source.partition('@')
  return base, perturbation
