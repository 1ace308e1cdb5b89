#!/usr/bin/env bash
# Submits fakejax to a SLURM GPU cluster: one JAX process per GPU (or per node).
#
#   launch/slurm_gpu.sh --nodes=2 --gpus_per_node=8 --partition=gpu --time=04:00:00 \
#     --workdir=/shared/runs/dcgan_fmnist --config=configs/dcgan_fmnist.py \
#     --venv=/shared/venvs/fakejax [--account=ACCOUNT] [--per=gpu|node] [--dry_run] [-- extra flags]
#
# The workdir must be on a file system every node sees. Every site-specific value is a flag.
set -euo pipefail

usage() { sed -n '2,9p' "$0"; exit 2; }

NODES="" GPUS_PER_NODE="" PARTITION="" TIME="" WORKDIR="" CONFIG="configs/dcgan_fmnist.py"
VENV="" ACCOUNT="" PER="gpu" DRY_RUN=0
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes=*) NODES="${1#*=}" ;;
    --gpus_per_node=*) GPUS_PER_NODE="${1#*=}" ;;
    --partition=*) PARTITION="${1#*=}" ;;
    --time=*) TIME="${1#*=}" ;;
    --workdir=*) WORKDIR="${1#*=}" ;;
    --config=*) CONFIG="${1#*=}" ;;
    --venv=*) VENV="${1#*=}" ;;
    --account=*) ACCOUNT="${1#*=}" ;;
    --per=*) PER="${1#*=}" ;;
    --dry_run) DRY_RUN=1 ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) usage ;;
    *) echo "Unknown argument: $1" >&2; usage ;;
  esac
  shift
done
for required in NODES GPUS_PER_NODE PARTITION TIME WORKDIR VENV; do
  if [ -z "${!required}" ]; then
    echo "Missing --$(echo "$required" | tr '[:upper:]' '[:lower:]')=..." >&2
    usage
  fi
done
case "$PER" in
  gpu) TASKS_PER_NODE="$GPUS_PER_NODE" ;;
  node) TASKS_PER_NODE=1 ;;
  *) echo "--per must be gpu or node" >&2; exit 2 ;;
esac

REPO="$(cd "$(dirname "$0")/.." && pwd)"
SBATCH=(sbatch --nodes="$NODES" --ntasks-per-node="$TASKS_PER_NODE"
        --gpus-per-node="$GPUS_PER_NODE" --partition="$PARTITION" --time="$TIME"
        --job-name=fakejax --output="$WORKDIR/slurm-%j.out" --signal=TERM@120 --requeue)
if [ -n "$ACCOUNT" ]; then SBATCH+=(--account="$ACCOUNT"); fi

printf -v EXTRA_QUOTED ' %q' "${EXTRA[@]+"${EXTRA[@]}"}"
# --multihost: jax.distributed reads the coordinator, process count and index from SLURM.
# With one process per GPU, each task sees only its own GPU.
GPU_BINDING=""
if [ "$PER" = gpu ]; then GPU_BINDING="--gpus-per-task=1"; fi
SCRIPT="#!/usr/bin/env bash
set -euo pipefail
cd $(printf %q "$REPO")
source $(printf %q "$VENV")/bin/activate
srun $GPU_BINDING python -m fakejax.main --multihost --config=$(printf %q "$CONFIG") --workdir=$(printf %q "$WORKDIR")$EXTRA_QUOTED"

if [ "$DRY_RUN" = 1 ]; then
  echo "${SBATCH[*]}"
  echo "$SCRIPT"
  exit 0
fi
mkdir -p "$WORKDIR"
echo "$SCRIPT" | "${SBATCH[@]}"
