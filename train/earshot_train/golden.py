"""Golden files for the Rust runtime: ``python -m earshot_train golden`` (``python -m earshot_train.golden``).

Writes into ``<repo>/tests/golden/`` (or ``--out``):
- ``tiny-bundle/``: a small UNTRAINED student bundle (seeded; weights drawn at a non-trivial scale so that
  greedy and beam search give varied token sequences),
- ``tiny-input.wav``: 3 s of deterministic synthetic audio (16 kHz, 16-bit), shorter than the 10 s window,
- ``tiny-bundle-expect.json``: features, memory and token ids computed with onnxruntime on that audio
  (checked equal to PyTorch),
- ``frontend/<case>.json``: the front-end golden vectors (see ``earshot_train.frontend``),
- ``parity-v2/``: the model-v2 decoding parity golden (:func:`write_parity_v2`, ``--parity-v2``): the tiny
  bundle with a manifest variant that enables ``search.no_repeat_ngram``, ``search.once_words`` and
  ``confidence``; greedy and beam ids, per-token log-probabilities, scores and confidences on
  ``tiny-input.wav`` and on deterministic inputs where the rules change the caption (checked by
  tests/parity_v2.rs).
Everything is deterministic: running it twice gives byte-identical files.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from earshot_train import search
from earshot_train.audio_io import write_wav
from earshot_train.export import export_bundle, parity_check, window_features
from earshot_train.frontend import STUDENT_SPEC, write_frontend_goldens
from earshot_train.models.captioner import build_captioner
from earshot_train.shared import REPO_ROOT
from earshot_train.tokenizer import END, PAD, START, Tokenizer

TEMPLATE_CAPTIONS = [
    "a dog barks while rain falls",
    "a rooster crows and then a baby cries",
    "a woman speaks over music",
    "birds chirp in the distance as wind blows",
    "footsteps on gravel followed by a door closing",
    "a clock ticks and a man coughs",
    "water flows and a cow moos nearby",
    "someone hammers wood while a crowd talks",
    "a helicopter flies over a crackling fire",
    "waves crash on the shore as a dog barks",
]

TINY_MODEL = {
    "encoder": "cnn",
    "cnn": {
        "stem_channels": 8,
        "channels": [8, 16, 16, 24],
        "blocks_per_stage": 1,
        "out_dim": 32,
        "dropout": 0.0,
    },
    "decoder": {
        "d_model": 32,
        "n_heads": 2,
        "n_layers": 2,
        "ffn_dim": 64,
        "dropout": 0.0,
        "max_positions": 24,
        "tie_weights": False,
    },
}
WINDOW_SECONDS = 10.0
HOP_SECONDS = 5.0
MAX_LEN = 12
BEAM = 3
BASE_SEED = 1234


def tiny_input(sample_rate: int = 16000, seconds: float = 3.0) -> np.ndarray:
    """Tones, a chirp and two noise bursts, deterministic (seeded), peak < 0.9."""
    n = int(sample_rate * seconds)
    t = np.arange(n, dtype=np.float64) / sample_rate
    x = 0.2 * np.sin(2 * math.pi * 523.25 * t) * (t < 1.2)
    x += 0.15 * np.sin(2 * math.pi * 1318.5 * t + 0.5) * ((t > 0.8) & (t < 2.4))
    x += 0.1 * np.sin(2 * math.pi * (200.0 * t + 600.0 * t * t))  # chirp 200 Hz -> 3.8 kHz
    rng = np.random.default_rng(7)
    for start, dur, gain in ((0.5, 0.15, 0.3), (1.9, 0.3, 0.2)):
        i0, i1 = int(start * sample_rate), int((start + dur) * sample_rate)
        env = np.hanning(i1 - i0)
        x[i0:i1] += gain * env * rng.standard_normal(i1 - i0)
    x *= np.minimum(1.0, t / 0.01)  # 10 ms fade-in
    return np.clip(x, -0.9, 0.9).astype(np.float32)


def _randomise(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Untrained but non-trivial weights: wide normal weights, random BatchNorm statistics."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif "norm" in name and p.dim() == 1:  # LayerNorm / BatchNorm scale
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif "word_embedding" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            else:
                fan_in = p[0].numel() if p.dim() > 1 else p.numel()
                p.copy_(torch.randn(p.shape, generator=gen) * (1.5 / math.sqrt(fan_in)))
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
        # A random post-norm decoder forgets its input token (each sublayer adds a large token-independent
        # vector before the LayerNorm) and then repeats one word. Small sublayer outputs keep the residual
        # stream close to embedding + position, so with an untied classifier the next token is a varied
        # function of the current token, its position and (more weakly) the memory.
        dec = getattr(model, "decoder", None)
        if dec is not None:
            for layer in dec.model.layers:
                for w in (
                    layer.self_attn.out_proj.weight,
                    layer.multihead_attn.out_proj.weight,
                    layer.linear2.weight,
                ):
                    w.mul_(0.2)
        enc = getattr(model, "encoder", None)
        if enc is not None and hasattr(enc, "input_norm"):  # typical dB statistics of real audio
            enc.input_norm.running_mean.uniform_(-70.0, -30.0, generator=gen)
            enc.input_norm.running_var.uniform_(100.0, 400.0, generator=gen)


def _non_degenerate(greedy: list[int], beam: list[int]) -> bool:
    """Varied ids, both searches stop on <end> before max_len, they disagree, no <pad>/<start> generated."""
    return (
        len(set(greedy)) >= 6
        and len(set(beam)) >= 4
        and greedy[-1] == END
        and beam[-1] == END
        and len(greedy) < MAX_LEN
        and greedy != beam
        and not {PAD, START} & set(greedy + beam)
    )


def build_tiny(tokenizer: Tokenizer, feats: np.ndarray, max_tries: int = 500):
    """First seed from BASE_SEED whose untrained model decodes non-degenerate sequences (PyTorch side)."""
    from earshot_train.export import torch_step

    for seed in range(BASE_SEED, BASE_SEED + max_tries):
        torch.manual_seed(seed)
        model = build_captioner(TINY_MODEL, len(tokenizer), STUDENT_SPEC.n_mels).eval()
        _randomise(model, torch.Generator().manual_seed(seed))
        with torch.no_grad():
            mem = model.encoder(torch.from_numpy(feats))["memory"].numpy()
        g = search.greedy(torch_step(model), mem, MAX_LEN)
        b = search.beam_search(torch_step(model), mem, BEAM, MAX_LEN, 1.0)
        if _non_degenerate(g, b):
            return model, seed
    raise RuntimeError(f"no non-degenerate tiny model in seeds {BASE_SEED}..{BASE_SEED + max_tries - 1}")


def _f32_list(a: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(a, dtype=np.float32).reshape(-1)]


def write_golden(out_dir: str | Path | None = None, frontend: bool = True) -> dict:
    torch.use_deterministic_algorithms(True)
    out = Path(out_dir) if out_dir else REPO_ROOT / "tests" / "golden"
    out.mkdir(parents=True, exist_ok=True)
    spec = STUDENT_SPEC
    wav = out / "tiny-input.wav"
    write_wav(wav, tiny_input(spec.sample_rate), spec.sample_rate)
    samples, sr = sf.read(str(wav), dtype="float32")  # what the runtime will read (16-bit quantised)
    assert sr == spec.sample_rate
    feats = window_features(samples, spec, WINDOW_SECONDS)

    tok = Tokenizer.build(TEMPLATE_CAPTIONS)
    model, seed = build_tiny(tok, feats)
    bundle = out / "tiny-bundle"
    if bundle.exists():
        shutil.rmtree(bundle)
    export_bundle(
        model,
        tok,
        spec,
        bundle,
        name="earshot-tiny-untrained",
        window_seconds=WINDOW_SECONDS,
        hop_seconds=HOP_SECONDS,
        beam=BEAM,
        max_len=MAX_LEN,
        length_norm=1.0,
        provenance={
            "what": "UNTRAINED test bundle for runtime parity tests; captions are meaningless",
            "generator": "python -m earshot_train golden",
            "seed": seed,
            "model": TINY_MODEL,
        },
        licences=["MIT (earshot); random weights, no data"],
        parity_audio=samples,
        stamp=False,
    )
    rep = parity_check(model, bundle, feats, BEAM, MAX_LEN, 1.0)
    mem = rep["memory_ort"]
    expect = {
        "audio": "tiny-input.wav",
        "bundle": "tiny-bundle",
        "window_seconds": WINDOW_SECONDS,
        "note": (
            "features: the zero-padded 10 s window, [1, n_mels, frames], first5 = first 5 values in "
            "row-major order (mel bin 0, frames 0..4); memory_first5 = memory[0, 0, :5] from onnxruntime; "
            "ids exclude <start> and include the final <end> when one was generated"
        ),
        "features_shape": list(feats.shape),
        "features_first5": _f32_list(feats.reshape(-1)[:5]),
        "features_frame0_first5": _f32_list(feats[0, :5, 0]),
        "features_mean": float(feats.astype(np.float64).mean()),
        "features_max": float(feats.max()),
        "memory_shape": list(mem.shape),
        "memory_first5": _f32_list(mem.reshape(-1)[:5]),
        "memory_mean": float(mem.astype(np.float64).mean()),
        "encoder_max_abs_diff_vs_torch": rep["encoder_max_abs_diff"],
        "decoder_max_abs_diff_vs_torch": rep["decoder_max_abs_diff"],
        "greedy_ids": rep["greedy_ids_ort"],
        "beam_ids": rep["beam_ids_ort"],
        "caption_greedy": tok.decode(rep["greedy_ids_ort"]),
        "caption_beam": tok.decode(rep["beam_ids_ort"]),
    }
    if not rep["ids_identical"]:
        raise RuntimeError("PyTorch and onnxruntime disagree on the tiny bundle's token ids")
    (out / "tiny-bundle-expect.json").write_text(json.dumps(expect, indent=1) + "\n")
    if frontend:
        write_frontend_goldens(out / "frontend")
    return expect


# The manifest variants of the parity golden (ids 6, 17 and 24 are words the tiny captions repeat), each
# (no_repeat_ngram, once-word ids, Platt a, b); the tiny untrained decoder barely listens to its input, so
# the rules, not the inputs, are what varies the captions.
PARITY_VARIANTS = (
    (3, (6, 17, 24), 2.5, 4.0),
    (2, (), 3.0, 5.0),
    (2, (6,), 1.0, 0.5),
    (1, (), 0.7, -0.2),
    (0, (17, 24), 4.0, 7.5),
)
PARITY_INPUTS = 2  # generated inputs besides tiny-input.wav


def parity_signal(k: int, sample_rate: int = 16000) -> np.ndarray:
    """Deterministic input ``k``: two tones, a chirp and a noise burst drawn from seed ``k``, 2..4 s."""
    rng = np.random.default_rng(1000 + k)
    n = int(sample_rate * rng.uniform(2.0, 4.0))
    t = np.arange(n, dtype=np.float64) / sample_rate
    f1, f2, c0, c1 = (
        rng.uniform(150, 3000),
        rng.uniform(150, 3000),
        rng.uniform(100, 800),
        rng.uniform(200, 2000),
    )
    x = rng.uniform(0.05, 0.3) * np.sin(2 * math.pi * f1 * t)
    x += rng.uniform(0.05, 0.3) * np.sin(2 * math.pi * f2 * t) * (t > rng.uniform(0, 1))
    x += 0.1 * np.sin(2 * math.pi * (c0 * t + c1 * t * t))
    i0 = int(rng.uniform(0.2, 1.5) * sample_rate)
    i1 = i0 + int(0.3 * sample_rate)
    x[i0:i1] += rng.uniform(0.1, 0.4) * np.hanning(i1 - i0) * rng.standard_normal(i1 - i0)
    x *= np.minimum(1.0, t / 0.01)
    return np.clip(x, -0.9, 0.9).astype(np.float32)


def parity_variant(manifest: dict, vocab: list[str], variant: tuple) -> dict:
    """The ``search`` and ``confidence`` sections of one parity variant (merged into the manifest)."""
    n, once_ids, a, b = variant
    search_ = {**manifest["search"], "no_repeat_ngram": n}
    if once_ids:
        search_["once_words"] = [vocab[i] for i in once_ids] + ["no-such-word"]
    return {"search": search_, "confidence": {"method": "platt", "a": a, "b": b}}


def _decode_record(dec, plain, samples: np.ndarray) -> dict:
    rec = {}
    for name, beam in (("greedy", 1), ("beam", BEAM)):
        d = dec.decode(samples, beam)
        rec[name] = {
            "ids": d.ids,
            "ids_without_rules": plain.decode(samples, beam).ids,
            "logprobs": _f32_list(np.array(d.logprobs)),
            "score": d.score,
            "confidence": d.confidence,
            "caption": d.text,
        }
    return rec


def write_parity_v2(golden_dir: str | Path | None = None, out_dir: str | Path | None = None) -> dict:
    """Writes ``parity-v2/`` (json + input WAVs) for the tiny bundle in ``golden_dir``; deterministic.
    A case is one input under one manifest variant; every case's rules change greedy or beam ids."""
    from earshot_train.bundle_decode import BundleDecoder

    golden_dir = Path(golden_dir) if golden_dir else REPO_ROOT / "tests" / "golden"
    out = Path(out_dir) if out_dir else golden_dir / "parity-v2"
    out.mkdir(parents=True, exist_ok=True)
    bundle = golden_dir / "tiny-bundle"
    plain = BundleDecoder(bundle)
    sr = plain.spec.sample_rate
    inputs = [("../tiny-input.wav", golden_dir / "tiny-input.wav")]
    for k in range(PARITY_INPUTS):
        path = out / f"input-{k}.wav"
        write_wav(path, parity_signal(k, sr), sr)
        inputs.append((path.name, path))
    cases = []
    for variant in PARITY_VARIANTS:
        sections = parity_variant(plain.manifest, plain.vocab, variant)
        dec = BundleDecoder(bundle, {**plain.manifest, **sections})
        for name, path in inputs:
            samples, _ = sf.read(str(path), dtype="float32")
            rec = _decode_record(dec, plain, samples)
            if all(r["ids"] == r["ids_without_rules"] for r in rec.values()):
                raise RuntimeError(f"parity variant {variant} does not change the captions of {name}")
            cases.append({"audio": name, "manifest": sections, **rec})
    doc = {
        "bundle": "../tiny-bundle",
        "note": (
            "per case: the tiny bundle with `manifest` merged into its manifest.json, on `audio`; ids "
            "exclude <start> and include the final <end>; logprobs = unmasked log-softmax of each id "
            "(onnxruntime); score = their mean; confidence = sigmoid(a*score+b); "
            "ids_without_rules = the same search "
            "with the bundle's own manifest"
        ),
        "generator": "python -m earshot_train golden --parity-v2",
        "cases": cases,
    }
    (out / "parity-v2.json").write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="earshot_train golden", description=__doc__)
    ap.add_argument("--out", default=None, help="output folder (default <repo>/tests/golden)")
    ap.add_argument("--no-frontend", action="store_true", help="skip the front-end golden vectors")
    ap.add_argument(
        "--parity-v2", action="store_true", help="write only parity-v2/ for the committed tiny bundle"
    )
    args = ap.parse_args(argv)
    if args.parity_v2:
        doc = write_parity_v2(args.out)
        print(json.dumps([{k: c[k]["ids"] for k in ("greedy", "beam")} for c in doc["cases"]]))
        return 0
    exp = write_golden(args.out, frontend=not args.no_frontend)
    print(json.dumps({k: exp[k] for k in ("greedy_ids", "beam_ids", "caption_greedy", "caption_beam")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
