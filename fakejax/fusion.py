"""Fusion: one detector that weighs the scores of several, fitted on chosen generators only.

Each member (any detector of the workdir: a classifier, a real-only detector, a GAN's
discriminator) scores an image; its logit of P(real), standardised, is one feature. A
logistic regression on those features, fitted on validation reals against the validation
fakes of `fit_on` generators only (balanced, with a little L2), gives the fused P(real).
A held-out family is left out by naming no generator of it in `fit_on` and no member that
trained on it; `config.check_detectors` enforces what the config can see, and the
fitting reads no other generator's fakes. The fitted weights are the detector's one
"checkpoint" (step 0), stored as JSON in `<workdir>/fusions/<name>/fusion.json`.
"""

import dataclasses
import hashlib
import json
import math
import pathlib
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from fakejax.errors import UserError

FUSION_JSON = 'fusion.json'
FUSION_STEP = 0  # A fusion has no checkpoints: its fitted weights stand as step 0.
LOGIT_CLIP = 1e-6  # P(real) kept this far from 0 and 1 before its logit.
FIT_STEPS, FIT_LEARNING_RATE, FIT_L2 = 500, 0.05, 1e-3


class FusionFileError(UserError):
  """A fusion's file that cannot be read as one."""


@dataclasses.dataclass(frozen=True)
class Fusion:
  """A fitted fusion: its members and the logistic regression on their scores."""
  members: tuple[str, ...]
  member_steps: tuple[int, ...]  # The checkpoint of each member it was fitted on.
  fit_on: tuple[str, ...]
  trained_on: tuple[str, ...]  # Every generator whose fakes the fusion or a member saw.
  mean: tuple[float, ...]  # Of each member's logit on the fitting images.
  std: tuple[float, ...]
  weights: tuple[float, ...]  # Of the standardised logits, for the logit of P(real).
  bias: float

  def write(self, path: pathlib.Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataclasses.asdict(self), indent=1) + '\n')

  @classmethod
  def read(cls, path: pathlib.Path) -> 'Fusion':
    try:
      values = json.loads(path.read_text())
      return cls(**{key: tuple(value) if isinstance(value, list) else value
                    for key, value in values.items()})
    except (ValueError, TypeError, AttributeError) as error:
      raise FusionFileError(f'{path} is not a fitted fusion ({error}); delete it and run the '
                            'study again to fit it.') from None


def member_logits(p_real: np.ndarray) -> np.ndarray:
  """P(real) [M, N] of each member -> its logits, finite."""
  p = np.clip(np.asarray(p_real, np.float64), LOGIT_CLIP, 1.0 - LOGIT_CLIP)
  return (np.log(p) - np.log1p(-p)).astype(np.float32)


def fit_weights(real_logits: np.ndarray, fake_logits: np.ndarray) -> tuple[np.ndarray, float]:
  """Logistic regression of "real" on standardised member logits [M, N]: each class
  weighs half, whatever its count. Deterministic (full-batch Adam from zeros)."""
  features = jnp.concatenate([real_logits, fake_logits], axis=1).T  # [N, M]
  labels = jnp.concatenate([jnp.ones(real_logits.shape[1]), jnp.zeros(fake_logits.shape[1])])
  weights = jnp.where(labels == 1, 0.5 / real_logits.shape[1], 0.5 / fake_logits.shape[1])
  params = {'w': jnp.zeros(features.shape[1]), 'b': jnp.zeros(())}
  tx = optax.adam(FIT_LEARNING_RATE)

  def loss(p):
    logits = features @ p['w'] + p['b']
    nll = jnp.sum(weights * optax.sigmoid_binary_cross_entropy(logits, labels))
    return nll + FIT_L2 * jnp.sum(p['w'] ** 2)

  def step(carry, _):
    p, opt_state = carry
    updates, opt_state = tx.update(jax.grad(loss)(p), opt_state)
    return (optax.apply_updates(p, updates), opt_state), None

  (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), None, length=FIT_STEPS)
  return np.asarray(params['w']), float(params['b'])


def fit(members: Sequence[str], member_steps: Sequence[int], fit_on: Sequence[str],
        trained_on: Sequence[str], real_p_real: np.ndarray,
        fake_p_real: dict[str, np.ndarray]) -> Fusion:
  """The fusion of members' P(real) [M, N] on validation reals and on the validation
  fakes of each generator (`fake_p_real`); only `fit_on`'s are read."""
  reals = member_logits(real_p_real)
  fakes = member_logits(np.concatenate([fake_p_real[g] for g in fit_on], axis=1))
  both = np.concatenate([reals, fakes], axis=1)
  mean, std = both.mean(axis=1), both.std(axis=1) + 1e-6
  standardise = lambda x: (x - mean[:, None]) / std[:, None]
  weights, bias = fit_weights(standardise(reals), standardise(fakes))
  return Fusion(members=tuple(members), member_steps=tuple(member_steps), fit_on=tuple(fit_on),
                trained_on=tuple(trained_on),
                mean=tuple(map(float, mean)), std=tuple(map(float, std)),
                weights=tuple(map(float, weights)), bias=bias)


def fused_p_real(fusion: Fusion, p_real: np.ndarray) -> np.ndarray:
  """Members' P(real) [M, N] -> the fusion's [N]."""
  standardised = (member_logits(p_real) - np.asarray(fusion.mean)[:, None]) / np.asarray(
      fusion.std)[:, None]
  logits = np.asarray(fusion.weights) @ standardised + fusion.bias
  return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


# (member's run folder, name, step, an image's digest) -> its P(real). The fusions of a
# study share members and score the same images: the same reals beside each generator's
# fakes, in sets that pool them in different combinations. So each distinct image is
# scored once per process for each member.
_MEMBER_SCORES: dict[tuple, np.float32] = {}


def image_digests(images: np.ndarray) -> list[bytes]:
  """A 16-byte digest of each image's pixels."""
  rows = np.ascontiguousarray(images).reshape(len(images), math.prod(images.shape[1:]))
  return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in rows]


def remember_scores(member_key: tuple, images: np.ndarray, scores: np.ndarray) -> None:
  """Keeps P(real) [N] of `images` under a member's checkpoint (`member_key`), as scored
  elsewhere (its own evaluation), so that a fusion of it scores none of them again."""
  _MEMBER_SCORES.update(((*member_key, digest), score)
                        for digest, score in zip(image_digests(images), scores))


class RememberingScorer:
  """A detector's Scorer whose last checkpoint's scores stay known to the fusions: a
  member's evaluation and its fusions' then score the same images once."""

  def __init__(self, scorer, member_key: tuple):
    self.scorer, self.member_key = scorer, member_key
    self.num_checkpoints = scorer.num_checkpoints

  def score(self, images: np.ndarray) -> np.ndarray:
    """P(real) [K, N] of shared images [N, ...]."""
    p_real = self.scorer.score(images)
    remember_scores(self.member_key, images, p_real[-1])
    return p_real

  def score_own(self, images: np.ndarray) -> np.ndarray:
    """P(real) [K, N] of images [K, N, ...], each checkpoint scoring its own row."""
    p_real = self.scorer.score_own(images)
    remember_scores(self.member_key, images[-1], p_real[-1])
    return p_real


def member_score(member_key: tuple, scorer, images: np.ndarray) -> np.ndarray:
  """P(real) [N] of `images` under a member's last restored checkpoint, each distinct image
  scored once per process for each member (`member_key`: its run folder, name and step),
  whatever set it comes in."""
  keys = [(*member_key, digest) for digest in image_digests(images)]
  first_of_missing = {}
  for index, key in enumerate(keys):
    if key not in _MEMBER_SCORES:
      first_of_missing.setdefault(key, index)
  if first_of_missing:
    start, count = time.perf_counter(), len(first_of_missing)
    scores = scorer.score(images[list(first_of_missing.values())])[-1]
    logging.info('Fusion member %s scored %d images (%.0f img/s); %d were scored before.',
                 member_key[1], count, count / (time.perf_counter() - start),
                 len(images) - count)
    _MEMBER_SCORES.update(zip(first_of_missing, scores))
  return np.array([_MEMBER_SCORES[key] for key in keys], np.float32)


class FusedScorer:
  """A Scorer of one "checkpoint": the members' Scorers (each at the checkpoint it was
  fitted on) score the images, and the fusion weighs them."""
  num_checkpoints = 1

  def __init__(self, fusion: Fusion, member_keys: Sequence[tuple], member_scorers: Sequence):
    self.fusion, self.member_keys = fusion, list(member_keys)
    self.member_scorers = list(member_scorers)

  def score(self, images: np.ndarray) -> np.ndarray:
    """P(real) [1, N] of uint8 images [N, H, W, C]."""
    p_real = np.stack([member_score(key, scorer, images)
                       for key, scorer in zip(self.member_keys, self.member_scorers)])
    return fused_p_real(self.fusion, p_real)[None]

  def score_own(self, images: np.ndarray) -> np.ndarray:
    """P(real) [1, N] of images [1, N, H, W, C]."""
    return self.score(images[0])
