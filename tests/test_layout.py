"""The codebase's shape: short functions, studies that do not lean on each other, a README
that is a front door."""

import ast
import pathlib

import pytest

from fakejax import studies

PACKAGE = pathlib.Path(studies.__file__).resolve().parents[1]
README = PACKAGE.parent / 'README.md'
MAX_FUNCTION_LINES = 60


def functions(path: pathlib.Path):
  tree = ast.parse(path.read_text())
  return [node for node in ast.walk(tree)
          if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


def test_no_function_is_longer_than_sixty_lines():
  long = [f'{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}'
          for path in sorted(PACKAGE.rglob('*.py')) for node in functions(path)
          if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
  assert not long


def imported_modules(path: pathlib.Path) -> set[str]:
  tree = ast.parse(path.read_text())
  names = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      names.add(node.module)
      names.update(f'{node.module}.{alias.name}' for alias in node.names)
  return names


@pytest.mark.parametrize('experiment', sorted(studies.STUDIES))
def test_no_study_imports_another(experiment):
  module = studies.STUDIES[experiment].run.__module__
  others = {studies.STUDIES[name].run.__module__ for name in studies.STUDIES} - {module}
  path = PACKAGE / (module.replace('fakejax.', '').replace('.', '/') + '.py')
  assert not imported_modules(path) & others


def test_every_study_module_is_in_the_table():
  modules = {study.run.__module__ for study in studies.STUDIES.values()}
  files = {f'fakejax.studies.{p.stem}' for p in (PACKAGE / 'studies').glob('*.py')
           if p.stem not in ('__init__', 'common')}
  assert files == modules


def test_readme_is_a_front_door():
  text = README.read_text()
  assert len(text.splitlines()) <= 300
  for heading in ('How data flows', 'Layout', 'How to add a model architecture', 'How to add a generator',
                  'How to add a detector kind', 'How to add a study'):
    assert heading in text, heading
  assert "pip install -e '.[test]' && pytest" in text
