"""Experiment configuration: one TOML file per experiment, ``--set section.key=value`` overrides.

Sections (all optional except where a command needs them; see ``train/configs/*.toml``):

- ``[experiment]`` name, kind (``teacher`` | ``student``), seed, threads, device (auto|cpu|cuda), runs_dir,
  progress, epochs_per_run
- ``[corpus]`` the corpus builder's table (or ``[data] corpus_config = "corpus.toml"``, relative to the file)
- ``[data]`` corpus_config, teacher (teacher experiment name, for students), min_count, max_len,
  splits (train/val), feature_cache
- ``[teacher]`` weights (``shared`` = pretrained mn04 from the shared folder, ``random`` = seeded random
  init, for tests without shared data)
- ``[model]`` encoder (cnn | tcn | effb2 | teacher_frames | mn04_tuned), tag_token (teacher_frames: one
  extra memory row from mn04's AudioSet tag probabilities, ``models.captioner.TagToken``), ``[model.cnn]``,
  ``[model.tcn]``, ``[model.effb2]``, ``[model.mn04_tuned]`` (maps_at, train_from, input_dropout:
  ``models.captioner.MN04Tuned``), ``[model.decoder]``
- ``[loss]`` ce, seq_kd, enc_mse, enc_infonce, tag_kd (weights), label_smoothing, seq_kd_label_smoothing,
  proj_dim, temperature, max_logit_scale. With ``mn04_tuned`` the encoder-KD target is the frozen mn04
  (the teacher's encoder) on the same clip and ``tag_kd`` distils its AudioSet tag probabilities.
- ``[augment]`` time_masks, time_width, freq_masks, freq_width (SpecAugment on student inputs; 0 = off)
- ``[optim]`` lr, encoder_lr_scale (the encoder's lr = lr * scale), weight_decay, batch_size, epochs,
  max_steps, warmup_steps, grad_clip (validation: per epoch)
- ``[search]`` beam, max_len, length_norm
- ``[export]`` name, window_seconds, hop_seconds, tags (mn04-encoder bundles: export the 527 AudioSet
  tag logits as the encoder's ``tags`` output), tags_top_k, tags_min_score
"""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from typing import Any

from earshot_train.shared import REPO_ROOT

DEFAULTS: dict[str, Any] = {
    "experiment": {
        "name": "",
        "kind": "student",
        "seed": 1234,
        "threads": 0,  # 0 = leave torch's default
        "device": "auto",
        "runs_dir": "",  # "" = <repo>/train/runs
        "progress": True,
        "epochs_per_run": 0,  # >0: stop after that many epochs in one invocation (continue with --resume)
    },
    "data": {
        "corpus_config": "",
        "teacher": "",
        "min_count": 2,
        "max_len": 20,
        "train_splits": ["train"],
        "kd_splits": ["train", "audio_only"],
        "val_split": "val",
        "feature_cache": "",  # "" = <corpus dir>/features/<frontend digest>
        "caption_fraction": 1.0,  # <1: only that share of train clips keeps captions (rest: audio-only)
        "repeat_kinds": {},  # e.g. {overlap = 3}: train clips of that kind appear 3 times per epoch
    },
    "teacher": {"weights": "shared", "batch_size": 8},
    "model": {
        "encoder": "cnn",
        "teacher_dim": 384,
        "tag_token": False,  # teacher_frames: append a memory row from mn04's tag probabilities
        "cnn": {},
        "tcn": {},
        "effb2": {},
        "mn04_tuned": {"maps_at": 12, "train_from": 12, "input_dropout": 0.0},
        "decoder": {"d_model": 256, "n_heads": 4, "n_layers": 2, "ffn_dim": 1024, "dropout": 0.2},
    },
    "loss": {
        "ce": 1.0,
        "seq_kd": 0.0,
        "enc_mse": 0.0,
        "enc_infonce": 0.0,
        "tag_kd": 0.0,
        "label_smoothing": 0.1,
        "seq_kd_label_smoothing": 0.0,
        "proj_dim": 256,
        "temperature": 0.07,
        "max_logit_scale": 100.0,
    },
    "augment": {"time_masks": 0, "time_width": 0, "freq_masks": 0, "freq_width": 0},
    "optim": {
        "lr": 5e-4,
        "encoder_lr_scale": 1.0,
        "weight_decay": 1e-6,
        "batch_size": 32,
        "epochs": 20,
        "max_steps": 0,  # 0 = no limit
        "warmup_steps": 200,
        "grad_clip": 1.0,
    },
    "search": {"beam": 3, "max_len": 20, "length_norm": 1.0},
    "export": {
        "name": "",
        "window_seconds": 10.0,
        "hop_seconds": 5.0,
        "tags": False,
        "tags_top_k": 5,
        "tags_min_score": 0.2,
    },
}

_OPEN_TABLES = {
    ("model", "cnn"),
    ("model", "tcn"),
    ("model", "effb2"),
    ("model", "decoder"),
    ("corpus",),
    ("data", "repeat_kinds"),
}


def _merge(base: dict[str, Any], over: dict[str, Any], path: tuple[str, ...] = ()) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        here = (*path, k)
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            if here in _OPEN_TABLES:
                out[k].update(copy.deepcopy(v))
            else:
                out[k] = _merge(out[k], v, here)
        elif k in out or path in _OPEN_TABLES or here in _OPEN_TABLES or not path:
            if not path and k not in out and not isinstance(v, dict):
                raise ValueError(f"config: top-level key {k!r} must be a [table]")
            out[k] = copy.deepcopy(v)
        else:
            raise ValueError(f"config: unknown key {'.'.join(here)!r}")
    return out


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # bare string


def apply_overrides(cfg: dict[str, Any], sets: list[str]) -> dict[str, Any]:
    """``["optim.lr=1e-3", "model.decoder.d_model=128", "experiment.name=x"]`` (values parsed as TOML)."""
    for item in sets:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        if len(parts) < 2 or not all(parts):
            raise ValueError(f"--set key must be section.key, got {key!r}")
        patch: dict[str, Any] = {}
        node = patch
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = _parse_value(text.strip())
        cfg = _merge(cfg, patch)
    return cfg


def load_config(path: str | Path | None, sets: list[str] | None = None) -> dict[str, Any]:
    """Defaults <- TOML file <- overrides; validated. Adds ``_path`` and ``_dir`` (the file's folder)."""
    data: dict[str, Any] = {}
    base_dir = Path.cwd()
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise ValueError(f"config not found: {p}") from None
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"config {p}: {e}") from None
        base_dir = p.resolve().parent
        if not data.get("experiment", {}).get("name"):
            data.setdefault("experiment", {})["name"] = p.stem
    cfg = _merge(DEFAULTS, data)
    cfg = apply_overrides(cfg, sets or [])
    cfg["_path"] = str(Path(path).resolve()) if path else ""
    cfg["_dir"] = str(base_dir)
    validate(cfg)
    return cfg


def validate(cfg: dict[str, Any]) -> None:
    for kind, n in cfg["data"]["repeat_kinds"].items():
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 20:
            raise ValueError(f"data.repeat_kinds.{kind} must be an integer 1..20 (got {n!r})")
    e = cfg["experiment"]
    if not e["name"] or any(c in e["name"] for c in "/\\ "):
        raise ValueError(f"experiment.name must be a non-empty name without / or spaces (got {e['name']!r})")
    if e["kind"] not in ("teacher", "student"):
        raise ValueError(f"experiment.kind must be 'teacher' or 'student' (got {e['kind']!r})")
    if e["device"] not in ("auto", "cpu", "cuda"):
        raise ValueError(f"experiment.device must be auto, cpu or cuda (got {e['device']!r})")
    if cfg["teacher"]["weights"] not in ("shared", "random"):
        raise ValueError("teacher.weights must be 'shared' or 'random'")
    loss = cfg["loss"]
    for k in ("ce", "seq_kd", "enc_mse", "enc_infonce", "tag_kd"):
        if not isinstance(loss[k], (int, float)) or loss[k] < 0:
            raise ValueError(f"loss.{k} must be a non-negative number")
    if not 0 <= loss["label_smoothing"] < 1 or not 0 <= loss["seq_kd_label_smoothing"] < 1:
        raise ValueError("label smoothing must be in [0, 1)")
    if loss["temperature"] <= 0:
        raise ValueError("loss.temperature must be > 0")
    o = cfg["optim"]
    for k in ("batch_size", "epochs"):
        if not isinstance(o[k], int) or o[k] < 1:
            raise ValueError(f"optim.{k} must be a positive integer")
    if o["lr"] <= 0:
        raise ValueError("optim.lr must be > 0")
    s = cfg["search"]
    if s["beam"] < 1 or s["max_len"] < 1:
        raise ValueError("search.beam and search.max_len must be >= 1")
    if cfg["data"]["max_len"] < 1:
        raise ValueError("data.max_len must be >= 1")
    if not 0 < o["encoder_lr_scale"] <= 10:
        raise ValueError("optim.encoder_lr_scale must be in (0, 10]")
    enc = cfg["model"]["encoder"]
    if e["kind"] == "teacher" and enc != "teacher_frames":
        raise ValueError("a teacher experiment uses model.encoder = 'teacher_frames'")
    if loss["tag_kd"] and enc != "mn04_tuned":
        raise ValueError(
            "loss.tag_kd distils mn04's tags into a tuned mn04: it needs model.encoder = 'mn04_tuned'"
        )
    if enc == "mn04_tuned":
        t = cfg["model"]["mn04_tuned"]
        if not (isinstance(t["maps_at"], int) and isinstance(t["train_from"], int)):
            raise ValueError("model.mn04_tuned.maps_at and train_from must be integers")
        if not 1 <= t["maps_at"] <= t["train_from"] <= 16:
            raise ValueError("model.mn04_tuned needs 1 <= maps_at <= train_from <= 16")
        if not 0 <= t["input_dropout"] < 1:
            raise ValueError("model.mn04_tuned.input_dropout must be in [0, 1)")
    if e["kind"] == "student" and (loss["seq_kd"] or encoder_kd_from_run(cfg)):
        if not cfg["data"]["teacher"]:
            raise ValueError("KD losses need data.teacher (the teacher experiment's name)")


MN04_ENCODERS = ("teacher_frames", "mn04_tuned")


def encoder_kd(cfg: dict[str, Any]) -> bool:
    """Whether an encoder-level KD term (MSE or contrastive) is on."""
    return bool(cfg["loss"]["enc_mse"] or cfg["loss"]["enc_infonce"])


def encoder_kd_from_run(cfg: dict[str, Any]) -> bool:
    """Encoder KD whose target embeddings come from the teacher run's ``kd/emb.npz``. With
    ``mn04_tuned`` the target is the frozen mn04 inside the encoder instead, so it needs no teacher
    run and every clip, audio-only ones too, has one."""
    return encoder_kd(cfg) and cfg["model"]["encoder"] != "mn04_tuned"


def encoder_kd_from_self(cfg: dict[str, Any]) -> bool:
    """Encoder KD against the frozen mn04 beside a tuned one (see :func:`encoder_kd_from_run`)."""
    return encoder_kd(cfg) and cfg["model"]["encoder"] == "mn04_tuned"


def uses_mn04(cfg: dict[str, Any]) -> bool:
    """Whether the experiment's bundle encoder is mn04 (cached frames, or mn04 with tuned blocks)."""
    return cfg["model"]["encoder"] in MN04_ENCODERS


def runs_dir(cfg: dict[str, Any]) -> Path:
    r = cfg["experiment"]["runs_dir"]
    if not r:
        return REPO_ROOT / "train" / "runs"
    p = Path(r)
    return p if p.is_absolute() else Path(cfg["_dir"]) / p


def run_dir(cfg: dict[str, Any], name: str | None = None) -> Path:
    return runs_dir(cfg) / (name or cfg["experiment"]["name"])


def corpus_table(cfg: dict[str, Any]) -> dict[str, Any]:
    """The ``[corpus]`` table, inline or from ``data.corpus_config``."""
    if "corpus" in cfg:
        return dict(cfg["corpus"])
    ref = cfg["data"]["corpus_config"]
    if not ref:
        raise ValueError("config needs a [corpus] table or data.corpus_config")
    p = Path(ref)
    if not p.is_absolute():
        p = Path(cfg["_dir"]) / p
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise ValueError(f"data.corpus_config not found: {p}") from None
    return dict(data.get("corpus", data))


def dumps(cfg: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in cfg.items() if not k.startswith("_")}, indent=1, sort_keys=True)
