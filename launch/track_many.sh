#!/usr/bin/env bash
# Track a folder (or list) of videos with N processes on this machine; each process takes
# every N-th clip (flashtalker track --process-id/--num-processes) and writes OUT/<clip>/.
# Finished clips are skipped on a rerun, so a killed job resumes by running it again.
# On a cluster run the same command once per task, e.g. SLURM:
#   srun flashtalker track VIDEOS --out OUT --process-id "$SLURM_PROCID" --num-processes "$SLURM_NTASKS"
# Usage: launch/track_many.sh VIDEOS_DIR OUT [NUM_PROCESSES] [-- extra flashtalker track args]
set -euo pipefail
VIDEOS=$1
OUT=$2
NPROC=${3:-2}
shift $(( $# < 3 ? $# : 3 )); [[ "${1:-}" == "--" ]] && shift
mkdir -p "$OUT"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM
for ((i = 0; i < NPROC; i++)); do
  flashtalker track "$VIDEOS" --out "$OUT" --process-id "$i" --num-processes "$NPROC" \
    --report "$OUT/track_process$i.json" "$@" > "$OUT/track_process$i.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
pids=()
echo "track_many: exit status $status; logs $OUT/track_process*.log"
exit "$status"
