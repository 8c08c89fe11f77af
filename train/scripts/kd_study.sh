#!/usr/bin/env bash
# Reproduce the KD study of train/RESULTS.md end to end (issue 5):
#   corpus -> mn04 teacher features -> teacher decoder (+ beam-3 captions, embeddings) -> 8 students
#   (no KD / seq-KD / +MSE / +contrastive, each with 100 % and 25 % of the labels; the 100 % rows again
#   with a second seed, configs/kd-seed/) -> eval -> export
#   -> earshot bench timings -> train/RESULTS.md.
# Usage: train/scripts/kd_study.sh            (JOBS=2 students in parallel, one thread each)
# Needs: pip install -e 'train[dev]', ../shared (or EARSHOT_SHARED), cargo. Several hours on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
K=train/configs/kd
JOBS=${JOBS:-2}
. train/scripts/lib.sh

python -m earshot_train corpus --config train/configs/corpus.toml
python -m earshot_train teacher --config "$K/teacher.toml" $(resume "$K/teacher.toml")
for split in test_single test_mix; do
  python -m earshot_train eval --config "$K/teacher.toml" --split "$split"
done
python -m earshot_train export --config "$K/teacher.toml"
python -m earshot_train.export_cached train/runs/kd-teacher/bundle --run "$K/teacher.toml"

ls "$K"/student-*.toml train/configs/kd-seed/*.toml | xargs -P "$JOBS" -I{} bash -c 'student {} test_single test_mix'

cargo build --release
python -m earshot_train.results --input "${EARSHOT_CACHE:-train/cache}/corpus/default/audio/test_mix/test_mix-bed-00000.wav"

# the shipped default is chosen among longer runs of the best recipe: train/scripts/ship_student.sh
