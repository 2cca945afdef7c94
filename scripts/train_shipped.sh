#!/usr/bin/env bash
# Train the shipped networks (resources/weights/base.safetensors, refiner.safetensors) on
# generated mirrors. The base: 22 minutes of this 2-core CPU. The refiner: with a CUDA GPU,
# scripts/train_refiner_gpu.sh (the shipped one: +11.9% single-stroke gain); without one, the
# CPU recipe below, about 55 minutes more (at most 50 of training, two threads; early stopping
# at step 6750; +3.7%). Data go to the git-ignored data/. The batches are a function of seed and
# step, so a run stopped by its budget and continued with --resume follows one longer run (apart
# from the extra validation at the stop).
#
#   nohup setsid bash scripts/train_shipped.sh > /tmp/train_shipped.log 2>&1 &
#
# Budgets (minutes) and threads can be changed with BASE_MINUTES / REFINER_MINUTES / THREADS.
set -euo pipefail
cd "$(dirname "$0")/.."
ETMIRA=${ETMIRA:-.venv/bin/etmira}
PYTHON=${PYTHON:-.venv/bin/python}
BASE_MINUTES=${BASE_MINUTES:-22}
REFINER_MINUTES=${REFINER_MINUTES:-50}
THREADS=${THREADS:-2}
OUT=data/shipped
TRAIN_SEED=1; VAL_SEED=2; TEST_SEED=3
mkdir -p "$OUT" resources/weights

# 12 training, 3 validation and 3 test views of 2048 x 2048 px, each set from its own seed.
[ -d data/train ] || $ETMIRA synth data/train --views 12 --size 2048x2048 --seed $TRAIN_SEED
[ -d data/val ] || $ETMIRA synth data/val --views 3 --first 101 --size 2048x2048 --seed $VAL_SEED
[ -d data/test ] || $ETMIRA synth data/test --views 3 --first 201 --size 2048x2048 --seed $TEST_SEED

# A finished base is kept (delete data/shipped/base.safetensors to train it again).
if [ ! -f $OUT/base.safetensors ]; then
    date -u +"%H:%M:%S base training starts"
    $ETMIRA train base --data data/train --val data/val --out $OUT/base.safetensors \
        --data-seed $TRAIN_SEED --seed 0 --batch-size 16 --crop 128 --threads "$THREADS" \
        --val-every 150 --patience 8 --max-minutes "$BASE_MINUTES"
fi
cp $OUT/base.safetensors resources/weights/base.safetensors

if $PYTHON -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
    ETMIRA=$ETMIRA bash scripts/train_refiner_gpu.sh
else
    date -u +"%H:%M:%S refiner training starts (CPU recipe)"
    # The refiner starts from the base's weights and sees 1-24 strokes per patch (log-uniform).
    $ETMIRA train refiner --base $OUT/base.safetensors --init $OUT/base.safetensors \
        --data data/train --val data/val --out $OUT/refiner.safetensors \
        --data-seed $TRAIN_SEED --seed 0 --batch-size 16 --crop 128 --threads "$THREADS" \
        --val-every 150 --patience 8 --max-strokes 24 --pool-size 2048 \
        --max-minutes "$REFINER_MINUTES"
    cp $OUT/refiner.safetensors resources/weights/refiner.safetensors
fi

date -u +"%H:%M:%S test views"
$ETMIRA predict data/test --base resources/weights/base.safetensors -o $OUT/test_predictions --score
$ETMIRA model-info resources/weights/base.safetensors
$ETMIRA model-info resources/weights/refiner.safetensors
date -u +"%H:%M:%S done"
