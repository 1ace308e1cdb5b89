"""Which detector for the marketplace: every detector judged on families it never saw.

A marketplace does not know which generator a seller used, and can review only a small
share of honest uploads. So a detector is judged here on each generator family it did not
train on, at the threshold chosen on validation to flag at most the review budget of reals
(config.evaluation.review_budget): the fakes it catches there, and the honest uploads it
flags (seen-class, anomaly-class, JPEG-compressed and resampled reals). Candidates come
from detectors studies (`fakejax.studies.dedicated`), read from their evaluation reports:
- the leave-one-family-out protocol: for each family, the classifier of every other one;
- any other classifier (e.g. 'simulated', trained on no generator's fakes), every
  real-only detector (config.real_only: no fakes at all), the study's fusions (pooled, as
  the leave-one-family-out classifiers), and every GAN's discriminator, on the families
  it has no generator of (neither itself nor any of its members).
Detectors are ranked by the mean share of an unseen family's fakes caught, then the worst.
"""

import dataclasses
import json
import pathlib
from collections.abc import Sequence

import numpy as np

from fakejax import config as config_lib, errors
from fakejax.evaluation import assemble, intervals, restore, robustness
from fakejax.studies import common, dedicated
from fakejax.workdir import RunDir, Workdir

LEAVE_ONE_OUT = 'leave-one-family-out'
FUSIONS = 'fusions, each on the families it never saw'
# The figures of a candidate (mean and worst over its unseen families): AP, and at the
# review budget, fakes caught and the share of each kind of real flagged.
FIGURES = ('average_precision', 'fake_recall_budget', 'seen_flagged', 'anomaly_flagged')


class NoCandidatesError(errors.UserError, FileNotFoundError):
  """No evaluated detectors study with families among the given workdirs."""


def budget_of(path: pathlib.Path) -> str:
  """The review-budget threshold's name in a study's reports."""
  return assemble.budget_threshold(restore.workdir_config(Workdir(path)).evaluation)


@dataclasses.dataclass(frozen=True)
class Candidate:
  """A detector of a study, as the ranking names it, and its rows per seed."""
  study: str
  detector: str
  rows_by_seed: dict[int | None, list[dict]]


def flag_rates(row: dict) -> dict:
  """A held-out row (`dedicated.held_out_row`) with its real recalls at the budget turned
  into shares of reals flagged (1 - recall), the review load they make."""
  out = dict(row)
  for key in [k for k in row if k.endswith('_real_recall_budget')]:
    flagged = key.replace('_real_recall_budget', '_flagged').replace('seen_reals_', '')
    out[flagged] = None if row[key] is None else 1.0 - row[key]
  return out


def _reports(run: RunDir, seeds: Sequence[int]) -> dict[int | None, dict]:
  """The latest report of a detector's run, per seed (None: a run of one seed)."""
  steps = run.evaluated_steps()
  if not steps:
    raise NoCandidatesError(f'{run.path} has no evaluation report yet: run '
                            f'`python -m fakejax.evaluate` on its workdir first.')
  if len(seeds) < 2:
    return {None: json.loads(run.report_json(steps[-1]).read_text())}
  return {seed: json.loads(run.report_json(steps[-1], seed).read_text()) for seed in seeds}


def unseen_rows(families: dict, detector: str, report: dict, budget: str) -> list[dict]:
  """The rows of every family the detector has no generator of."""
  unseen = robustness.unseen_families(families, report['trained_on'])
  return [flag_rates(dedicated.held_out_row(family, members, detector, report, budget))
          for family, members in unseen.items()]


def study_candidates(path: pathlib.Path, extra_sets: Sequence[str]) -> list[Candidate]:
  """The candidates of one detectors study: leave-one-family-out, the classifiers of
  `extra_sets` that it trained, and its discriminators (evaluated on its splits)."""
  workdir = Workdir(path)
  config = restore.workdir_config(workdir)
  families = dict(config.families)
  budget = assemble.budget_threshold(config.evaluation)
  seeds = common.classifier_seeds(config)
  study = f'{path.name} ({dedicated.classifier_kind(config.classifier)})'
  held_out = {}
  for family, name in config_lib.held_out_sets(config).items():
    for seed, report in _reports(workdir.classifier(name), seeds).items():
      held_out.setdefault(seed, []).extend(
          unseen_rows({family: families[family]}, name, report, budget))
  candidates = [Candidate(study, LEAVE_ONE_OUT, held_out)] if held_out else []
  for name in extra_sets:
    if name in config.train_sets:
      candidates.append(Candidate(study, name, {
          seed: unseen_rows(families, name, report, budget)
          for seed, report in _reports(workdir.classifier(name), seeds).items()}))
  for name in config.real_only:  # Trained on no generator: every family is unseen.
    candidates.append(Candidate(study, name, {
        seed: unseen_rows(families, name, report, budget)
        for seed, report in _reports(workdir.real_only(name), seeds).items()}))
  fused = {}  # Each fusion on the families it never saw, pooled: one protocol.
  for name in config.fusions:
    fused.setdefault(None, []).extend(
        unseen_rows(families, name, _reports(workdir.fusion(name), ())[None], budget))
  if fused:
    candidates.append(Candidate(study, FUSIONS, fused))
  for gan in config.gans:
    run = workdir.discriminator_reports(gan)
    if (run.path / 'eval').is_dir():
      report = _reports(run, ())[None]
      candidates.append(Candidate(study, f'D of {gan}', {
          None: unseen_rows(families, f'D of {gan}', report, budget)}))
  return candidates


def all_candidates(paths: Sequence[pathlib.Path], extra_sets: Sequence[str]) -> list[Candidate]:
  """The candidates of every study; a discriminator once (studies sharing a GAN workdir
  evaluate the same discriminators), from the first study that has it."""
  out, discriminators = [], set()
  for path in paths:
    for candidate in study_candidates(path, extra_sets):
      if candidate.detector.startswith('D of '):
        if candidate.detector in discriminators:
          continue
        discriminators.add(candidate.detector)
      out.append(candidate)
  return out


def summary(candidate: Candidate) -> dict:
  """Mean and worst over the candidate's unseen families of every figure (of each seed,
  then as intervals across seeds)."""
  def of_seed(rows: list[dict]) -> dict:
    columns = [c for c in rows[0] if c in FIGURES or c.endswith('_flagged')
               or c.startswith('fake_recall_review_budget_')]
    out = {}
    for column in columns:
      values = [row[column] for row in rows if row[column] is not None]
      # Worst: fewest fakes caught, most reals flagged.
      worst = np.max if column.endswith('_flagged') else np.min
      out[f'{column}_mean'] = float(np.mean(values)) if values else None
      out[f'{column}_worst'] = float(worst(values)) if values else None
    return {'families': len(rows), **out}
  by_seed = {seed: [of_seed(rows)] for seed, rows in candidate.rows_by_seed.items()}
  (combined,) = common.across_seeds(by_seed)
  return {'study': candidate.study, 'detector': candidate.detector, **combined}


def ranked(summaries: list[dict]) -> list[dict]:
  """Most fakes caught at the budget first (mean over unseen families), then the worst."""
  key = lambda s: (intervals.mean_of(s['fake_recall_budget_mean']),
                   intervals.mean_of(s['fake_recall_budget_worst']))
  return sorted(summaries, key=key, reverse=True)
