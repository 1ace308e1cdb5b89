"""The generators' quality table: each generator's samples against the seen-class test reals.

The feature network (`train/feature_trainer.py`) learns the seen classes from the train
reals; each generator's samples and the test reals are compared in its feature space
(`evaluation/quality.py`). The first row, validation reals against the same test reals,
is the floor a perfect generator would reach with that many images.
"""

import json
import pathlib
from collections.abc import Callable, Mapping

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh
from PIL import Image

from fakejax.data import pipeline
from fakejax.evaluation import intervals, quality, restore, scoring
from fakejax.train import feature_trainer, loop
from fakejax.workdir import Workdir

QUALITY_JSON, QUALITY_MD = 'quality.json', 'quality.md'
REFERENCE_ROW = 'reals (validation)'
GRID_SAMPLES = 64
# Latents of the quality samples, apart from training's and the evaluation's.
QUALITY_SAMPLES_SEED_OFFSET = 4_000_037


def quality_row(real_features: np.ndarray, fake_features: np.ndarray,
                neighbours: int) -> dict[str, float]:
  scores = quality.precision_recall(real_features, fake_features, k=neighbours)
  return {'frechet_distance': float(quality.frechet_distance(real_features, fake_features)),
          'precision': float(scores['precision']), 'recall': float(scores['recall'])}


def measure(samples: Mapping[str, np.ndarray], reals: pipeline.StudySplits,
            features: Callable[[np.ndarray], np.ndarray], neighbours: int) -> dict[str, dict]:
  """Generator name (and REFERENCE_ROW) -> Fréchet distance, precision and recall."""
  test_features = features(reals.test_seen)
  rows = {REFERENCE_ROW: quality_row(test_features, features(reals.validation), neighbours)}
  for name, images in samples.items():
    rows[name] = quality_row(test_features, features(images), neighbours)
  return rows


def feature_function(quality_config: ml_collections.ConfigDict, settings: loop.LoopSettings,
                     data_config: ml_collections.ConfigDict, workdir: Workdir, mesh: Mesh,
                     batch_size: int) -> Callable[[np.ndarray], np.ndarray]:
  """Trains (or restores) the feature network; returns uint8 images -> features [N, D]."""
  images, labels = pipeline.labelled_train_reals(data_config, settings.seed)
  model, state = feature_trainer.train_feature_classifier(
      quality_config.feature_classifier, settings, images, labels, workdir.feature_classifier(),
      mesh)
  scorer = scoring.Scorer(feature_trainer.make_features(model), restore.stack([state.params]),
                          mesh, batch_size)
  return lambda uint8_images: scorer.score(uint8_images)[0]


def markdown(rows: Mapping[str, dict], details: Mapping[str, dict]) -> str:
  """The table: one row per generator, with its family, architecture, steps and training time."""
  lines = ['| generator | family | architecture | steps | training (s) | Fréchet distance | '
           'precision | recall |', '|---|---|---|---|---|---|---|---|']
  for name, row in rows.items():
    info = details.get(name, {})
    lines.append(f"| {name} | {info.get('family', '')} | {info.get('architecture', '')} | "
                 f"{info.get('steps', '')} | "
                 f"{info.get('train_seconds', '')} | "
                 + ' | '.join(intervals.format_value(row[key], 3)
                              for key in ('frechet_distance', 'precision', 'recall')) + ' |')
  if any(intervals.is_interval(value) for row in rows.values() for value in row.values()):
    lines += ['', f'Rows of several seeds: {intervals.INTERVAL}.']
  return '\n'.join(lines) + '\n'


def write(folder: pathlib.Path, rows: Mapping[str, dict], details: Mapping[str, dict],
          samples: Mapping[str, np.ndarray]) -> str:
  """Writes the table as JSON and Markdown, and a grid of each generator's first
  `GRID_SAMPLES` samples as `samples_<name>.png` (process 0); returns the Markdown."""
  table = markdown(rows, details)
  if jax.process_index() == 0:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / QUALITY_JSON).write_text(json.dumps(
        {'rows': rows, 'details': details, 'reference_row': REFERENCE_ROW}, indent=2) + '\n')
    (folder / QUALITY_MD).write_text(table)
    for name, images in samples.items():
      grid = loop.image_grid(images[:GRID_SAMPLES])
      Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(
          folder / f'samples_{name}.png')
  return table
