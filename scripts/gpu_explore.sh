#!/usr/bin/env bash
# Run several recipes at once on the lent GPU (one process each; small nets leave the H100
# mostly idle, so they share it well). Usage, on the device machine, from the repo root:
#   bash scripts/gpu_explore.sh NAME[@PARAMS_FILE] "OVERRIDES" [NAME "OVERRIDES" ...]
# Needs $FER_DATA/fer2013-{a,b}.npz (default /root/fer) and Keras on PYTHONPATH (docs/gpu.md).
set -u
data=${FER_DATA:-/root/fer}
params=${PARAMS:-params/fer2013-gpu.yaml}
out=${OUT:-/tmp/out}
mkdir -p "$out/runs"
pids=()
while [ $# -ge 2 ]; do
  name=${1%@*}; overrides=$2; run_params=$params
  [[ $1 == *@* ]] && run_params=${1#*@}
  shift 2
  set -f; args=(); for o in $overrides; do args+=(-S "$o"); done; set +f
  XLA_PYTHON_CLIENT_MEM_FRACTION=${MEM_FRACTION:-0.18} python3 scripts/gpu_train.py \
    --params "$run_params" --data "$data/fer2013-a.npz" "$data/fer2013-b.npz" \
    --out "$out/runs/$name" --max-minutes "${MAX_MINUTES:-7.5}" ${EXTRA:-} "${args[@]}" \
    > "$out/runs/$name.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
for f in "$out"/runs/*.log; do echo "== $f"; grep -E '^\{"backend' "$f" || tail -5 "$f"; done
