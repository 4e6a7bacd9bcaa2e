#!/usr/bin/env bash
# Two (or N) JAX processes on this machine, CPU devices, explicit coordinator on localhost.
# Usage: launch/local_2proc.sh [RUN_DIR] [NUM_PROCESSES] [-- extra flashtalker args]
#   e.g. launch/local_2proc.sh runs/local2 2 -- --config.train.steps=50
set -euo pipefail
COMMAND=${COMMAND:-train}            # the flashtalker command every launcher runs (train, pretrain-e2v)
CONFIG=${CONFIG:-configs/train_toy.py}
RUN=${1:-runs/local_2proc}
NPROC=${2:-2}
shift $(( $# < 2 ? $# : 2 )); [[ "${1:-}" == "--" ]] && shift
PORT=${PORT:-$(python -c "import portpicker; print(portpicker.pick_unused_port())")}
export JAX_PLATFORMS=cpu

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM
for ((i = 0; i < NPROC; i++)); do
  flashtalker "$COMMAND" --config "$CONFIG" --out "$RUN" --resume \
    --coordinator "localhost:$PORT" --num-processes "$NPROC" --process-id "$i" "$@" \
    > "${RUN}.process$i.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
pids=()
echo "local_2proc: exit status $status; logs ${RUN}.process*.log; run folder $RUN"
exit "$status"
