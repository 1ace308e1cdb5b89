r"""Which detector for the marketplace: detectors studies' detectors ranked on unseen families.

  python tools/rank_detectors.py runs/detectors_npr runs/detectors_image \
      --sets=simulated --out=docs/marketplace_table.md

For each detectors study workdir (fakejax.studies.dedicated, evaluated), its candidates: the
leave-one-family-out protocol (each family judged by the classifier of all the others), the
classifiers named by --sets, and its discriminators, each on the families it never trained
on, at the review-budget threshold chosen on validation (config.evaluation.review_budget).
Prints (and with --out writes) a Markdown table ranked by the mean share of an unseen
family's fakes caught, with the worst family and the share of honest uploads flagged, then
the first candidate's row per family. Runs of several seeds show mean ± 95% interval.
"""

import argparse
import pathlib
import sys

from fakejax import errors
from fakejax.evaluation import marketplace
from fakejax.studies import dedicated


def ranking_markdown(summaries: list[dict], budget: str) -> str:
  """The ranking table: mean and worst over unseen families, flag rates at the budget."""
  # Every study's columns, in first-seen order; '-' where a study's reports lack one.
  keys = list(dict.fromkeys(key for s in summaries for key in s))
  flagged = [key[:-len('_mean')] for key in keys if key.endswith('_flagged_mean')]
  others = [key[:-len('_mean')] for key in keys
            if key.startswith('fake_recall_review_budget_') and key.endswith('_mean')]
  header = ['study', 'detector', 'unseen families', 'AP mean', 'AP worst',
            f'caught ({budget}) mean', 'caught worst',
            *(f"caught ({name[len('fake_recall_'):]}) mean" for name in others),
            *(f"{name[:-len('_flagged')]} reals flagged (mean / most)" for name in flagged)]
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for s in summaries:
    cells = [s['study'], s['detector'], str(s['families']),
             *(dedicated.cell(s[f'{key}_{which}'])
               for key in ('average_precision', 'fake_recall_budget') for which in ('mean', 'worst')),
             *(dedicated.cell(s.get(f'{name}_mean')) for name in others),
             *(f"{dedicated.cell(s.get(f'{name}_mean'))} / {dedicated.cell(s.get(f'{name}_worst'))}"
               for name in flagged)]
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def families_markdown(candidate: marketplace.Candidate) -> str:
  """One candidate's figures per unseen family (seed by seed where several)."""
  rows = [row for rows in candidate.rows_by_seed.values() for row in rows]
  flagged = [key for key in rows[0] if key.endswith('_flagged')]
  header = ['seed', 'family', 'detector', 'AP', 'caught', *flagged]
  lines = [f'{candidate.study}, {candidate.detector}:', '',
           '| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for seed, seed_rows in candidate.rows_by_seed.items():
    for row in seed_rows:
      cells = ['-' if seed is None else str(seed), row['family'], row['detector'],
               dedicated.cell(row['average_precision']), dedicated.cell(row['fake_recall_budget']),
               *(dedicated.cell(row[key]) for key in flagged)]
      lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def main(argv: list[str]) -> str:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('workdirs', nargs='+', type=pathlib.Path)
  parser.add_argument('--sets', default='simulated',
                      help='Comma-separated classifiers (train sets) to rank beside the '
                      'leave-one-family-out protocol, where a study has them.')
  parser.add_argument('--out', type=pathlib.Path, help='Also write the Markdown here.')
  args = parser.parse_args(argv)
  candidates = marketplace.all_candidates(args.workdirs, [s for s in args.sets.split(',') if s])
  if not candidates:
    raise marketplace.NoCandidatesError(
        f'No evaluated detector on unseen families in {[str(w) for w in args.workdirs]}: '
        'give detectors study workdirs with families (the `zoo` option).')
  summaries = marketplace.ranked([marketplace.summary(c) for c in candidates])
  best = next(c for c in candidates
              if (c.study, c.detector) == (summaries[0]['study'], summaries[0]['detector']))
  markdown = (ranking_markdown(summaries, marketplace.budget_of(args.workdirs[0])) + '\n'
              + families_markdown(best))
  if args.out:
    args.out.write_text(markdown)
  return markdown


if __name__ == '__main__':
  try:
    print(main(sys.argv[1:]))
  except errors.UserError as error:
    sys.exit(f'rank_detectors: {error}')
