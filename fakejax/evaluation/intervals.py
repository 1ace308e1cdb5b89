"""Figures across seeds: mean and 95% Student-t interval, and the per-seed values.

A report of K seeds has the structure of one seed's report, each number replaced by
`{'mean', 'half_width', 'values'}` where the seeds disagree (numbers all seeds share, such
as split sizes, stay numbers). The interval is Student's t with K - 1 degrees of freedom
over the K seeds' values: it covers the variation between training runs, not the sampling
of test images within one.
"""

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
_DROPPED = object()  # combine()'s mark of a per-seed curve left out.
INTERVAL = f'mean ± half-width of the {CONFIDENCE:.0%} Student-t interval over seeds'


def t_interval(values: Sequence[float]) -> dict:
  """{'mean', 'half_width', 'values'} of per-seed `values` (NaNs left out of mean and width)."""
  finite = np.asarray([v for v in values if v is not None and not math.isnan(v)], float)
  mean = float(finite.mean()) if finite.size else math.nan
  half_width = math.nan
  if finite.size > 1:
    quantile = stats.t.ppf(0.5 + CONFIDENCE / 2, finite.size - 1)
    half_width = float(quantile * finite.std(ddof=1) / math.sqrt(finite.size))
  return {'mean': mean, 'half_width': half_width, 'values': [float(v) for v in values]}


def is_interval(value) -> bool:
  return isinstance(value, dict) and set(value) == {'mean', 'half_width', 'values'}


def _is_number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def _same(values: list) -> bool:
  first = values[0]
  return all(v == first or (_is_number(v) and _is_number(first) and math.isnan(v)
                            and math.isnan(first)) for v in values)


def combine(reports: Sequence) -> object:
  """Per-seed reports (same structure) -> one report: numbers that differ become intervals,
  per-seed curves (lists that differ) are dropped, everything shared is kept."""
  first = reports[0]
  if isinstance(first, dict):
    combined = {key: combine([r[key] for r in reports]) for key in first
                if all(key in r for r in reports)}
    return {key: value for key, value in combined.items() if value is not _DROPPED}
  if _same(list(reports)):
    return first
  if all(_is_number(r) for r in reports):
    return t_interval(reports)
  return _DROPPED


def mean_of(value) -> float:
  """The figure to rank by: an interval's mean, or the number itself."""
  return value['mean'] if is_interval(value) else value


def format_value(value, digits: int = 2) -> str:
  """'0.78 ± 0.05' for an interval, '0.78' for a number, '—' for NaN or nothing."""
  if is_interval(value):
    if math.isnan(value['mean']):
      return '—'
    if math.isnan(value['half_width']):
      return f"{value['mean']:.{digits}f}"
    return f"{value['mean']:.{digits}f} ± {value['half_width']:.{digits}f}"
  is_float = isinstance(value, (float, np.floating))
  if value is None or (is_float and math.isnan(value)):
    return '—'
  return f'{value:.{digits}f}' if is_float else str(value)


def combine_seeds(reports_by_seed: dict[int, dict]) -> dict:
  """One checkpoint's reports of several seeds -> one report with intervals (no images)."""
  reports = [{key: value for key, value in r.items() if key != 'mistakes'}
             for r in reports_by_seed.values()]
  return {**combine(reports), 'seeds': list(reports_by_seed), 'interval': INTERVAL}
