"""ONNX export of a captioner as an earshot bundle (docs/bundle-format.md), with an onnxruntime parity check.

Encoder graph: ``mel`` f32 [1, n_mels, frames] (concrete) -> ``memory`` f32 [1, T, D].
Decoder graph: ``tokens`` int64 [B, L] + ``memory`` f32 [B, T, D] (B, L dynamic) -> ``logits`` f32 [B, V]
(the last position only). Legacy TorchScript exporter (``dynamo=False``), opset 17.
"""

from __future__ import annotations

import datetime as _dt
import json
import subprocess
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from earshot_train import search
from earshot_train.frontend import FrontendSpec, logmel, n_frames
from earshot_train.integrity import write_file_hashes
from earshot_train.models.captioner import Captioner, mn04_base
from earshot_train.models.decoder import LastLogits
from earshot_train.tokenizer import END, PAD, START, UNK, Tokenizer

OPSET = 17


class EncoderGraph(nn.Module):
    """The encoder as exported: ``memory``, plus the clip-level ``tags`` logits when ``with_tags``."""

    def __init__(self, captioner: Captioner, with_tags: bool = False):
        super().__init__()
        self.encoder = captioner.encoder
        self.with_tags = with_tags

    def forward(self, mel: torch.Tensor):
        o = self.encoder(mel)
        if self.with_tags:
            return o["memory"], o["tags"]
        return o["memory"]


def git_commit(repo: Path | None = None) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=repo or Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _export(
    module: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str], dynamic=None
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=dynamic,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


def export_encoder(
    captioner: Captioner, n_mels: int, frames: int, path: Path, with_tags: bool = False
) -> None:
    enc = EncoderGraph(captioner, with_tags).eval()
    outputs = ["memory", "tags"] if with_tags else ["memory"]
    _export(enc, (torch.zeros(1, n_mels, frames),), path, ["mel"], outputs)


def export_decoder(
    captioner: Captioner, memory_len: int, memory_dim: int, path: Path, dynamic_memory_len: bool = False
) -> None:
    dec = LastLogits(captioner.decoder).eval()
    tokens = torch.tensor([[START, 4, 5]], dtype=torch.long)
    mem = torch.zeros(1, memory_len, memory_dim)
    _export(
        dec,
        (tokens, mem),
        path,
        ["tokens", "memory"],
        ["logits"],
        dynamic={
            "tokens": {0: "batch", 1: "length"},
            "memory": {0: "batch", 1: "frames"} if dynamic_memory_len else {0: "batch"},
            "logits": {0: "batch"},
        },
    )


def ort_session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def torch_step(captioner: Captioner):
    def step(tokens: np.ndarray, memory: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return captioner.decoder.last_logits(torch.from_numpy(tokens), torch.from_numpy(memory)).numpy()

    return step


def ort_step(sess):
    def step(tokens: np.ndarray, memory: np.ndarray) -> np.ndarray:
        return sess.run(["logits"], {"tokens": tokens.astype(np.int64), "memory": memory.astype(np.float32)})[
            0
        ]

    return step


def window_features(samples: np.ndarray, spec: FrontendSpec, window_seconds: float) -> np.ndarray:
    """Zero-pad (or cut) mono samples to one window and compute [1, n_mels, frames] features."""
    n = int(round(window_seconds * spec.sample_rate))
    x = np.zeros(n, dtype=np.float32)
    m = min(n, len(samples))
    x[:m] = samples[:m]
    return logmel(x, spec).numpy().astype(np.float32)


def parity_check(
    captioner: Captioner,
    bundle: Path,
    features: np.ndarray,
    beam: int,
    max_len: int,
    length_norm: float,
    memory_slice: int | None = None,
) -> dict[str, Any]:
    """Run PyTorch and onnxruntime on the same features; returns diffs and both token sequences."""
    captioner.eval()
    enc_sess = ort_session(bundle / "encoder.onnx")
    dec_sess = ort_session(bundle / "decoder.onnx")
    with torch.no_grad():
        mem_pt = captioner.encoder(torch.from_numpy(features))["memory"].numpy()
    mem_ort = enc_sess.run(["memory"], {"mel": features})[0]
    enc_diff = float(np.abs(mem_pt - mem_ort).max())
    tags_diff = None
    if "tags" in [o.name for o in enc_sess.get_outputs()]:
        with torch.no_grad():
            tags_pt = captioner.encoder(torch.from_numpy(features))["tags"].numpy()
        tags_diff = float(np.abs(tags_pt - enc_sess.run(["tags"], {"mel": features})[0]).max())
    if memory_slice is not None:
        mem_pt, mem_ort = mem_pt[:, :memory_slice], mem_ort[:, :memory_slice]
    probe = np.array([[START, 4, 5, 6], [START, 7, 8, 9]], dtype=np.int64) % captioner.decoder.cfg.vocab_size
    probe[:, 0] = START
    mem2 = np.repeat(mem_ort, 2, axis=0)
    dec_diff = float(np.abs(torch_step(captioner)(probe, mem2) - ort_step(dec_sess)(probe, mem2)).max())
    pt_step, o_step = torch_step(captioner), ort_step(dec_sess)
    res = {
        "encoder_max_abs_diff": enc_diff,
        "decoder_max_abs_diff": dec_diff,
        "greedy_ids_torch": search.greedy(pt_step, mem_pt, max_len),
        "greedy_ids_ort": search.greedy(o_step, mem_ort, max_len),
        "beam_ids_torch": search.beam_search(pt_step, mem_pt, beam, max_len, length_norm),
        "beam_ids_ort": search.beam_search(o_step, mem_ort, beam, max_len, length_norm),
        "memory_ort": mem_ort,
    }
    if tags_diff is not None:
        res["tags_max_abs_diff"] = tags_diff
    res["ids_identical"] = (
        res["greedy_ids_torch"] == res["greedy_ids_ort"] and res["beam_ids_torch"] == res["beam_ids_ort"]
    )
    return res


def export_bundle(
    captioner: Captioner,
    tokenizer: Tokenizer,
    spec: FrontendSpec,
    out_dir: str | Path,
    *,
    name: str,
    window_seconds: float = 10.0,
    hop_seconds: float = 5.0,
    beam: int = 3,
    max_len: int = 20,
    length_norm: float = 1.0,
    memory_len: str = "full",
    provenance: dict[str, Any] | None = None,
    licences: list[str] | None = None,
    parity_audio: np.ndarray | None = None,
    model_card: str | None = None,
    stamp: bool = True,
    tags: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write encoder.onnx, decoder.onnx, vocab.txt, manifest.json (and parity.json) into ``out_dir``.

    Returns the parity report (max abs diffs, token ids from both runtimes). Raises ``RuntimeError`` if
    onnxruntime and PyTorch disagree on the token ids.
    """
    if memory_len not in ("full", "effb2"):
        raise ValueError(f"memory_len must be 'full' or 'effb2', got {memory_len!r}")
    if len(tokenizer) != captioner.decoder.cfg.vocab_size:
        raise ValueError(f"tokenizer has {len(tokenizer)} words, decoder {captioner.decoder.cfg.vocab_size}")
    if max_len + 1 > captioner.decoder.cfg.max_positions:
        raise ValueError(f"max_len {max_len} needs max_positions >= {max_len + 1}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    captioner = captioner.eval()
    n_samples = int(round(window_seconds * spec.sample_rate))
    frames = n_frames(n_samples, spec)
    with torch.no_grad():
        mem = captioner.encoder(torch.zeros(1, spec.n_mels, frames))["memory"]
    t_len, d = int(mem.shape[1]), int(mem.shape[2])
    export_encoder(captioner, spec.n_mels, frames, out / "encoder.onnx", with_tags=tags is not None)
    export_decoder(captioner, t_len, d, out / "decoder.onnx", dynamic_memory_len=memory_len == "effb2")
    tokenizer.save(out / "vocab.txt")
    prov: dict[str, Any] = {
        "exporter": f"torch {torch.__version__} torch.onnx.export(dynamo=False) opset {OPSET}"
    }
    if stamp:  # golden files stay byte-identical across runs: no commit/date there
        prov["git_commit"] = git_commit()
        prov["date"] = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    prov.update(provenance or {})
    manifest = {
        "format": "earshot-bundle",
        "version": 1,
        "name": name,
        "window_seconds": float(window_seconds),
        "hop_seconds": float(hop_seconds),
        "frontend": spec.to_dict(),
        "encoder": {
            "file": "encoder.onnx",
            "input": "mel",
            "input_shape": [1, spec.n_mels, frames],
            "output": "memory",
            "output_shape": [1, t_len, d],
            "memory_len": memory_len,
        },
        "decoder": {
            "file": "decoder.onnx",
            "input_tokens": "tokens",
            "input_memory": "memory",
            "output": "logits",
            "vocab_size": len(tokenizer),
            "max_len": int(max_len),
        },
        "tokens": {"pad": PAD, "start": START, "end": END, "unk": UNK},
        "vocab": "vocab.txt",
        "search": {"beam": int(beam), "max_len": int(max_len), "length_norm": float(length_norm)},
        "provenance": prov,
        "licences": list(licences or []),
    }
    if tags is not None:
        # ``tags``: {"labels": [K names], "top_k", "min_score"}; the encoder's "tags" output is [1, K]
        (out / "tags.txt").write_text("".join(f"{t}\n" for t in tags["labels"]))
        manifest["tags"] = {
            "output": "tags",
            "labels": "tags.txt",
            "activation": "sigmoid",
            "top_k": int(tags.get("top_k", 5)),
            "min_score": float(tags.get("min_score", 0.2)),
        }
    if model_card:
        (out / "MODEL_CARD.md").write_text(model_card)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")

    if parity_audio is None:
        rng = np.random.default_rng(0)
        parity_audio = (0.1 * rng.standard_normal(n_samples)).astype(np.float32)
    feats = window_features(parity_audio, spec, window_seconds)
    mem_slice = (n_samples // spec.hop_length + 1) // 32 if memory_len == "effb2" else None
    rep = parity_check(captioner, out, feats, beam, max_len, length_norm, mem_slice)
    rep.pop("memory_ort")
    print(
        f"parity {name}: encoder max|diff| {rep['encoder_max_abs_diff']:.3g}, "
        f"decoder max|diff| {rep['decoder_max_abs_diff']:.3g}, ids identical: {rep['ids_identical']}"
    )
    (out / "parity.json").write_text(json.dumps(rep, indent=1) + "\n")
    if not rep["ids_identical"]:
        raise RuntimeError(f"onnxruntime and PyTorch token ids differ: {rep}")
    write_file_hashes(out)
    return rep


class TeacherEncoder(nn.Module):
    """mn04 as a bundle encoder: mel [B, 128, T] -> memory = frequency-pooled frames [B, T', 384].

    With the trained ``tag_token`` (``model.tag_token``) the memory is [B, T' + 1, 384]: the frames and
    the row made from the tag probabilities, computed by the run's own (frozen) copy of mn04's head, so
    the bundle sees what training saw; ``tags`` are those logits.
    """

    def __init__(self, mn04: nn.Module, tag_token: nn.Module | None = None):
        super().__init__()
        self.mn04 = mn04
        self.tag_token = tag_token
        self.out_dim = 384

    def forward(self, mel: torch.Tensor) -> dict[str, torch.Tensor]:
        o = self.mn04(mel)
        if self.tag_token is None:
            return {"memory": o["frames"], "emb": o["emb"], "tags": o["logits"]}
        logits = self.tag_token.logits(o["emb"])
        return {"memory": self.tag_token.append(o["frames"], logits), "emb": o["emb"], "tags": logits}


LICENCES = [
    "earshot code: MIT",
    "training audio: ESC-10 clips CC0 / CC-BY 3.0 (per-clip attribution in the corpus' attribution list)",
    "training audio: 0 A.D. game sounds CC-BY-SA 3.0, Wildfire Games",
    "training audio: English speech prompts CC-BY-SA 3.0, Allison Smith (asterisk-core-sounds-en)",
    "teacher encoder: EfficientAT mn04_as, MIT, Florian Schmid",
]


def export_run(cfg: dict[str, Any], out: Path, which: str = "best") -> dict[str, Any]:
    """Export a trained teacher or student experiment as a bundle in ``out`` (parity-checked)."""
    from earshot_train import config as C
    from earshot_train import trainer
    from earshot_train.audio_io import load_audio

    model, tok = trainer.load_trained(cfg, which)
    kind = cfg["experiment"]["kind"]
    memory_len = "full"
    if cfg["model"]["encoder"] == "mn04_tuned":  # mn04 with the run's tuned blocks and tag head
        from earshot_train.teacher.mn04 import MN04_FRONTEND

        model = Captioner(TeacherEncoder(model.encoder.to_mn04()), model.decoder).eval()
        spec = MN04_FRONTEND
    elif cfg["model"]["encoder"] == "teacher_frames":  # mn04 in the bundle (teachers and mn04 students)
        from earshot_train.teacher.mn04 import MN04_FRONTEND

        # a random mn04 is seeded as the feature cache's was (trainer.ensure_teacher_cache)
        mn04 = mn04_base(cfg["teacher"]["weights"], int(cfg["experiment"]["seed"]))
        model = Captioner(
            TeacherEncoder(mn04, getattr(model.encoder, "tag_token", None)), model.decoder
        ).eval()
        spec = MN04_FRONTEND
    else:
        spec = trainer.input_spec(cfg)
        if cfg["model"]["encoder"] == "effb2":
            memory_len = "effb2"
    cdir, rows = trainer.corpus_info(cfg)
    probe = next((r for r in rows if r["split"] in ("val", "test_mix", "train")), rows[0])
    audio = load_audio(cdir / probe["audio"], spec.sample_rate)
    ex = cfg["export"]
    return export_bundle(
        model,
        tok,
        spec,
        out,
        name=ex["name"] or f"earshot-{cfg['experiment']['name']}",
        window_seconds=float(ex["window_seconds"]),
        hop_seconds=float(ex["hop_seconds"]),
        beam=int(cfg["search"]["beam"]),
        max_len=int(cfg["search"]["max_len"]),
        length_norm=float(cfg["search"]["length_norm"]),
        memory_len=memory_len,
        provenance={
            "experiment": cfg["experiment"]["name"],
            "kind": kind,
            "checkpoint": which,
            "teacher": cfg["data"]["teacher"] or None,
            "corpus": str(cdir.name),
            "parity_clip": probe["id"],
            "config": json.loads(C.dumps(cfg)),
        },
        licences=corpus_licences(cdir) if (cdir / "corpus_info.json").is_file() else LICENCES,
        parity_audio=audio,
        tags=_tags_section(cfg),
    )


def _tags_section(cfg: dict[str, Any]) -> dict[str, Any] | None:
    ex = cfg["export"]
    if not ex.get("tags"):
        return None
    from earshot_train import config as C

    if not C.uses_mn04(cfg):
        raise ValueError(
            "export.tags needs the mn04 encoder (model.encoder = 'teacher_frames' or 'mn04_tuned'):"
            " only it has the tag head"
        )
    from earshot_train.teacher.mn04 import mn04_labels

    return {"labels": mn04_labels(), "top_k": ex["tags_top_k"], "min_score": ex["tags_min_score"]}


def corpus_licences(cdir: Path) -> list[str]:
    """Licence lines of a bundle trained on ``cdir``: every collection whose files it used (corpus v2)."""
    info = json.loads((cdir / "corpus_info.json").read_text())
    if info.get("builder") != "corpus_v2.build":
        return LICENCES
    from earshot_train.corpus_v2.build import collection_of
    from earshot_train.corpus_v2.sources import licence_summary

    colls: set[str] = set()
    with open(cdir / "manifest.jsonl") as f:
        for line in f:
            colls |= {collection_of(ev["file"]) for ev in json.loads(line)["events"]}
    colls.discard("generated")
    out = ["earshot code: MIT", "encoder and tag head: EfficientAT mn04_as, MIT, Florian Schmid"]
    out += [f"training audio {c}: {licence_summary(c)}" for c in sorted(colls)]
    return out
