#!/usr/bin/env bash
# KD study on corpus v2 (issue 14), end to end and resumable (each step is skipped when its output is
# newer than the run's best checkpoint):
#   teacher-v2 (mn04 frames + tag row, 3-layer d = 256 decoder) -> its beam-3 captions of every clip ->
#   students of train/configs/kd-v2/ (the shipped shape: mn04 + tag row + 2-layer d = 128 decoder; no KD vs
#   + sequence-level KD, 100 % and 25 % of the labels, the 100 % rows with a second seed) ->
#   eval (Python, rendered test_single / test_mix: CIDEr-D, source accuracy) -> bundle (+ cached decoder,
#   confidence fitted on val) -> measure_v2 (release binary, original files) -> train/RESULTS-kd-v2.md.
# Needs train/scripts/v2_data.sh first (corpus v2 + mn04 frame cache). About 1.5 h on 2 cores.
#   nohup train/scripts/kd_v2.sh > train/logs/kd-v2.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/../.."
. train/scripts/lib.sh
export OMP_NUM_THREADS=2
T=train/configs/teacher-v2.toml
OUT=train/results/kd-v2
mkdir -p "$OUT"
cargo build --release --quiet

# bundle + calibration + release-binary measurement of a trained run (each skipped when already newer;
# `student` of lib.sh exports the bundle of a student, so calibration is keyed on its own section)
measure_run() {
  local cfg=$1 run name
  run="train/runs/$(exp_name "$cfg")"
  name=$(exp_name "$cfg")
  if ! fresh "$run/bundle/decoder_step.onnx" "$run/ckpt/best.pt"; then
    rm -rf "$run/bundle"
    python -m earshot_train export --config "$cfg" --out "$run/bundle"
    python -m earshot_train.export_cached "$run/bundle" --run "$cfg"
  fi
  grep -q '"confidence"' "$run/bundle/manifest.json" ||
    python -m earshot_train.calibrate --v2 --bundle "$run/bundle" --clips-out "$run/bundle.val-clips.json"
  fresh "$OUT/$name/measure.json" "$run/bundle/manifest.json" ||
    python -m earshot_train.measure_v2 --bundle "$run/bundle" --out "$OUT/$name" \
      --val-clips "$run/bundle.val-clips.json" --random 0
}

TR="train/runs/$(exp_name "$T")"
if ! fresh "$TR/kd/captions.jsonl" "$TR/ckpt/best.pt"; then
  python -m earshot_train teacher --config "$T" $(resume "$T")
fi
for split in test_single test_mix; do
  fresh "$TR/eval_$split.json" "$TR/ckpt/best.pt" || python -m earshot_train eval --config "$T" --split "$split"
done
measure_run "$T"

for row in seqkd-100 nokd-25 seqkd-25 nokd-100 seqkd-100-s2 nokd-100-s2; do
  cfg=train/configs/kd-v2/kdv2-student-$row.toml
  student "$cfg" test_single test_mix
  measure_run "$cfg"
done
python -m earshot_train.kd_v2_results
