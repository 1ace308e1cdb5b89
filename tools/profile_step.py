r"""Where a model's train step spends its time: XLA's own profile, per compiled operation.

  python tools/profile_step.py --models=dcgan_tf
  python tools/profile_step.py --models=realnvp,ddpm --top=30 --json=profiles.json

Runs `tools/benchmark.py`'s train step of the model (the same workload, batch 256 by
default) under `jax.profiler.trace`, reads the trace (the XSpace protobuf that TensorBoard's
profiler reads too), and sums the time of each operation of the compiled program: a
convolution, a library fusion around a matrix product (YNNPACK's), or one of XLA's own
fused loops. Each is named with its kind and the model code it comes from (the JAX name
stack of its HLO metadata).

Two limits of XLA's CPU trace: an operation's time is summed over the threads that ran
it (two may run at once, so the sum may pass the step's wall time), and a convolution
handed to Eigen runs on Eigen's threads after its event has ended, so convolutions show
only their dispatch: their time is not in the table.
"""

import argparse
import collections
import dataclasses
import glob
import json
import pathlib
import re
import sys
import tempfile
import time

import jax

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from fakejax import runtime  # noqa: E402
from tools import benchmark  # noqa: E402  (the workloads, as they are benchmarked)

# `%name = type opcode(operands), attributes`; a tuple type holds spaces.
INSTRUCTION = re.compile(r'^\s*(?:ROOT )?%([\w.\-]+) = (?:\([^=]*?\)|\S+) ([\w\-]+)\((.*)$')
COMPUTATION = re.compile(r'^(?:ENTRY )?%([\w.\-]+) ')
# What a fusion holds, heaviest first: the first found names its kind.
FUSED_KINDS = (('convolution', 'convolution'), ('dot', 'matrix product'),
               ('reduce-window', 'window reduction'), ('select-and-scatter', 'window reduction'),
               ('reduce', 'reduction'), ('scatter', 'scatter'), ('gather', 'gather'))
# Instructions that compute nothing themselves, or hold other computations: named as such.
OWN_KIND_OPCODES = {'parameter', 'constant', 'tuple', 'get-tuple-element', 'bitcast', 'while',
                    'conditional', 'call', 'custom-call'}
# Operations that only move data.
LAYOUT_OPCODES = {'parameter', 'copy', 'bitcast', 'reshape', 'broadcast', 'slice', 'concatenate',
                  'pad', 'reverse', 'tuple', 'get-tuple-element', 'transpose', 'constant'}


@dataclasses.dataclass(frozen=True)
class Operation:
  opcode: str
  kind: str  # What it computes: 'convolution', 'elementwise', ...
  where: str  # The model code it comes from (JAX's name stack).


def computations(hlo_text: str) -> dict[str, list[tuple[str, str, str]]]:
  """Computation name -> its instructions (name, opcode, rest of the line)."""
  out, current = {}, None
  for line in hlo_text.splitlines():
    header = COMPUTATION.match(line)
    if header and line.rstrip().endswith('{'):
      current = out.setdefault(header.group(1), [])
    elif current is not None and (match := INSTRUCTION.match(line)):
      current.append(match.groups())
  return out


def fused_kind(body: list[tuple[str, str, str]]) -> str:
  """What a fusion computes. A transpose fused with arithmetic is told apart from a pure
  one: XLA:CPU runs the pure one as a tiled copy, many times faster."""
  opcodes = {opcode for _, opcode, _ in body}
  for opcode, kind in FUSED_KINDS:
    if opcode in opcodes:
      return kind
  moves_only = opcodes <= LAYOUT_OPCODES
  if 'transpose' in opcodes:
    return 'layout (transpose)' if moves_only else 'transpose + elementwise'
  return 'layout (copy)' if moves_only else 'elementwise'


def where_from(rest: str) -> str:
  """The JAX name stack of an instruction's metadata, without the jit() wrapper."""
  match = re.search(r'op_name="([^"]*)"', rest)
  return re.sub(r'^jit\([^)]*\)/', '', match.group(1)) if match else ''


def operations(hlo_text: str) -> dict[str, Operation]:
  """Every operation the compiled program runs, by name: the instructions of its entry
  computation and of its loops' bodies, not those inside a fusion or a reducer."""
  bodies = computations(hlo_text)
  inner = {callee for body in bodies.values() for _, _, rest in body
           for callee in re.findall(r'(?:calls|to_apply)=%([\w.\-]+)', rest)}
  out = {}
  for name, body in bodies.items():
    if name in inner:
      continue
    for instruction, opcode, rest in body:
      where = where_from(rest)
      callee = re.search(r'calls=%([\w.\-]+)', rest)
      if opcode == 'fusion' and callee:
        fused = bodies.get(callee.group(1), [])
        # Its root may have no metadata (a layout copy): then the first op inside that has.
        where = where or next((w for _, _, r in fused if (w := where_from(r))), '')
      elif opcode in OWN_KIND_OPCODES:
        fused = None
      else:  # One unfused operation: named as a fusion of it alone would be.
        fused = [(instruction, opcode, rest)]
      out[instruction] = Operation(opcode, fused_kind(fused) if fused is not None else opcode,
                                   where)
  return out


def operation_seconds(trace_dir: str, names: set[str]) -> dict[str, float]:
  """Seconds each named operation ran, summed over the trace in `trace_dir`."""
  from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=g-import-not-at-top
  (path,) = glob.glob(f'{trace_dir}/**/*.xplane.pb', recursive=True)
  space = xplane_pb2.XSpace()
  space.ParseFromString(pathlib.Path(path).read_bytes())
  seconds = collections.Counter()
  for plane in space.planes:
    event_names = {key: meta.name for key, meta in plane.event_metadata.items()}
    for line in plane.lines:
      for event in line.events:
        name = event_names.get(event.metadata_id)
        if name in names:
          seconds[name] += event.duration_ps * 1e-12
  return dict(seconds)


def profile(model: str, batch_size: int, steps: int) -> dict:
  """The model's train step: wall time per step, and each operation's time per step."""
  runner = benchmark.JaxRunner(model, batch_size, jax.devices('cpu')[0], 'float32')
  runner.train(2)
  ops = operations(runner.compiled.as_text())
  with tempfile.TemporaryDirectory() as trace_dir:
    with jax.profiler.trace(trace_dir):
      start = time.perf_counter()
      runner.train(steps)
      wall = time.perf_counter() - start
    seconds = operation_seconds(trace_dir, set(ops))
  rows = [{'operation': name, 'opcode': ops[name].opcode, 'kind': ops[name].kind,
           'where': ops[name].where, 'ms_per_step': 1e3 * s / steps}
          for name, s in sorted(seconds.items(), key=lambda item: -item[1])]
  return {'model': model, 'batch_size': batch_size, 'steps': steps,
          'step_ms': 1e3 * wall / steps, 'operations': rows}


def by_kind(result: dict) -> list[tuple[str, float]]:
  totals = collections.Counter()
  for row in result['operations']:
    totals[row['kind']] += row['ms_per_step']
  return totals.most_common()


def markdown(result: dict, top: int) -> str:
  step = result['step_ms']
  in_ops = sum(row['ms_per_step'] for row in result['operations'])
  lines = [f"`{result['model']}`, batch {result['batch_size']}: {step:.1f} ms per step; "
           f'{in_ops:.1f} ms in the traced operations, summed over threads (convolutions '
           'excepted: their time is not traced).', '',
           '| kind | ms per step | share of the step |', '|---|---|---|']
  lines += [f'| {kind} | {ms:.1f} | {ms / step:.0%} |' for kind, ms in by_kind(result)]
  lines += ['', '| operation | kind | from | ms per step | share |', '|---|---|---|---|---|']
  for row in result['operations'][:top]:
    where = row['where'] if len(row['where']) <= 70 else '...' + row['where'][-67:]
    lines.append(f"| {row['operation']} | {row['kind']} | {where} | "
                 f"{row['ms_per_step']:.2f} | {row['ms_per_step'] / step:.1%} |")
  return '\n'.join(lines)


def kinds_table(results: list[dict]) -> str:
  """Each kind's share of the step, a column per model (kinds under 2% everywhere left out)."""
  shares = [{kind: ms / r['step_ms'] for kind, ms in by_kind(r)} for r in results]
  kinds = sorted({kind for share in shares for kind in share},
                 key=lambda kind: -max(share.get(kind, 0.0) for share in shares))
  lines = ['| kind | ' + ' | '.join(f"`{r['model']}`" for r in results) + ' |',
           '|---|' + '---|' * len(results),
           '| step, ms | ' + ' | '.join(f"{r['step_ms']:.0f}" for r in results) + ' |']
  for kind in kinds:
    if max(share.get(kind, 0.0) for share in shares) >= 0.02:
      lines.append(f'| {kind} | ' + ' | '.join(f'{share.get(kind, 0.0):.0%}'
                                               for share in shares) + ' |')
  return '\n'.join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--models', default='dcgan_tf',
                      help=f'Comma-separated, of {sorted(benchmark.WORKLOADS)}.')
  parser.add_argument('--batch_size', type=int, default=256)
  parser.add_argument('--steps', type=int, default=5, help='Steps traced.')
  parser.add_argument('--top', type=int, default=20, help='Operations listed.')
  parser.add_argument('--json', default='', help='Also write the results here.')
  args = parser.parse_args()
  unknown = set(args.models.split(',')) - set(benchmark.WORKLOADS)
  if unknown:
    parser.error(f'unknown models {sorted(unknown)}: use any of {sorted(benchmark.WORKLOADS)}')
  results = []
  for model in args.models.split(','):
    results.append(profile(model, args.batch_size, args.steps))
    print(markdown(results[-1], args.top) + '\n', flush=True)
  if len(results) > 1:
    print('Share of the step by kind of operation:\n\n' + kinds_table(results) + '\n')
  print(runtime.device_description(jax.devices('cpu')[0]))
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(results, indent=2) + '\n')


if __name__ == '__main__':
  main()
