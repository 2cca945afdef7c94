#!/usr/bin/env bash
# Train the shipped refiner (resources/weights/refiner.safetensors) on a CUDA GPU: about
# 20 minutes of one H100 with 16 CPU cores, most of it drawing simulated strokes, which the
# --workers processes do while the GPU trains. The base stays the shipped one (train_shipped.sh).
#
#   bash scripts/train_refiner_gpu.sh
#
# Three runs, each starting from the weights of the one before:
#  1. a segmenter with the refiner's larger encoder (MobileNetV3-Large), on 48 training views,
#     only to give the refiner features that already see the lines (it is not shipped);
#  2. the refiner, started from it (extra input channels and output head at zero);
#  3. the same continued at a lower rate with another batch seed.
# The shipped runs were stopped by time budgets (6, 7.2 and 4 minutes, run side by side with
# other experiments); the step limits below are the steps they reached, so that the batches
# and validations are the same. Data go to the git-ignored data/.
set -euo pipefail
cd "$(dirname "$0")/.."
ETMIRA=${ETMIRA:-.venv/bin/etmira}
OUT=data/shipped
BASE=resources/weights/base.safetensors
mkdir -p "$OUT"

# 48 training views (seed 1; the first 12 are data/train's) and the 3 validation views, one
# process per view (view i of a seed is the same whatever --first and --views are).
synth() {  # folder seed first count
    seq "$3" $(($3 + $4 - 1)) | xargs -P "$(nproc)" -I{} \
        $ETMIRA synth "$1" --views 1 --first {} --size 2048x2048 --seed "$2" >/dev/null
}
[ -d data/train48 ] || synth data/train48 1 1 48
[ -d data/val ] || synth data/val 2 101 3

COMMON="--data data/train48 --val data/val --data-seed 1 --batch-size 32 --crop 128
        --val-every 300 --patience 10"
REFINER="--base $BASE --encoder tu-mobilenetv3_large_100 --max-strokes 24 --pool-size 8192"

date -u +"%H:%M:%S 1/3 segmenter with the refiner's encoder"
$ETMIRA train base $COMMON --seed 0 --encoder tu-mobilenetv3_large_100 --workers 2 \
    --max-steps 3001 --out $OUT/refiner_init.safetensors
date -u +"%H:%M:%S 2/3 refiner"
$ETMIRA train refiner $COMMON $REFINER --seed 0 --workers 7 --max-steps 7524 \
    --init $OUT/refiner_init.safetensors --out $OUT/refiner_stage1.safetensors
date -u +"%H:%M:%S 3/3 refiner, continued"
$ETMIRA train refiner $COMMON $REFINER --seed 1 --lr 2e-4 --workers 14 --max-steps 4681 \
    --init $OUT/refiner_stage1.safetensors --out $OUT/refiner.safetensors
cp $OUT/refiner.safetensors resources/weights/refiner.safetensors
$ETMIRA model-info resources/weights/refiner.safetensors
date -u +"%H:%M:%S done"
