#!/usr/bin/env bash
# The evaluation in docs/evaluation/: the paper's protocol with the shipped weights on three
# default synthetic test views (seed 3, ids 201-203), in two processes on a 2-core machine:
# the main settings (oracle and GT-free ranking, 3000 steps) into docs/evaluation/, and the
# ablations (1000 steps, one view) into docs/evaluation/ablations/.
#
#   bash scripts/evaluate_shipped.sh            # about 35 minutes here
#
# STEPS, ABLATION_STEPS and SEEDS may be set to run a shorter or longer version.
set -euo pipefail
cd "$(dirname "$0")/.."
ETMIRA=${ETMIRA:-.venv/bin/etmira}
STEPS=${STEPS:-3000}
ABLATION_STEPS=${ABLATION_STEPS:-1000}
SEEDS=${SEEDS:-1}
OUT=docs/evaluation
[ -d data/eval ] || $ETMIRA synth data/eval --views 3 --first 201 --seed 3
export OMP_NUM_THREADS=1
$ETMIRA simulate data/eval --steps "$STEPS" --seeds "$SEEDS" --settings both,gt_free \
    --only SYN-0201_R --only SYN-0202_R --out "$OUT" &
first=$!
$ETMIRA simulate data/eval --steps "$STEPS" --seeds "$SEEDS" --settings both,gt_free \
    --only SYN-0203_R --out "$OUT"
$ETMIRA simulate data/eval --steps "$ABLATION_STEPS" --seeds 1 --only SYN-0203_R \
    --settings both,add_only,erase_only,prediction_only,interaction_only --out "$OUT/ablations"
wait "$first"
$ETMIRA report "$OUT"
$ETMIRA report "$OUT/ablations"
