#!/usr/bin/env bash
# Cloud TPU VM pod slice: the same command on every worker (one process per TPU VM host).
# Usage: TPU_NAME=my-v5e-32 ZONE=us-west4-a REPO=~/flashtalker-jax RUN=/mnt/shared/runs/tpu \
#        launch/tpu_vm.sh [extra flashtalker args]
# JAX finds the pod's coordinator and process index from the TPU metadata (`--distributed`).
# Install the package on every worker first (see launch/README.md). RUN must be a folder
# all workers share (Filestore / GCS FUSE mount).
set -euo pipefail
COMMAND=${COMMAND:-train}            # the flashtalker command every launcher runs (train, pretrain-e2v)
CONFIG=${CONFIG:-configs/train_toy.py}
: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}"
REPO=${REPO:-~/flashtalker-jax}
RUN=${RUN:-runs/tpu}
extra=$(printf ' %q' "$@")

gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$ZONE" --worker=all --command \
  "cd $REPO && .venv/bin/flashtalker $COMMAND --config $CONFIG --out $RUN --resume --distributed$extra"
