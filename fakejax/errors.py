"""Expected user errors: one clear message and exit status 1; tracebacks are for bugs.

Every error a user can cause by what they pass (a config key, a missing dataset, a
workdir, a damaged checkpoint, a flag) derives from `UserError`; the entry points run
their `main` through `exit_on_user_error`, which prints the message alone.
"""

import functools
import sys

# The exit status of a run stopped by an expected user error (as absl's usage errors).
USER_ERROR_EXIT_CODE = 1


class UserError(Exception):
  """An error in what the user asked for, whose message says what to do about it."""


class NonFiniteTraining(UserError, FloatingPointError):
  """Training met a NaN or Inf loss or gradient: the config's learning rate (or model) is
  what to change; the last checkpoint holds the last finite state."""


def exit_on_user_error(main):
  """Wraps a command's `main` (absl's `main(argv)` or a tool's): a UserError prints
  'error: <message>' and exits 1."""
  @functools.wraps(main)
  def wrapped(*args, **kwargs):
    try:
      return main(*args, **kwargs)
    except UserError as error:
      print(f'error: {error}', file=sys.stderr, flush=True)
      sys.exit(USER_ERROR_EXIT_CODE)
  return wrapped
