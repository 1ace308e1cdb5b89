"""The study's data: reals, and every generator's fakes drawn once into a stored pool.

Each generator is a `FakeSource`: a description of what it is made from (a stored pool
is reused only for the same) and a function that draws its train, validation and test
fakes. Fakes are uint8 and stored as a TFDS dataset like the reals, so no detector can
learn a storage or quantisation shortcut.
"""

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from fakejax.data import image_sets, pipeline

# Seeds of the latent vectors of fakes: test and validation (the evaluation's) and
# train (the classifiers'), each apart from the others and from training's.
TEST_FAKES_SEED_OFFSET = 1_000_001
VALIDATION_FAKES_SEED_OFFSET = 2_000_003
TRAIN_FAKES_SEED_OFFSET = 3_000_017


@dataclasses.dataclass(frozen=True)
class StudyData:
  reals: pipeline.StudySplits
  # Generator name -> {'train', 'validation', 'test'} -> uint8 fakes [N, H, W, C].
  fakes: dict[str, dict[str, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class FakeSource:
  """A generator of the study: what its fakes are made from, and how to draw them."""
  description: dict
  draw: Callable[[], dict[str, np.ndarray]]


def sampler_fakes(generate: Callable[[int, int], np.ndarray], num_train: int, num_eval: int,
                  seed: int) -> dict[str, np.ndarray]:
  """Train, validation and test fakes of `generate(num, seed)`, from distinct latents."""
  return {'train': generate(num_train, seed + TRAIN_FAKES_SEED_OFFSET),
          'validation': generate(num_eval, seed + VALIDATION_FAKES_SEED_OFFSET),
          'test': generate(num_eval, seed + TEST_FAKES_SEED_OFFSET)}


def reconstruction_fakes(reconstruct: Callable[[np.ndarray], np.ndarray],
                         reals: pipeline.StudySplits, num_train: int,
                         num_eval: int) -> dict[str, np.ndarray]:
  """An autoencoder's fakes: its reconstructions of train, validation and seen test reals."""
  return {'train': reconstruct(reals.train[:num_train]),
          'validation': reconstruct(reals.validation[:num_eval]),
          'test': reconstruct(reals.test_seen[:num_eval])}


def load_pool(pool_dir, sources: Mapping[str, FakeSource], *, num_train: int, num_eval: int,
              seed: int) -> dict[str, dict[str, np.ndarray]]:
  """Every generator's fakes, from the stored pool (drawn and stored the first time).

  The pool is a TFDS dataset in `pool_dir` with the generator's name on each fake. It is
  reused only if made from the same generators, counts and seed.
  """
  # As stored (JSON): a config's tuples compare equal to the lists they are read back as.
  description = json.loads(json.dumps({
      'generators': {name: source.description for name, source in sources.items()},
      'num_train': num_train, 'num_validation_and_test': num_eval, 'seed': seed}))
  if not image_sets.is_prepared(pool_dir):
    # Drawing is collective, so every process takes part; process 0 stores the pool.
    fakes = {}
    for name, source in sources.items():
      logging.info('Drawing the fakes of %s for the pool in %s.', name, pool_dir)
      fakes[name] = source.draw()
    if jax.process_index() == 0:
      image_sets.write_fake_pool(pool_dir, fakes, description)
    multihost_utils.sync_global_devices('fake pool written')
  logging.info('Fakes of %s from the pool in %s.', sorted(sources), pool_dir)
  return image_sets.read_fake_pool(pool_dir, description)


def folder_study_data(folder: str, image_shape: tuple[int, int, int], data_dir: str,
                      validation_fraction: float, seed: int) -> StudyData:
  """A real/fake folder: its fakes are generator 'folder'; validation is held out of train."""
  prepared = image_sets.prepare_folder(folder, image_shape, seed, data_dir)
  parts = image_sets.read_folder(prepared)
  train_reals, validation_reals = pipeline.hold_out(parts['train'].reals, validation_fraction,
                                                    seed)
  train_fakes, validation_fakes = pipeline.hold_out(parts['train'].fakes, validation_fraction,
                                                    seed)
  reals = pipeline.StudySplits(train=train_reals, validation=validation_reals,
                               test_seen=parts['test'].reals,
                               test_anomaly=np.zeros((0, *image_shape), np.uint8))
  return StudyData(reals=reals, fakes={'folder': {
      'train': train_fakes, 'validation': validation_fakes, 'test': parts['test'].fakes}})


def fakes_of(data: StudyData, generators: Sequence[str], split: str) -> np.ndarray:
  """The `split` fakes of several generators, pooled in order (none: an empty array)."""
  if not generators:
    return np.zeros((0, *data.reals.train.shape[1:]), np.uint8)
  return np.concatenate([data.fakes[name][split] for name in generators])
