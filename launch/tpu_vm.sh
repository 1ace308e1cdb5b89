#!/usr/bin/env bash
# Runs fakejax on every worker of a Cloud TPU VM slice: create, install, run, copy, delete.
#
#   launch/tpu_vm.sh --name=fakejax-v4 --zone=us-central2-b --accelerator=v4-32 \
#     --version=tpu-ubuntu2204-base --workdir=gs://my-bucket/runs/dcgan_fmnist \
#     --config=configs/dcgan_fmnist.py [--results=./results] [--keep] [--spot] [-- extra flags]
#
# Every site-specific value is a flag; nothing is assumed about projects or buckets.
set -euo pipefail

usage() { sed -n '2,10p' "$0"; exit 2; }

NAME="" ZONE="" ACCELERATOR="" VERSION="" WORKDIR="" CONFIG="configs/dcgan_fmnist.py"
RESULTS="" KEEP=0 SPOT=0 PROJECT=""
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --name=*) NAME="${1#*=}" ;;
    --zone=*) ZONE="${1#*=}" ;;
    --accelerator=*) ACCELERATOR="${1#*=}" ;;
    --version=*) VERSION="${1#*=}" ;;
    --project=*) PROJECT="${1#*=}" ;;
    --workdir=*) WORKDIR="${1#*=}" ;;
    --config=*) CONFIG="${1#*=}" ;;
    --results=*) RESULTS="${1#*=}" ;;
    --keep) KEEP=1 ;;
    --spot) SPOT=1 ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) usage ;;
    *) echo "Unknown argument: $1" >&2; usage ;;
  esac
  shift
done
for required in NAME ZONE ACCELERATOR VERSION WORKDIR; do
  if [ -z "${!required}" ]; then
    echo "Missing --$(echo "$required" | tr '[:upper:]' '[:lower:]')=..." >&2
    usage
  fi
done

GCLOUD=(gcloud compute tpus tpu-vm)
COMMON=(--zone="$ZONE")
if [ -n "$PROJECT" ]; then COMMON+=(--project="$PROJECT"); fi

create_args=(--accelerator-type="$ACCELERATOR" --version="$VERSION")
if [ "$SPOT" = 1 ]; then create_args+=(--spot); fi
"${GCLOUD[@]}" create "$NAME" "${COMMON[@]}" "${create_args[@]}"

cleanup() {
  if [ "$KEEP" = 0 ]; then "${GCLOUD[@]}" delete "$NAME" "${COMMON[@]}" --quiet; fi
}
trap cleanup EXIT

# Ship this checkout (without runs or virtual environments) to every worker.
ARCHIVE="$(mktemp -d)/fakejax.tar.gz"
git -C "$(dirname "$0")/.." archive --format=tar.gz -o "$ARCHIVE" HEAD
"${GCLOUD[@]}" scp "$ARCHIVE" "$NAME":fakejax.tar.gz "${COMMON[@]}" --worker=all

printf -v EXTRA_QUOTED ' %q' "${EXTRA[@]+"${EXTRA[@]}"}"
REMOTE="set -euo pipefail
mkdir -p fakejax && tar -xzf fakejax.tar.gz -C fakejax && cd fakejax
python3 -m venv .venv && source .venv/bin/activate
pip install -q -U pip && pip install -q -e . 'jax[tpu]'
python -m fakejax.main --multihost --config=$(printf %q "$CONFIG") --workdir=$(printf %q "$WORKDIR")$EXTRA_QUOTED"
# --multihost: jax.distributed finds its peers itself on TPU VMs; all workers run it.
"${GCLOUD[@]}" ssh "$NAME" "${COMMON[@]}" --worker=all --command="$REMOTE"

if [ -n "$RESULTS" ]; then
  mkdir -p "$RESULTS"
  gcloud storage cp -r "$WORKDIR/report.md" "$WORKDIR/*/eval" "$RESULTS/"
fi
