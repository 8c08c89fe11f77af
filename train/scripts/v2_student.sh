#!/usr/bin/env bash
# Student v2: train (resumable), export with the tag head and the cached decoder, calibrate the
# confidence on corpus-v2 val, measure with the release binary on the original files.
#   nohup train/scripts/v2_student.sh > train/logs/v2-student.log 2>&1 &
# EARSHOT_V2_CFG (default train/configs/student-v2.toml) and EARSHOT_V2_OUT (the bundle folder)
# let a smoke run use a copy of the config with another experiment name and few epochs.
set -euo pipefail
cd "$(dirname "$0")/../.."
CFG=${EARSHOT_V2_CFG:-train/configs/student-v2.toml}
OUT=${EARSHOT_V2_OUT:-train/cache/bundles/student-v2}
RUN=$(python -c "import sys; from earshot_train import config as C; print(C.run_dir(C.load_config(sys.argv[1])))" "$CFG")
RESUME=""
[ -f "$RUN/ckpt/last.pt" ] && RESUME=--resume
KIND=$(python -c "import sys; from earshot_train import config as C; print(C.load_config(sys.argv[1])['experiment']['kind'])" "$CFG")
if [ "$KIND" = teacher ]; then
    python -m earshot_train teacher --config "$CFG" --no-kd-outputs $RESUME
else  # students on mn04 (e.g. student-v2-ft.toml: mn04's last blocks fine-tuned)
    python -m earshot_train student --config "$CFG" $RESUME
fi
rm -rf "$OUT"
python -m earshot_train export --config "$CFG" --out "$OUT"
python -m earshot_train.export_cached "$OUT" --run "$CFG"
python -m earshot_train.calibrate --v2 --bundle "$OUT" --clips-out "$OUT.val-clips.json"
python -m earshot_train.integrity "$OUT"
cargo build --release --quiet
python -m earshot_train.measure_v2 --bundle "$OUT" ${EARSHOT_V2_MEASURE_ARGS:-}
