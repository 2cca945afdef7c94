#!/usr/bin/env bash
# The evaluation in docs/evaluation/: the paper's protocol (3000 steps) with the shipped weights
# on three default synthetic test views (seed 3, ids 201-203), three seeds, in two processes on a
# 2-core machine: the oracle and the GT-free ranking with the app's refiner (four orientations,
# refined twice) and its one-pass preview, on all views.
#
#   bash scripts/evaluate_shipped.sh            # about 85 minutes here
#
# STEPS and SEEDS may be set to run a shorter or longer version. The one-iteration evaluation
# with the ablations (docs/evaluation/one_iteration/) has its commands in docs/evaluation/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ETMIRA=${ETMIRA:-.venv/bin/etmira}
STEPS=${STEPS:-3000}
SEEDS=${SEEDS:-3}
OUT=${OUT:-docs/evaluation}
[ -d data/eval ] || $ETMIRA synth data/eval --views 3 --first 201 --seed 3
export OMP_NUM_THREADS=1
# Two processes of about the same length (one core each).
$ETMIRA simulate data/eval --steps "$STEPS" --seeds "$SEEDS" --settings both --out "$OUT" &
first=$!
$ETMIRA simulate data/eval --steps "$STEPS" --seeds "$SEEDS" --settings gt_free,one_pass \
    --out "$OUT"
wait "$first"
$ETMIRA report "$OUT"
