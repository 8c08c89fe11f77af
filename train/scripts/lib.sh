# Shared steps of train/scripts/kd_study.sh and train/scripts/ship_student.sh (sourced, not run).
export OMP_NUM_THREADS=1 # one thread per process: oversubscribed OpenMP threads were 8x slower here

# the experiment name of a config
exp_name() {
  python -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["experiment"]["name"])' "$1"
}

# --resume when a checkpoint of the experiment exists (runs are resumable; each epoch is checkpointed)
resume() {
  if [ -f "train/runs/$(exp_name "$1")/ckpt/last.pt" ]; then echo --resume; fi
}

# true when file $1 exists and is newer than the run's best checkpoint $2 (the step is already done)
fresh() {
  [ -f "$1" ] && [ "$1" -nt "$2" ]
}

# train a student config, evaluate it on the given splits, export its bundle with the KV-cached decoder;
# evaluations and exports newer than the best checkpoint are kept (re-running the script resumes)
student() {
  local cfg=$1 split run
  shift
  run="train/runs/$(exp_name "$cfg")"
  python -m earshot_train student --config "$cfg" $(resume "$cfg")
  for split in "$@"; do
    fresh "$run/eval_$split.json" "$run/ckpt/best.pt" ||
      python -m earshot_train eval --config "$cfg" --split "$split"
  done
  if ! fresh "$run/bundle/decoder_step.onnx" "$run/ckpt/best.pt"; then
    python -m earshot_train export --config "$cfg"
    python -m earshot_train.export_cached "$run/bundle" --run "$cfg"
  fi
}
export -f exp_name resume fresh student
