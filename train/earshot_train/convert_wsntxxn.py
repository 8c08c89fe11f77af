"""Convert the paper's released EfficientNet-B2 + Transformer student (Hugging Face, wsntxxn) to a bundle.

Input: a checkpoint directory in the published layout (``config.json`` with
``architectures: ["Effb2TrmCaptioningModel"]`` + ``model.safetensors`` or ``pytorch_model.bin``) and a
word vocabulary (a Hugging Face ``tokenizer.json`` with a WordLevel ``model.vocab`` map, a plain
one-word-per-line file, or ``--placeholder-vocab`` for checkpoints without one). Output: an earshot
bundle (docs/bundle-format.md) with

- ``encoder.onnx``: log-mel ``mel`` [1, 64, frames] (frames fixed by the window, 1001 for 10 s) ->
  ``memory`` [1, T, 1408], our own :class:`~earshot_train.models.effb2.EfficientNetB2Encoder`;
- ``decoder.onnx``: ``tokens`` int64 [B, L] + ``memory`` [B, T', 1408] (B, L, T' dynamic) -> ``logits``
  [B, V], A1's :class:`~earshot_train.models.decoder.CaptionDecoder` (same parameter names);
- ``manifest.json`` with the model's own front end (power mel, dB, ``top_db`` 120), ``memory_len:
  "effb2"`` and ``search.beam_mode: "constant"`` (the authors' beam search, see ``search.py``);
- ``vocab.txt``, ``MODEL_CARD.md``, ``parity.json``.

Every conversion checks the graphs against PyTorch with onnxruntime; with ``--reference DIR`` (the
``reference/wsntxxn-effb2-trm`` folder of the shared data) it also checks PyTorch and onnxruntime against
the outputs of the authors' implementation at every stage and fails when they disagree.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import math
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from earshot_train import search
from earshot_train.audio_io import load_audio
from earshot_train.export import git_commit
from earshot_train.frontend import STUDENT_SPEC, FrontendSpec, logmel, mel_filterbank, n_frames, window
from earshot_train.integrity import write_file_hashes
from earshot_train.models.captioner import Captioner
from earshot_train.models.decoder import CaptionDecoder, DecoderConfig, LastLogits
from earshot_train.models.effb2 import TIME_STRIDE, EfficientNetB2Encoder, memory_len_for_samples
from earshot_train.tokenizer import SPECIALS

ARCHITECTURE = "Effb2TrmCaptioningModel"
ENC_PREFIX = "model.model.encoder."
DEC_PREFIX = "model.model.decoder."
FRONTEND_KEYS = ("melspec_extractor.spectrogram.window", "melspec_extractor.mel_scale.fb")
# Knowledge-distillation heads of the released checkpoint; not used at inference.
KD_KEYS = ("model.logit_scale", "model.stdnt_proj.", "model.tchr_proj.")
OPSET = 17
HF_REPOS = {
    4981: ("wsntxxn/effb2-trm-audiocaps-captioning", "wsntxxn/audiocaps-simple-tokenizer"),
    4368: ("wsntxxn/effb2-trm-clotho-captioning", "wsntxxn/clotho-simple-tokenizer"),
}

# torchaudio MelSpectrogram(16 kHz, n_fft=win=512, hop=160, n_mels=64) + AmplitudeToDB(top_db=120):
# exactly earshot's student front end (the paper's); the checkpoint's stored filterbank and window are
# checked against it on every conversion.
EFFB2_SPEC = STUDENT_SPEC
MIN_SAMPLES = (TIME_STRIDE - 1) * EFFB2_SPEC.hop_length  # memory_len >= 1 from here on


class ConversionError(ValueError):
    """Bad checkpoint, vocabulary or arguments: one clear message."""


# ---------------------------------------------------------------------------------------- checkpoint
def load_checkpoint(ckpt_dir: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], Path]:
    """Read ``config.json`` and the weights (``model.safetensors`` preferred, else ``pytorch_model.bin``)."""
    d = Path(ckpt_dir)
    if not d.is_dir():
        raise ConversionError(f"checkpoint directory not found: {d}")
    cfg_path = d / "config.json"
    if not cfg_path.is_file():
        raise ConversionError(f"{d}: no config.json (expected a Hugging Face checkpoint directory)")
    try:
        config = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise ConversionError(f"{cfg_path}: invalid JSON: {e}") from e
    archs = config.get("architectures") or []
    if ARCHITECTURE not in archs:
        raise ConversionError(f"{cfg_path}: architectures {archs} does not name {ARCHITECTURE}")
    for key in ("vocab_size", "attn_emb_dim", "decoder_emb_dim", "decoder_n_layers"):
        if not isinstance(config.get(key), int) or config[key] < 1:
            raise ConversionError(f"{cfg_path}: {key} missing or not a positive integer")
    st, pt = d / "model.safetensors", d / "pytorch_model.bin"
    try:
        if st.is_file():
            from safetensors.torch import load_file

            weights, state = st, load_file(str(st))
        elif pt.is_file():
            weights, state = pt, torch.load(str(pt), map_location="cpu", weights_only=True)
        else:
            raise ConversionError(f"{d}: neither model.safetensors nor pytorch_model.bin")
    except ConversionError:
        raise
    except Exception as e:  # corrupt/truncated weight files raise many different types
        raise ConversionError(f"{d}: cannot read the weights: {e}") from e
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConversionError(f"{weights}: not a flat state dict of tensors")
    return config, state, weights


def check_frontend_buffers(
    state: dict[str, torch.Tensor], spec: FrontendSpec = EFFB2_SPEC
) -> dict[str, float]:
    """The checkpoint stores its STFT window and mel matrix: they must be this front end's."""
    win = state.get(ENC_PREFIX + FRONTEND_KEYS[0])
    fb = state.get(ENC_PREFIX + FRONTEND_KEYS[1])
    if win is None or fb is None:
        raise ConversionError(f"checkpoint lacks the front-end buffers {ENC_PREFIX}{FRONTEND_KEYS}")
    ours_fb = mel_filterbank(spec)  # [n_mels, bins]
    if tuple(fb.shape) != (ours_fb.shape[1], ours_fb.shape[0]) or tuple(win.shape) != (spec.win_length,):
        raise ConversionError(
            f"front-end buffers have shapes window {tuple(win.shape)}, fb {tuple(fb.shape)}; expected "
            f"({spec.win_length},) and ({ours_fb.shape[1]}, {ours_fb.shape[0]})"
        )
    d_fb = float(np.abs(fb.numpy().astype(np.float64) - ours_fb.T).max())
    d_win = float(np.abs(win.numpy().astype(np.float64) - window(spec)).max())
    if d_fb > 1e-4 or d_win > 1e-6:
        raise ConversionError(
            f"the checkpoint's front end differs from the effb2 spec (mel max|diff| {d_fb:.3g}, window "
            f"{d_win:.3g}): not the released student's front end"
        )
    return {"mel_fb_max_abs_diff": d_fb, "window_max_abs_diff": d_win}


def build_captioner(config: dict[str, Any], state: dict[str, torch.Tensor]) -> Captioner:
    """Our PyTorch modules with the checkpoint's weights loaded by their published names (strict)."""
    enc_sd, dec_sd, unknown = {}, {}, []
    for k, v in state.items():
        if k.startswith(ENC_PREFIX):
            rest = k[len(ENC_PREFIX) :]
            if rest not in FRONTEND_KEYS:
                enc_sd[rest] = v
        elif k.startswith(DEC_PREFIX):
            dec_sd[k[len(DEC_PREFIX) :]] = v
        elif not k.startswith(KD_KEYS):
            unknown.append(k)
    if unknown:
        raise ConversionError(f"unexpected checkpoint keys (not the released layout): {unknown[:5]}")
    encoder = EfficientNetB2Encoder(n_mels=EFFB2_SPEC.n_mels)
    if encoder.out_dim != config["attn_emb_dim"]:
        raise ConversionError(
            f"config attn_emb_dim {config['attn_emb_dim']} != EfficientNet-B2's {encoder.out_dim}"
        )
    pe = dec_sd.get("pos_encoder.pe")
    d_model = int(config["decoder_emb_dim"])
    dcfg = DecoderConfig(
        vocab_size=int(config["vocab_size"]),
        memory_dim=encoder.out_dim,
        d_model=d_model,
        n_heads=max(1, d_model // 64),  # the authors' default: d_model / 64 heads
        n_layers=int(config["decoder_n_layers"]),
        ffn_dim=4 * d_model,
        dropout=float(config.get("decoder_dropout", 0.2)),
        max_positions=int(pe.shape[0]) if pe is not None else 100,
        tie_weights=bool(config.get("decoder_we_tie_weights", True)),
    )
    decoder = CaptionDecoder(dcfg)
    if dcfg.tie_weights and "classifier.weight" in dec_sd and "word_embedding.weight" in dec_sd:
        if not torch.equal(dec_sd["classifier.weight"], dec_sd["word_embedding.weight"]):
            raise ConversionError("config ties the word embedding and classifier, but their weights differ")
    for name, module, sd in (("encoder", encoder, enc_sd), ("decoder", decoder, dec_sd)):
        try:
            module.load_state_dict(sd, strict=True)
        except RuntimeError as e:
            msg = str(e).split("\n\t", 1)[-1][:600]
            raise ConversionError(f"{name} weights do not match the released layout: {msg}") from e
    return Captioner(encoder, decoder).eval()


# ---------------------------------------------------------------------------------------- vocabulary
def load_vocab(
    tokenizer: str | Path | None = None,
    vocab: str | Path | None = None,
    placeholder_size: int | None = None,
) -> tuple[list[str], str]:
    """Word list (index = token id) and a note on where it came from. Ids 0-3 are the special tokens."""
    if sum(x is not None for x in (tokenizer, vocab, placeholder_size)) != 1:
        raise ConversionError("give exactly one of --tokenizer, --vocab, --placeholder-vocab")
    if placeholder_size is not None:
        return SPECIALS + [
            f"w{i}" for i in range(len(SPECIALS), placeholder_size)
        ], "placeholder words w4..wN"
    if tokenizer is not None:
        p = Path(tokenizer)
        try:
            tj = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ConversionError(f"cannot read tokenizer {p}: {e}") from e
        model = tj.get("model") if isinstance(tj, dict) else None
        vmap = model.get("vocab") if isinstance(model, dict) else None
        if not isinstance(vmap, dict) or not vmap:
            raise ConversionError(f"{p}: no model.vocab word->id map (expected a word-level tokenizer.json)")
        if model.get("type") not in (None, "WordLevel"):
            raise ConversionError(f"{p}: tokenizer model type {model.get('type')!r}, expected WordLevel")
        ids = sorted(vmap.values())
        if ids != list(range(len(ids))):
            raise ConversionError(f"{p}: token ids are not contiguous 0..{len(ids) - 1}")
        words = [""] * len(ids)
        for w, i in vmap.items():
            words[i] = w
        src = f"tokenizer.json {p.name}"
    else:
        p = Path(vocab)
        try:
            words = p.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise ConversionError(f"cannot read vocabulary {p}: {e}") from e
        src = f"vocabulary file {p.name}"
    if len(words) < len(SPECIALS):
        raise ConversionError(f"{p}: only {len(words)} words")
    if any(not w or any(c.isspace() for c in w) for w in words):
        raise ConversionError(f"{p}: empty words or words with whitespace cannot go into vocab.txt")
    if len(set(words)) != len(words):
        raise ConversionError(f"{p}: duplicate words")
    if words[: len(SPECIALS)] != SPECIALS:
        # The released model uses <pad>=0 <start>=1 <end>=2 <unk>=3; other spellings are renamed.
        for i, w in enumerate(words[: len(SPECIALS)]):
            if not (w.startswith("<") or w.startswith("[")):
                raise ConversionError(f"{p}: id {i} is {w!r}, expected the special token {SPECIALS[i]}")
        src += f" (specials {words[:4]} renamed to {SPECIALS})"
        words = SPECIALS + words[len(SPECIALS) :]
        if len(set(words)) != len(words):
            raise ConversionError(f"{p}: duplicate words after renaming the special tokens")
    return words, src


# ---------------------------------------------------------------------------------------- ONNX export
class _EncoderGraph(nn.Module):
    def __init__(self, encoder: EfficientNetB2Encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.encoder.features(mel)


def _export(module: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str], dynamic=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            args,
            str(path),
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=dynamic,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


def export_encoder(captioner: Captioner, frames: int, path: Path) -> None:
    _export(
        _EncoderGraph(captioner.encoder),
        (torch.zeros(1, EFFB2_SPEC.n_mels, frames),),
        path,
        ["mel"],
        ["memory"],
    )


def export_decoder(captioner: Captioner, path: Path) -> None:
    dim = captioner.encoder.out_dim
    _export(
        LastLogits(captioner.decoder),
        (torch.tensor([[1, 4, 5]], dtype=torch.long), torch.zeros(1, 7, dim)),
        path,
        ["tokens", "memory"],
        ["logits"],
        dynamic={
            "tokens": {0: "batch", 1: "length"},
            "memory": {0: "batch", 1: "frames"},
            "logits": {0: "batch"},
        },
    )


def ort_session(path: Path, threads: int = 1):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def torch_step(captioner: Captioner) -> search.StepFn:
    def step(tokens: np.ndarray, memory: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return captioner.decoder.last_logits(torch.from_numpy(tokens), torch.from_numpy(memory)).numpy()

    return step


def ort_step(sess) -> search.StepFn:
    def step(tokens: np.ndarray, memory: np.ndarray) -> np.ndarray:
        return sess.run(["logits"], {"tokens": tokens.astype(np.int64), "memory": memory.astype(np.float32)})[
            0
        ]

    return step


# ---------------------------------------------------------------------------------------- PyTorch path
def clip_features(samples: np.ndarray) -> torch.Tensor:
    """log-mel [1, 64, frames] of a whole clip; a clear error if it is too short for the model."""
    n = int(len(samples))
    if memory_len_for_samples(n, EFFB2_SPEC.hop_length) < 1:
        raise ValueError(
            f"clip too short for the effb2 model: {n} samples ({n / EFFB2_SPEC.sample_rate:.3f} s); it needs "
            f"at least {MIN_SAMPLES} samples ({MIN_SAMPLES / EFFB2_SPEC.sample_rate:.2f} s) for one memory "
            "frame"
        )
    return logmel(np.asarray(samples, dtype=np.float32), EFFB2_SPEC)


def encode_clip(captioner: Captioner, samples: np.ndarray) -> dict[str, Any]:
    """PyTorch encoder on a whole clip: log-mel, full memory, memory_len (effb2 rule) and fc_emb."""
    mel = clip_features(samples)
    with torch.no_grad():
        out = captioner.encoder(mel)
    n = memory_len_for_samples(len(samples), EFFB2_SPEC.hop_length)
    assert n == out["memory_len"], (n, out["memory_len"])
    return {
        "mel": mel.numpy(),
        "memory": out["memory"].numpy(),
        "memory_len": n,
        "fc_emb": out["emb"].numpy(),
    }


def caption_ids(step: search.StepFn, memory: np.ndarray, beam: int, max_len: int = 20) -> list[int]:
    if beam <= 1:
        return search.greedy(step, memory, max_len)
    return search.beam_search(step, memory, beam, max_len, 1.0, mode="constant")


# ---------------------------------------------------------------------------------------- reference parity
def _close(a: Any, b: Any, tol: float) -> tuple[bool, float]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return False, math.inf
    d = float(np.abs(a - b).max()) if a.size else 0.0
    return d <= tol, d


def check_reference(
    captioner: Captioner, ref_dir: str | Path, decoder_onnx: Path | None = None
) -> dict[str, Any]:
    """Compare every stage with ``reference_outputs.json`` (PyTorch; onnxruntime too when given the
    bundle's decoder: the encoder is exported once more at the clip's own frame count for this)."""
    ref_dir = Path(ref_dir)
    ref = json.loads((ref_dir / "reference_outputs.json").read_text())
    samples = load_audio(ref_dir / "input_dog_16k.wav", EFFB2_SPEC.sample_rate)
    enc = encode_clip(captioner, samples)
    mel, mem_full, n = enc["mel"], enc["memory"], enc["memory_len"]
    checks: dict[str, tuple[bool, float]] = {
        "logmel_shape": (list(mel.shape) == ref["logmel_db_shape"], 0.0),
        "logmel_mean": _close(mel.mean(), ref["logmel_db_mean"], 1e-3),
        "logmel_max": _close(mel.max(), ref["logmel_db_max"], 1e-3),
        "logmel_min": _close(mel.min(), ref["logmel_db_min"], 1e-3),
        "logmel_frame0_first5": _close(mel[0, :5, 0], ref["logmel_db_frame0_first5"], 1e-3),
        "attn_emb_shape": (list(mem_full.shape) == ref["attn_emb_shape"], 0.0),
        "attn_emb_len": ([n] == ref["attn_emb_len"], 0.0),
        "attn_emb_mean": _close(mem_full.mean(), ref["attn_emb_mean"], 1e-6),
        "attn_emb_std": _close(mem_full.std(), ref["attn_emb_std"], 1e-5),
        "attn_emb_t0_first5": _close(mem_full[0, 0, :5], ref["attn_emb_t0_first5"], 1e-5),
        "fc_emb_first5": _close(enc["fc_emb"][0, :5], ref["fc_emb_first5"], 1e-5),
    }
    memory = np.ascontiguousarray(mem_full[:, :n])
    steps: dict[str, search.StepFn] = {"torch": torch_step(captioner)}
    mems = {"torch": memory}
    if decoder_onnx is not None:
        with tempfile.TemporaryDirectory() as tmp:
            enc_path = Path(tmp) / "encoder_clip.onnx"
            export_encoder(captioner, mel.shape[2], enc_path)
            mem_ort = ort_session(enc_path).run(["memory"], {"mel": mel})[0]
        checks["ort_encoder_vs_torch"] = _close(mem_ort, mem_full, 1e-4)
        checks["ort_attn_emb_t0_first5"] = _close(mem_ort[0, 0, :5], ref["attn_emb_t0_first5"], 1e-4)
        steps["ort"] = ort_step(ort_session(decoder_onnx))
        mems["ort"] = np.ascontiguousarray(mem_ort[:, :n])
    prefix = np.array([ref["decoder_prefix_token_ids"]], dtype=np.int64)
    ids: dict[str, Any] = {}
    for rt, step in steps.items():
        logits = np.stack([step(prefix[:, : i + 1], mems[rt])[0] for i in range(prefix.shape[1])])
        for i, r in enumerate(ref["decoder_prefix_logits_per_position"]):
            top = np.argsort(-logits[i], kind="stable")[:5]
            checks[f"{rt}_prefix{i}_top5_ids"] = (top.tolist() == r["top5_ids"], 0.0)
            checks[f"{rt}_prefix{i}_top5_logits"] = _close(logits[i][top], r["top5_logits"], 1e-4)
            checks[f"{rt}_prefix{i}_logit_mean"] = _close(logits[i].mean(), r["logit_mean"], 1e-5)
        greedy = caption_ids(step, mems[rt], 1)
        beam = caption_ids(step, mems[rt], 3)
        checks[f"{rt}_greedy_ids"] = (greedy == ref["greedy_token_ids"], 0.0)
        checks[f"{rt}_beam3_ids"] = (beam == ref["beam3_token_ids"], 0.0)
        ids[rt] = {"greedy": greedy, "beam3": beam}
    failed = [k for k, (ok, _) in checks.items() if not ok]
    return {
        "reference": str(ref_dir / "reference_outputs.json"),
        "ok": not failed,
        "failed": failed,
        "max_abs_diff": {k: d for k, (_, d) in checks.items() if d},
        "ids": ids,
        "n_checks": len(checks),
    }


# ---------------------------------------------------------------------------------------- bundle
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _model_card(
    name: str, config: dict[str, Any], weights: Path, vocab_src: str, manifest: dict[str, Any]
) -> str:
    repo, tok = HF_REPOS.get(int(config["vocab_size"]), ("unknown", "unknown"))
    n_params = manifest["provenance"]["parameters_inference"]
    return f"""# {name}

Converted by `python -m earshot_train convert` from `{weights.parent.name}/{weights.name}`
(architecture `{ARCHITECTURE}`, vocabulary {config["vocab_size"]} words: {vocab_src}).

- Model: the EfficientNet-B2 + 2-layer Transformer audio-captioning student of Xu et al. (2024),
  published by its authors on Hugging Face (for this vocabulary size: `{repo}`, tokenizer `{tok}`).
  {n_params / 1e6:.2f} M parameters used at inference (the knowledge-distillation heads `stdnt_proj`,
  `tchr_proj`, `logit_scale` are dropped).
- Front end: 16 kHz, power mel (n_fft = win = 512, hop 160, 64 HTK bins 0-8 kHz), 10*log10 with
  top_db 120 over the whole window. Encoder input [1, 64, {manifest["encoder"]["input_shape"][2]}]
  = {manifest["window_seconds"]} s windows; memory_len "effb2" (the decoder attends to
  floor((floor(samples/160)+1)/32) frames, counted from the real, unpadded samples).
- Decoding: beam 3, at most 20 tokens, `beam_mode: "constant"` (the authors' beam search).
- Minimum clip: {MIN_SAMPLES} samples ({MIN_SAMPLES / 16000:.2f} s); shorter clips are rejected.
- Data and licence: trained by the authors on AudioCaps or Clotho (check the source repository's model
  card for the licence and terms of use of the weights; this converter does not change them).
- Known limits: trained on 10 s (AudioCaps) or 15-30 s (Clotho) clips; captions of windows that are
  mostly padding are unreliable. A window of different length than the one trained on changes the
  encoder's squeeze-excitation statistics and the top_db floor.
"""


def convert(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    tokenizer: str | Path | None = None,
    vocab: str | Path | None = None,
    placeholder_vocab: bool = False,
    window_seconds: float = 10.0,
    hop_seconds: float | None = None,
    name: str | None = None,
    reference: str | Path | None = None,
    cached_decoder: bool = False,
    log=print,
) -> dict[str, Any]:
    """Checkpoint directory -> bundle in ``out_dir``. Returns the parity report (also in parity.json)."""
    if not (
        isinstance(window_seconds, (int, float)) and math.isfinite(window_seconds) and window_seconds > 0
    ):
        raise ConversionError(f"--window must be a positive number of seconds, got {window_seconds}")
    n_samples = int(round(window_seconds * EFFB2_SPEC.sample_rate))
    if memory_len_for_samples(n_samples, EFFB2_SPEC.hop_length) < 1:
        raise ConversionError(
            f"--window {window_seconds} s is shorter than the model's minimum {MIN_SAMPLES / 16000:.2f} s"
        )
    hop = window_seconds / 2 if hop_seconds is None else hop_seconds
    if not (math.isfinite(hop) and 0 < hop):
        raise ConversionError(f"--hop must be a positive number of seconds, got {hop}")
    config, state, weights = load_checkpoint(checkpoint)
    fe_diff = check_frontend_buffers(state)
    captioner = build_captioner(config, state)
    words, vocab_src = load_vocab(tokenizer, vocab, int(config["vocab_size"]) if placeholder_vocab else None)
    if len(words) != config["vocab_size"]:
        raise ConversionError(f"vocabulary has {len(words)} words but the model {config['vocab_size']}")
    dataset = {4981: "audiocaps", 4368: "clotho"}.get(len(words), f"v{len(words)}")
    name = name or f"wsntxxn-effb2-trm-{dataset}"

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frames = n_frames(n_samples, EFFB2_SPEC)
    with torch.no_grad():
        t_len = int(captioner.encoder.features(torch.zeros(1, EFFB2_SPEC.n_mels, frames)).shape[1])
    log(f"exporting encoder [1, 64, {frames}] -> [1, {t_len}, {captioner.encoder.out_dim}] ...")
    export_encoder(captioner, frames, out / "encoder.onnx")
    log("exporting decoder ...")
    export_decoder(captioner, out / "decoder.onnx")
    (out / "vocab.txt").write_text("".join(w + "\n" for w in words), encoding="utf-8")
    n_params = sum(p.numel() for p in captioner.parameters())
    manifest = {
        "format": "earshot-bundle",
        "version": 1,
        "name": name,
        "window_seconds": float(window_seconds),
        "hop_seconds": float(hop),
        "frontend": EFFB2_SPEC.to_dict(),
        "encoder": {
            "file": "encoder.onnx",
            "input": "mel",
            "input_shape": [1, EFFB2_SPEC.n_mels, frames],
            "output": "memory",
            "output_shape": [1, t_len, captioner.encoder.out_dim],
            "memory_len": "effb2",
        },
        "decoder": {
            "file": "decoder.onnx",
            "input_tokens": "tokens",
            "input_memory": "memory",
            "output": "logits",
            "vocab_size": len(words),
            "max_len": captioner.decoder.cfg.max_positions - 1,
        },
        "tokens": {"pad": 0, "start": 1, "end": 2, "unk": 3},
        "vocab": "vocab.txt",
        "search": {"beam": 3, "max_len": 20, "length_norm": 1.0, "beam_mode": "constant"},
        "provenance": {
            "source": f"{ARCHITECTURE} checkpoint {weights.name} (sha256 {_sha256(weights)})",
            "source_config": config,
            "hugging_face_repo_for_this_vocab_size": HF_REPOS.get(len(words), ("unknown",))[0],
            "vocabulary": vocab_src,
            "converter": "earshot_train.convert_wsntxxn (own EfficientNet-B2 + Transformer modules)",
            "parameters_inference": n_params,
            "frontend_buffers_vs_spec": fe_diff,
            "exporter": f"torch {torch.__version__} torch.onnx.export(dynamo=False) opset {OPSET}",
            "git_commit": git_commit(),
            "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "licences": [
            "weights: as published by the model's authors (Xu et al.); see the source Hugging Face "
            "repository for the licence and terms of use (AudioCaps/Clotho-trained)",
            "conversion code: earshot (MIT)",
        ],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (out / "MODEL_CARD.md").write_text(_model_card(name, config, weights, vocab_src, manifest))

    # Parity of the exported graphs against PyTorch on one full window (noise + tone, deterministic).
    rng = np.random.default_rng(0)
    t = np.arange(n_samples) / EFFB2_SPEC.sample_rate
    audio = (0.05 * rng.standard_normal(n_samples) + 0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    enc = encode_clip(captioner, audio)
    mem_ort = ort_session(out / "encoder.onnx").run(["memory"], {"mel": enc["mel"]})[0]
    n = enc["memory_len"]
    dec_sess = ort_session(out / "decoder.onnx")
    probe = np.array([[1, 4, 5, 6], [1, 7, 8, 9]], dtype=np.int64) % len(words)
    probe[:, 0] = 1
    mem2 = np.repeat(np.ascontiguousarray(mem_ort[:, :n]), 2, axis=0)
    report: dict[str, Any] = {
        "window": {
            "encoder_max_abs_diff": float(np.abs(mem_ort - enc["memory"]).max()),
            "decoder_max_abs_diff": float(
                np.abs(torch_step(captioner)(probe, mem2) - ort_step(dec_sess)(probe, mem2)).max()
            ),
            "beam3_ids_torch": caption_ids(
                torch_step(captioner), np.ascontiguousarray(enc["memory"][:, :n]), 3
            ),
            "beam3_ids_ort": caption_ids(ort_step(dec_sess), np.ascontiguousarray(mem_ort[:, :n]), 3),
        }
    }
    w = report["window"]
    log(
        f"parity (one {window_seconds} s window): encoder max|diff| {w['encoder_max_abs_diff']:.3g}, "
        f"decoder max|diff| {w['decoder_max_abs_diff']:.3g}, beam ids identical: "
        f"{w['beam3_ids_torch'] == w['beam3_ids_ort']}"
    )
    ok = w["beam3_ids_torch"] == w["beam3_ids_ort"] and w["encoder_max_abs_diff"] < 1e-3
    if reference is not None:
        ref = check_reference(captioner, reference, out / "decoder.onnx")
        report["reference"] = ref
        log(
            f"reference parity ({ref['n_checks']} checks, PyTorch + onnxruntime): "
            + ("all passed" if ref["ok"] else f"FAILED {ref['failed']}")
        )
        ok = ok and ref["ok"]
    if ok and cached_decoder:
        from earshot_train.export_cached import add_to_bundle

        report["decoder_cached"] = add_to_bundle(captioner.decoder, out)
        log(f"key/value-cached decoder added: {report['decoder_cached']}")
    report["ok"] = ok
    (out / "parity.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    if not ok:
        raise RuntimeError(f"parity check failed, see {out / 'parity.json'}")
    write_file_hashes(out)
    log(f"bundle written to {out} ({n_params / 1e6:.2f} M parameters)")
    return report


# ---------------------------------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint", required=True, help="directory with config.json + pytorch_model.bin/model.safetensors"
    )
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--tokenizer", help="Hugging Face tokenizer.json (word-level)")
    g.add_argument("--vocab", help="plain vocabulary file, one word per line (line i = token id i)")
    g.add_argument(
        "--placeholder-vocab",
        action="store_true",
        help="no vocabulary (e.g. the random-init test checkpoint): words <pad> <start> <end> <unk> w4 ...",
    )
    p.add_argument("--out", required=True, help="bundle directory to write")
    p.add_argument(
        "--window", type=float, default=10.0, help="window seconds = fixed encoder input (default 10)"
    )
    p.add_argument("--hop", type=float, default=None, help="hop seconds between windows (default window/2)")
    p.add_argument("--name", default=None, help="bundle name (default wsntxxn-effb2-trm-<dataset>)")
    p.add_argument(
        "--cached-decoder",
        action="store_true",
        help="also write the key/value-cached decoder (decoder_init/decoder_step.onnx, faster beam search)",
    )
    p.add_argument(
        "--reference",
        default=None,
        help="folder with reference_outputs.json + input_dog_16k.wav: also check every stage against it",
    )


def run(args: argparse.Namespace) -> int:
    try:
        convert(
            args.checkpoint,
            args.out,
            tokenizer=args.tokenizer,
            vocab=args.vocab,
            placeholder_vocab=args.placeholder_vocab,
            window_seconds=args.window,
            hop_seconds=args.hop,
            name=args.name,
            reference=args.reference,
            cached_decoder=args.cached_decoder,
        )
    except (ConversionError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m earshot_train.convert_wsntxxn", description=__doc__.split("\n")[0]
    )
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
