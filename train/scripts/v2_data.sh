#!/usr/bin/env bash
# Corpus v2 data stage (resumable: both steps skip what is already on disk):
# render the clips, then cache mn04 frames, embeddings and tags for every clip, and in the same pass
# mn04's feature map at the input of features[EARSHOT_V2_MAPS_AT] (default 12: the input of the
# fine-tuned student, configs/student-v2-ft.toml).
set -euo pipefail
cd "$(dirname "$0")/../.."
python -m earshot_train.corpus_v2.build
EARSHOT_V2_MAPS_AT=${EARSHOT_V2_MAPS_AT:-12} python - <<'PY'
import os
from earshot_train.corpus import CorpusConfig, corpus_dir
from earshot_train.teacher_cache import cache_teacher_features
import torch
torch.set_num_threads(2)
cache_teacher_features(corpus_dir(CorpusConfig.load("train/configs/corpus-v2.toml")), batch_size=16,
                       maps_at=int(os.environ["EARSHOT_V2_MAPS_AT"]))
PY
