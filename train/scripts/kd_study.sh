#!/usr/bin/env bash
# Reproduce the KD study of train/RESULTS.md end to end (issue 5):
#   corpus -> mn04 teacher features -> teacher decoder (+ beam-3 captions, embeddings) -> 8 students
#   (no KD / seq-KD / +MSE / +contrastive, each with 100 % and 25 % of the labels) -> eval -> export
#   -> earshot bench timings -> train/RESULTS.md.
# Usage: train/scripts/kd_study.sh            (JOBS=2 students in parallel, one thread each)
# Needs: pip install -e 'train[dev]', ../shared (or EARSHOT_SHARED), cargo. Several hours on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
K=train/configs/kd
JOBS=${JOBS:-2}
export OMP_NUM_THREADS=1 # one thread per process: oversubscribed OpenMP threads were 8x slower here

# --resume when a checkpoint of the experiment exists (runs are resumable; each epoch is checkpointed)
resume() {
  local name
  name=$(python -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["experiment"]["name"])' "$1")
  if [ -f "train/runs/$name/ckpt/last.pt" ]; then echo --resume; fi
}
export -f resume

python -m earshot_train corpus --config train/configs/corpus.toml
python -m earshot_train teacher --config "$K/teacher.toml" $(resume "$K/teacher.toml")
for split in test_single test_mix; do
  python -m earshot_train eval --config "$K/teacher.toml" --split "$split"
done
python -m earshot_train export --config "$K/teacher.toml"
python -m earshot_train.export_cached train/runs/kd-teacher/bundle --run "$K/teacher.toml"

student() {
  local cfg=$1
  python -m earshot_train student --config "$cfg" $(resume "$cfg")
  for split in test_single test_mix; do
    python -m earshot_train eval --config "$cfg" --split "$split"
  done
  python -m earshot_train export --config "$cfg"
  local name
  name=$(python -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["experiment"]["name"])' "$cfg")
  python -m earshot_train.export_cached "train/runs/$name/bundle" --run "$cfg"
}
export -f student
ls "$K"/student-*.toml | xargs -P "$JOBS" -I{} bash -c 'student {}'

cargo build --release
python -m earshot_train.results --input "${EARSHOT_CACHE:-train/cache}/corpus/default/audio/test_mix/test_mix-bed-00000.wav"

# the shipped default: the seq-KD + contrastive student with all labels
rm -rf models/default && cp -r train/runs/kd-student-infonce-100/bundle models/default
python -m earshot_train.export_cached models/default --run "$K/student-infonce-100.toml"
python -m earshot_train.model_card --config "$K/student-infonce-100.toml" --bundle models/default
