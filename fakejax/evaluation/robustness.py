"""Robustness sweeps: detectors on test reals and fakes perturbed alike, level by level.

Uploads are re-encoded, resized, blurred and noisy whether they are real or generated. For
each perturbation level (`fakejax.data.perturb`: JPEG quality, Gaussian blur, resize,
noise), every test real and every test fake of the families a detector never saw is
perturbed the same way and scored; the threshold stays the one chosen on clean validation
reals for the review budget, as a deployed detector's would. Per level and family: AP, the
share of the family's fakes caught, and the share of reals flagged; then the mean and the
worst family, as the leave-one-family-out table gives them.
"""

import dataclasses
import json
import pathlib
import time
from collections.abc import Sequence

import jax.numpy as jnp
import matplotlib

matplotlib.use('Agg')  # Files only; no display.
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from absl import logging  # noqa: E402

from fakejax import config as config_lib  # noqa: E402
from fakejax.data import perturb  # noqa: E402
from fakejax.evaluation import metrics  # noqa: E402

CLEAN = 'clean'
DEFAULT_LEVELS = ('jpeg_95', 'jpeg_75', 'jpeg_50', 'jpeg_30', 'blur_0.5', 'blur_1', 'blur_2',
                  'rescale_0.75', 'rescale_0.5', 'noise_0.01', 'noise_0.02', 'noise_0.05')


@dataclasses.dataclass(frozen=True)
class Target:
  """What one sweep row judges: a detector, and the families (name -> generators) it is
  judged on; `label` groups targets into one line (leave-one-family-out: one per family)."""
  label: str
  detector: str
  families: dict[str, tuple[str, ...]]


def unseen_families(families: dict, trained_on: Sequence[str]) -> dict[str, tuple[str, ...]]:
  """The families none of whose generators the detector trained on."""
  return {f: tuple(members) for f, members in families.items() if not set(members) & set(trained_on)}


def perturbed(images: np.ndarray, level: str) -> np.ndarray:
  return images if level == CLEAN else perturb.perturb(images, level)


def family_rows(score, threshold: float, reals: np.ndarray,
                fakes: dict[str, np.ndarray]) -> list[dict]:
  """Per family: AP against the reals, fakes caught and reals flagged at `threshold`.
  `score(images) -> P(real) [N]`; fakes by family."""
  real_fake_prob = 1.0 - score(reals)
  flagged = float(np.mean(real_fake_prob >= threshold))
  rows = []
  for family, images in fakes.items():
    fake_prob = 1.0 - score(images)
    labels = np.concatenate([np.zeros(len(reals), np.int32), np.ones(len(images), np.int32)])
    points = metrics.roc_points(jnp.asarray(np.concatenate([real_fake_prob, fake_prob])),
                                jnp.asarray(labels))
    rows.append({'family': family, 'average_precision': float(metrics.average_precision(points)),
                 'fake_recall': float(np.mean(fake_prob >= threshold)),
                 'reals_flagged': flagged})
  return rows


def summarise(rows: list[dict]) -> list[dict]:
  """Per label and level: the mean and the worst family (fewest caught, lowest AP)."""
  out = []
  for label, level in dict.fromkeys((row['label'], row['perturbation']) for row in rows):
    at = [row for row in rows if row['label'] == label and row['perturbation'] == level]
    values = lambda key: [row[key] for row in at]
    out.append({'detector': label, 'perturbation': level, 'families': len(at),
                'average_precision_mean': float(np.mean(values('average_precision'))),
                'average_precision_worst': float(np.min(values('average_precision'))),
                'fake_recall_mean': float(np.mean(values('fake_recall'))),
                'fake_recall_worst': float(np.min(values('fake_recall'))),
                'reals_flagged': float(np.max(values('reals_flagged')))})
  return out


def markdown(summaries: list[dict], budget: str) -> str:
  lines = ['# Robustness: reals and fakes perturbed alike', '',
           f'Each row: a detector on the families it never saw, every test image perturbed '
           f'the same way; caught and flagged at its {budget} threshold chosen on clean '
           'validation reals. Mean and worst over families; reals flagged: the most over '
           'the detectors of a protocol (one per family).', '',
           '| detector | perturbation | families | AP mean | AP worst | caught mean | '
           'caught worst | reals flagged |', '|---|---|---|---|---|---|---|---|']
  for s in summaries:
    lines.append(f"| {s['detector']} | {s['perturbation']} | {s['families']} | "
                 + ' | '.join(f'{s[key]:.3f}' for key in (
                     'average_precision_mean', 'average_precision_worst', 'fake_recall_mean',
                     'fake_recall_worst', 'reals_flagged')) + ' |')
  return '\n'.join(lines) + '\n'


PLOTTED = {'average_precision_mean': 'AP (mean over families)',
           'fake_recall_mean': 'caught at the budget (mean)',
           'reals_flagged': 'reals flagged at the budget'}


def plot(summaries: list[dict], path: pathlib.Path) -> None:
  """Per perturbation kind (columns): AP, fakes caught and reals flagged (rows) against the
  level, a line per detector; the clean figure stands at the gentlest end of every kind."""
  kinds = list(dict.fromkeys(perturb.parse(s['perturbation'])[0] for s in summaries
                             if s['perturbation'] != CLEAN))
  labels = list(dict.fromkeys(s['detector'] for s in summaries))
  fig, axes = plt.subplots(3, len(kinds), figsize=(3.2 * len(kinds), 8), squeeze=False)
  for column, kind in enumerate(kinds):
    for label in labels:
      mine = [s for s in summaries if s['detector'] == label]
      points = [s for s in mine if s['perturbation'] != CLEAN
                and perturb.parse(s['perturbation'])[0] == kind]
      clean = [s for s in mine if s['perturbation'] == CLEAN]
      names = [CLEAN] * len(clean) + [s['perturbation'] for s in points]
      for row, key in enumerate(PLOTTED):
        axes[row, column].plot(range(len(names)), [s[key] for s in clean + points], marker='o',
                               label=label)
        axes[row, column].set_xticks(range(len(names)), names, rotation=30, ha='right',
                                     fontsize=7)
        axes[row, column].set_ylim(0, 1)
    axes[0, column].set_title(kind)
  for row, key in enumerate(PLOTTED):
    axes[row, 0].set_ylabel(PLOTTED[key])
  axes[0, 0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def write(summaries: list[dict], rows: list[dict], budget: str, prefix: pathlib.Path) -> str:
  """`<prefix>.md`, `.json` (summaries and every family's rows) and `.png`."""
  text = markdown(summaries, budget)
  prefix.with_suffix('.md').write_text(text)
  prefix.with_suffix('.json').write_text(
      json.dumps({'summary': summaries, 'families': rows}, indent=1) + '\n')
  plot(summaries, prefix.with_suffix('.png'))
  return text


LEAVE_ONE_OUT, FUSIONS = 'leave-one-family-out', 'fusions'


def named_detectors(config, name: str) -> list[str]:
  """The workdir's detectors a name stands for: 'leave-one-family-out' (each family's
  held-out classifier), 'fusions' (every fusion), or the one it names."""
  if name == LEAVE_ONE_OUT:
    return list(config_lib.held_out_sets(config).values())
  return list(config.fusions) if name == FUSIONS else [name]


def targets(config, name: str, trained_on: dict[str, Sequence[str]]) -> list[Target]:
  """The targets a name stands for (`named_detectors`): each held-out classifier on its
  family, any other detector on its unseen families; `trained_on` maps each detector to
  its generators."""
  families = dict(config.families)
  if name == LEAVE_ONE_OUT:
    return [Target(name, detector, {family: tuple(families[family])})
            for family, detector in config_lib.held_out_sets(config).items()]
  return [Target(name, detector, unseen_families(families, trained_on[detector]))
          for detector in named_detectors(config, name)]


def sweep_rows(scorers: dict, thresholds: dict[str, float], all_targets: list[Target],
               reals: np.ndarray, fakes: dict[str, np.ndarray], levels: Sequence[str]) -> list[dict]:
  """Every target's rows at every level (`level_rows`), each level's images perturbed once.
  `scorers[detector](images) -> P(real) [N]`; `fakes` by family."""
  rows, start = [], time.perf_counter()
  for done, level in enumerate((CLEAN, *levels)):
    if done:
      elapsed = time.perf_counter() - start
      logging.info('Level %d/%d (%s); %.0f s so far, ETA %.0f s.', done + 1, len(levels) + 1,
                   level, elapsed, elapsed / done * (len(levels) + 1 - done))
    images = {'reals': perturbed(reals, level),
              **{family: perturbed(f, level) for family, f in fakes.items()}}
    for target in all_targets:
      own = {family: images[family] for family in target.families}
      rows.extend({'label': target.label, 'detector': target.detector, 'perturbation': level,
                   **row}
                  for row in family_rows(scorers[target.detector], thresholds[target.detector],
                                         images['reals'], own))
  return rows
