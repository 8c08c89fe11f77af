#!/usr/bin/env bash
# Encoder-level KD on a pretrained (fine-tuned) student, corpus v2 (issue 14), end to end and resumable:
# the rows of train/configs/ft/ (no KD / + MSE / + contrastive at 25 % and 100 % of the labels, a
# step-matched no-KD control at 25 %, second seeds at 100 %) -> eval (Python,
# rendered test_single / test_mix) -> bundle (+ cached decoder, confidence fitted on val) ->
# measure_v2 (release binary, original files, no random files) -> train/RESULTS-ft.md.
# Needs train/scripts/v2_data.sh first (corpus v2, mn04 cache with the maps at features[12]); the
# tag-KD row is student-v2-ft (train/scripts/v2_student.sh). About 4 h on 2 cores.
#   nohup train/scripts/ft_study.sh > train/logs/ft-study.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/../.."
. train/scripts/lib.sh
export OMP_NUM_THREADS=2
OUT=train/results/ft
mkdir -p "$OUT"
cargo build --release --quiet
for row in nokd-25 mse-25 nce-25 nce-100 nokd-25-steps nokd-100 mse-100 nce-100-s2 nokd-100-s2 mse-100-s2; do
  cfg=train/configs/ft/ft-$row.toml
  name=$(exp_name "$cfg")
  run="train/runs/$name"
  student "$cfg" test_single test_mix
  grep -q '"confidence"' "$run/bundle/manifest.json" ||
    python -m earshot_train.calibrate --v2 --bundle "$run/bundle" --clips-out "$run/bundle.val-clips.json"
  fresh "$OUT/$name/measure.json" "$run/bundle/manifest.json" ||
    python -m earshot_train.measure_v2 --bundle "$run/bundle" --out "$OUT/$name" \
      --val-clips "$run/bundle.val-clips.json" --random 0
done
python -m earshot_train.ft_results
