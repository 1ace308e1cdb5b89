"""Scoring images with a discriminator, and its first numbers as a fake detector.

Scores are P(real) in [0, 1]; an image is called real when its score is above 0.5.
Generated images are quantised to uint8 like real uploads before they are scored.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from fakejax import sharding
from fakejax.train import gan_steps

DEFAULT_THRESHOLD = 0.5


def _padded_batches(num_examples: int, batch_size: int):
  """(start, stop) of each batch; the last one is padded to keep one compiled shape."""
  for start in range(0, num_examples, batch_size):
    yield start, min(start + batch_size, num_examples)


def _process_slice(batch: np.ndarray) -> np.ndarray:
  """This process's equal share of a global batch."""
  per_process = len(batch) // jax.process_count()
  begin = jax.process_index() * per_process
  return batch[begin:begin + per_process]


def score_images(score_fn: Callable, d_variables: dict, images_uint8: np.ndarray, *,
                 mesh: Mesh, batch_size: int) -> np.ndarray:
  """P(real) for every image, in jitted batches sharded over the mesh."""
  scores = []
  for start, stop in _padded_batches(len(images_uint8), batch_size):
    batch = images_uint8[start:stop]
    padded = np.concatenate([batch, np.zeros((batch_size - len(batch), *batch.shape[1:]),
                                             batch.dtype)])
    batch_scores = score_fn(d_variables, sharding.global_batch(mesh, _process_slice(padded)))
    scores.append(np.asarray(batch_scores)[:stop - start])
  return np.concatenate(scores) if scores else np.zeros((0,), np.float32)


def sample_images(generate_fn: Callable, g_variables: dict, *, num_images: int, latent_dim: int,
                  seed: int, mesh: Mesh, batch_size: int) -> np.ndarray:
  """`num_images` uint8 samples of a generator, reproducible from `seed`."""
  key = jax.random.PRNGKey(seed)
  images = []
  for index, (start, stop) in enumerate(_padded_batches(num_images, batch_size)):
    latents = np.asarray(jax.random.normal(jax.random.fold_in(key, index), (batch_size, latent_dim)))
    batch = generate_fn(g_variables, sharding.global_batch(mesh, _process_slice(latents)))
    images.append(np.asarray(batch)[:stop - start])
  return np.concatenate(images)


def jit_scoring(models, mesh: Mesh) -> tuple[Callable, Callable]:
  """Jitted (score, generate-as-uint8) functions whose outputs every process can read."""
  score = jax.jit(gan_steps.make_score(models), out_shardings=sharding.replicated(mesh))
  generate = gan_steps.make_generate(models)
  generate_uint8 = jax.jit(lambda variables, latents: gan_steps.to_uint8(generate(variables, latents)),
                           out_shardings=sharding.replicated(mesh))
  return score, generate_uint8


def summarise(real_seen: np.ndarray, real_anomaly: np.ndarray, own_fakes: np.ndarray,
              threshold: float = DEFAULT_THRESHOLD) -> dict[str, dict[str, float]]:
  """Accuracy and recall of the detector on each split, from P(real) scores."""
  def real_split(scores):
    called_real = float(np.mean(scores > threshold)) if len(scores) else float('nan')
    return {'accuracy': called_real, 'real_recall': called_real, 'support': int(len(scores)),
            'mean_p_real': float(np.mean(scores)) if len(scores) else float('nan')}

  fake_recall = float(np.mean(own_fakes <= threshold))
  all_reals = np.concatenate([real_seen, real_anomaly])
  correct = np.sum(all_reals > threshold) + np.sum(own_fakes <= threshold)
  return {
      'seen_class_reals': real_split(real_seen),
      'anomaly_class_reals': real_split(real_anomaly),
      'own_fakes': {'accuracy': fake_recall, 'fake_recall': fake_recall,
                    'support': int(len(own_fakes)), 'mean_p_real': float(np.mean(own_fakes))},
      'own_fakes_vs_all_reals': {
          'accuracy': float(correct / (len(all_reals) + len(own_fakes))),
          'real_recall': float(np.mean(all_reals > threshold)),
          'fake_recall': fake_recall,
          'support': int(len(all_reals) + len(own_fakes)),
      },
      'threshold': threshold,
  }
