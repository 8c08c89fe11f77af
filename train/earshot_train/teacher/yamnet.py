"""Optional YAMNet embeddings (``shared/teachers/yamnet/yamnet.tflite``) via the ``ai-edge-litert`` runtime.

YAMNet takes fixed 0.975 s windows (15600 samples at 16 kHz). A clip is cut into windows every
``hop_seconds`` (0.48 s, YAMNet's own patch hop; the last window zero-padded); each window gives the
1024-d global-average-pooled embedding (an internal tensor, read with
``experimental_preserve_all_tensors=True``) and 521 class scores. The clip embedding is the mean over
windows. Used, when wanted, as a second encoder-KD target next to mn04 (an ensemble of teachers).

Install the runtime with ``pip install -e 'train[yamnet]'``.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np

from earshot_train.shared import shared_dir

SAMPLE_RATE = 16000
WINDOW = 15600
EMBEDDING_TENSOR = "yamnet_frames/global_average_pooling2d/Mean"


def default_yamnet_dir() -> Path:
    return shared_dir() / "teachers" / "yamnet"


class YamnetEmbedder:
    """``embed(samples_16k) -> {"frames": [W, 1024], "emb": [1024], "scores": [W, 521]}``."""

    def __init__(self, path: str | Path | None = None, hop_seconds: float = 0.48):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as e:  # optional dependency
            raise ImportError(
                "YAMNet needs the ai-edge-litert package: pip install -e 'train[yamnet]'"
            ) from e
        p = Path(path) if path is not None else default_yamnet_dir()
        if p.is_dir():
            p = p / "yamnet.tflite"
        if not p.is_file():
            raise FileNotFoundError(f"YAMNet model not found: {p} (set EARSHOT_SHARED or pass the path)")
        if hop_seconds <= 0:
            raise ValueError("hop_seconds must be > 0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "preserve_all_tensors is for debugging" notice
            self.interp = Interpreter(model_path=str(p), experimental_preserve_all_tensors=True)
        self.interp.allocate_tensors()
        inp = self.interp.get_input_details()[0]
        if list(inp["shape"]) != [1, WINDOW]:
            raise ValueError(f"unexpected YAMNet input shape {list(inp['shape'])}")
        self.input_index = inp["index"]
        self.scores_index = self.interp.get_output_details()[0]["index"]
        emb = [d for d in self.interp.get_tensor_details() if d["name"] == EMBEDDING_TENSOR]
        if not emb:
            raise ValueError(f"YAMNet model has no tensor {EMBEDDING_TENSOR!r}")
        self.embedding_index = emb[0]["index"]
        self.hop = int(round(hop_seconds * SAMPLE_RATE))
        labels_path = p.parent / "yamnet_class_map.csv"
        self.labels: list[str] = []
        if labels_path.is_file():
            with open(labels_path, newline="") as f:
                self.labels = [r["display_name"] for r in csv.DictReader(f)]

    def embed(self, samples: np.ndarray) -> dict[str, np.ndarray]:
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim != 1 or len(x) == 0:
            raise ValueError(f"YAMNet: expected mono samples [N], got shape {x.shape}")
        n_win = 1 + max(0, int(np.ceil((len(x) - WINDOW) / self.hop)))
        pad = np.zeros((n_win - 1) * self.hop + WINDOW, np.float32)
        pad[: len(x)] = x
        frames, scores = [], []
        for w in range(n_win):
            self.interp.set_tensor(self.input_index, pad[None, w * self.hop : w * self.hop + WINDOW])
            self.interp.invoke()
            frames.append(self.interp.get_tensor(self.embedding_index)[0].copy())
            scores.append(self.interp.get_tensor(self.scores_index)[0].copy())
        f = np.stack(frames)
        return {"frames": f, "emb": f.mean(axis=0), "scores": np.stack(scores)}
