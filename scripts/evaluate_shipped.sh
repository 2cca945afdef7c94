#!/usr/bin/env bash
# The evaluation in docs/evaluation/: the paper's protocol (3000 steps) with the shipped weights
# on three default synthetic test views (seed 3, ids 201-203), three seeds, in two processes on a
# 2-core machine: the main settings (oracle and GT-free ranking, with the app's refiner, averaged
# over four orientations, and its one-pass preview) on all views, the ablations (operations,
# inputs, refined patches) on SYN-0203_R.
#
#   bash scripts/evaluate_shipped.sh            # about 75 minutes here
#
# STEPS and SEEDS may be set to run a shorter or longer version.
set -euo pipefail
cd "$(dirname "$0")/.."
ETMIRA=${ETMIRA:-.venv/bin/etmira}
STEPS=${STEPS:-3000}
SEEDS=${SEEDS:-3}
OUT=${OUT:-docs/evaluation}
[ -d data/eval ] || $ETMIRA synth data/eval --views 3 --first 201 --seed 3
export OMP_NUM_THREADS=1
# Two processes of about the same length (one core each).
$ETMIRA simulate data/eval --steps "$STEPS" --seeds "$SEEDS" \
    --settings both,gt_free,one_pass --only SYN-0201_R --only SYN-0202_R --out "$OUT" &
first=$!
$ETMIRA simulate data/eval --steps "$STEPS" --seeds "$SEEDS" --settings all \
    --only SYN-0203_R --out "$OUT"
wait "$first"
$ETMIRA report "$OUT"
