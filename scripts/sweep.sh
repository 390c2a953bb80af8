#!/usr/bin/env bash
# Grid sweep over learning rate x batch size with DVC's experiment queue, then one table.
#
#   scripts/sweep.sh                                   # 3 lr x 3 batch sizes = 9 experiments
#   LRS=0.0005,0.001 BATCH_SIZES=64,128 JOBS=2 scripts/sweep.sh -S epochs=30
#
# LRS, BATCH_SIZES: comma-separated values; DVC queues every combination (a grid).
# JOBS: experiments run at once (each trains on all of its devices: 1 per GPU box is usual).
# TARGET: the last stage each experiment runs (default `evaluate`: the metrics, without the
#   ONNX export; run `dvc exp apply <name> && dvc repro` to export the winner).
# Further arguments go to `dvc exp run` (more `-S key=value` overrides).
# Every experiment is a git ref of its own: `dvc exp show`, `dvc exp diff`, `dvc exp apply`.
set -euo pipefail

LRS="${LRS:-0.0005,0.001,0.002}"
BATCH_SIZES="${BATCH_SIZES:-32,64,128}"
JOBS="${JOBS:-1}"
TARGET="${TARGET:-evaluate}"

queued=$(dvc exp run --queue "$TARGET" -S "lr=$LRS" -S "batch_size=$BATCH_SIZES" "$@")
echo "$queued"
# "Queued experiment 'name' for future execution." -> the names of this sweep's experiments.
mapfile -t names < <(sed -n "s/^Queued experiment '\([^']*\)'.*/\1/p" <<<"$queued")
if [ "${#names[@]}" -eq 0 ]; then
  echo "sweep: dvc queued no experiment" >&2
  exit 1
fi

dvc queue start --jobs "$JOBS"
# The workers run in the background and stop when the queue is empty; wait for ours.
status_of() { dvc queue status | awk -v name="$1" '$2 == name { print $NF }'; }
while :; do
  pending=0
  for name in "${names[@]}"; do
    case "$(status_of "$name")" in
      Success | Failed) ;;
      *) pending=$((pending + 1)) ;;
    esac
  done
  [ "$pending" -eq 0 ] && break
  echo "sweep: ${pending} of ${#names[@]} experiments still queued or running"
  sleep 10
done

failed=()
for name in "${names[@]}"; do
  [ "$(status_of "$name")" = Success ] || failed+=("$name")
done

dvc exp show --md --only-changed --sort-by test.accuracy --sort-order desc
if [ "${#failed[@]}" -gt 0 ]; then
  echo "sweep: ${#failed[@]} experiment(s) failed: ${failed[*]} (see: dvc queue logs NAME)" >&2
  exit 1
fi
