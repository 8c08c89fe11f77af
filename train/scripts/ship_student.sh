#!/usr/bin/env bash
# Train the shipped-student candidates of train/configs/ship/ (the KD study's best recipe, trained longer),
# evaluate them and the study's own row of that recipe, choose one on the validation split
# (earshot_train.ship: highest val source accuracy, then CIDEr-D — the test sets are never used to
# choose), install it as models/default, then regenerate train/RESULTS.md, the int8 report and the card.
# Usage: train/scripts/ship_student.sh     (after train/scripts/kd_study.sh; JOBS=2 runs in parallel)
set -euo pipefail
cd "$(dirname "$0")/../.."
S=train/configs/ship
JOBS=${JOBS:-2}
. train/scripts/lib.sh

ls "$S"/*.toml | xargs -P "$JOBS" -I{} bash -c 'student {} val test_single test_mix'
# the study's own row of the same recipe competes too (trained by kd_study.sh; only its val score is new)
student train/configs/kd/student-infonce-100.toml val test_single test_mix

chosen=$(python -m earshot_train.ship "$S"/*.toml train/configs/kd/student-infonce-100.toml)
echo "shipping $chosen"
rm -rf models/default && cp -r "train/runs/$(exp_name "$chosen")/bundle" models/default

cargo build --release
python -m earshot_train.results --input "${EARSHOT_CACHE:-train/cache}/corpus/default/audio/test_mix/test_mix-bed-00000.wav"
python -m earshot_train.int8_report --bundle models/default # docs/int8.{md,json}: ship int8 or not
python -m earshot_train.model_card --config "$chosen" --bundle models/default
