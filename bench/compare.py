"""Per-window cost of any earshot bundle: tract (``earshot bench``) vs onnxruntime vs PyTorch eager.

Generalises ``bench/compare_effb2.py`` (which stays the entry point for the effb2 conversion) to every
bundle. One run on one machine, same ONNX files, same audio (one WAV written here and handed to
``earshot bench --input``), same search (the manifest's beam, max_len, length_norm, beam_mode):

- tract: ``earshot bench --model BUNDLE --input WAV --json`` (model loaded once, warm-up windows not
  counted, medians over the measured windows; resample/decode time excluded from the compared total);
- onnxruntime with 1 intra-op thread and with all cores: the bundle's ``encoder.onnx`` and
  ``decoder.onnx``, the ``earshot_train.frontend.logmel`` front end and ``earshot_train.search``;
- PyTorch eager (1 thread and all cores), only where ``train/`` can rebuild the module (no ONNX-to-torch
  conversion):  ``--torch tiny`` (the seeded golden bundle, rebuilt from its manifest's provenance),
  ``--torch effb2:CHECKPOINT_DIR`` (the paper's student via ``convert_wsntxxn``),
  ``--torch run:train/runs/EXP/ckpt/best.pt`` (a trained student from its train/ checkpoint), or
  ``--torch module:PKG.MOD:FUNC`` where ``FUNC(bundle_dir) -> (encode, step)`` returns numpy callables
  ``encode(mel [1, n_mels, frames]) -> memory [1, T, D]`` and ``step(tokens, memory) -> logits`` (for the
  trained student / teacher once their checkpoints exist).

The result is a markdown table written into ``docs/performance.md`` between the markers
``<!-- compare:NAME:begin -->`` and ``<!-- compare:NAME:end -->`` (added at the end if missing), with the
exact command. Absolute numbers on a shared machine are noisy: compare ratios within one run.

    python bench/compare.py --bundle tests/golden/tiny-bundle --torch tiny
    python bench/compare.py --bundle target/effb2-bundle \
        --torch effb2:../shared/reference/wsntxxn-effb2-trm/random-init-checkpoint
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "train"))

from earshot_train import search  # noqa: E402
from earshot_train.audio_io import write_wav  # noqa: E402
from earshot_train.frontend import FrontendSpec, logmel  # noqa: E402

Encode = Callable[[np.ndarray], np.ndarray]
Step = Callable[[np.ndarray, np.ndarray], np.ndarray]


def synthetic(sr: int, seconds: float, seed: int = 0) -> np.ndarray:
    """Deterministic test audio: two tones, a chirp and seeded noise, peak < 0.8."""
    n = int(round(seconds * sr))
    t = np.arange(n, dtype=np.float64) / sr
    rng = np.random.default_rng(seed)
    x = 0.25 * np.sin(2 * np.pi * 440.0 * t) + 0.15 * np.sin(2 * np.pi * 1250.0 * t)
    x += 0.2 * np.sin(2 * np.pi * (200.0 + 40.0 * (t % 10.0)) * t)
    x += 0.2 * (rng.random(n) - 0.5)
    return x.astype(np.float32)


def memory_len(manifest: dict, samples: int) -> int | None:
    """Frames the decoder attends to (docs/bundle-format.md); None = all."""
    if manifest["encoder"].get("memory_len", "full") == "effb2":
        return (samples // manifest["frontend"]["hop_length"] + 1) // 32
    return None


# ----------------------------------------------------------------------------------------- engines
def ort_session(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def ort_engine(bundle: Path, manifest: dict, threads: int) -> tuple[Encode, Step]:
    enc = ort_session(bundle / manifest["encoder"]["file"], threads)
    dec = ort_session(bundle / manifest["decoder"]["file"], threads)
    e, d = manifest["encoder"], manifest["decoder"]

    def encode(mel: np.ndarray) -> np.ndarray:
        return enc.run([e["output"]], {e["input"]: mel})[0]

    def step(tokens: np.ndarray, memory: np.ndarray) -> np.ndarray:
        feeds = {
            d["input_tokens"]: tokens.astype(np.int64),
            d["input_memory"]: memory.astype(np.float32),
        }
        return dec.run([d["output"]], feeds)[0]

    return encode, step


def ort_cached_engine(bundle: Path, manifest: dict, threads: int) -> tuple[Encode, Step]:
    """The ``decoder_cached`` graphs behind the full-prefix step interface (states looked up by prefix,
    cross K/V once per memory), as in src/model/cached.rs."""
    spec = manifest["decoder_cached"]
    encode, _ = ort_engine(bundle, manifest, threads)
    init = ort_session(bundle / spec["init_file"], threads)
    stepper = ort_session(bundle / spec["step_file"], threads)
    empty = np.zeros((spec["layers"], 1, spec["heads"], 0, spec["head_dim"]), np.float32)
    st: dict = {"mem": None, "cross": None, "rows": {}}

    def state(prefix: tuple) -> tuple[np.ndarray, np.ndarray]:
        if not prefix:
            return empty, empty
        if prefix not in st["rows"]:
            k, v = state(prefix[:-1])
            _, pk, pv = run(np.array([[prefix[-1]]], np.int64), len(prefix) - 1, k, v)
            st["rows"][prefix] = (pk, pv)
        return st["rows"][prefix]

    def run(token, p, k, v):
        feeds = {
            "token": token,
            "position": np.array([p], np.int64),
            "cross_k": st["cross"][0],
            "cross_v": st["cross"][1],
            "past_k": k,
            "past_v": v,
        }
        return stepper.run(None, feeds)

    def step(tokens: np.ndarray, memory: np.ndarray) -> np.ndarray:
        mem = np.ascontiguousarray(memory[:1], dtype=np.float32)
        if st["mem"] is None or st["mem"].shape != mem.shape or not np.array_equal(st["mem"], mem):
            st["mem"], st["cross"], st["rows"] = mem, init.run(None, {"memory": mem}), {}
        rows = [tuple(int(t) for t in r) for r in tokens]
        pasts = [state(r[:-1]) for r in rows]
        k = np.concatenate([p[0] for p in pasts], axis=1)
        v = np.concatenate([p[1] for p in pasts], axis=1)
        logits, pk, pv = run(np.array([[r[-1]] for r in rows], np.int64), len(rows[0]) - 1, k, v)
        st["rows"] = {r: (pk[:, b : b + 1], pv[:, b : b + 1]) for b, r in enumerate(rows)}
        return logits

    return encode, step


def _torch_fns(captioner, features: Callable | None = None) -> tuple[Encode, Step]:
    import torch

    def encode(mel: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = torch.from_numpy(mel)
            return (features(x) if features else captioner.encoder(x)["memory"]).numpy()

    def step(tokens: np.ndarray, memory: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return captioner.decoder.last_logits(torch.from_numpy(tokens), torch.from_numpy(memory)).numpy()

    return encode, step


def torch_tiny(bundle: Path, manifest: dict) -> tuple[Encode, Step]:
    """The golden tiny bundle's module, rebuilt from the seed and config in its provenance."""
    import torch
    from earshot_train.golden import _randomise
    from earshot_train.models.captioner import build_captioner

    prov = manifest["provenance"]
    seed, cfg = int(prov["seed"]), prov["model"]
    torch.manual_seed(seed)
    model = build_captioner(cfg, manifest["decoder"]["vocab_size"], manifest["frontend"]["n_mels"]).eval()
    _randomise(model, torch.Generator().manual_seed(seed))
    return _torch_fns(model)


def torch_run(ckpt: Path) -> tuple[Encode, Step]:
    """A train/ run checkpoint (``train/runs/EXP/ckpt/best.pt``): the student or teacher module."""
    import torch
    from earshot_train.trainer import build_model

    ck = torch.load(ckpt, map_location="cpu", weights_only=False)
    model = build_model(ck["config"], len(ck["vocab"]))
    model.load_state_dict(ck["model"])
    return _torch_fns(model.eval())


def torch_effb2(ckpt: Path) -> tuple[Encode, Step]:
    from earshot_train import convert_wsntxxn as cw

    config, state, _ = cw.load_checkpoint(ckpt)
    cap = cw.build_captioner(config, state).eval()
    return _torch_fns(cap, features=cap.encoder.features)


def torch_engine(spec: str, bundle: Path, manifest: dict) -> tuple[Encode, Step] | None:
    if spec == "none":
        return None
    if spec == "tiny":
        return torch_tiny(bundle, manifest)
    if spec.startswith("run:"):
        return torch_run(Path(spec.split(":", 1)[1]))
    if spec.startswith("effb2:"):
        return torch_effb2(Path(spec.split(":", 1)[1]))
    if spec.startswith("module:"):
        mod, func = spec.split(":", 1)[1].rsplit(":", 1)
        return getattr(importlib.import_module(mod), func)(bundle)
    raise SystemExit(f"--torch: unknown {spec!r} (none, tiny, effb2:DIR, module:PKG.MOD:FUNC)")


# ----------------------------------------------------------------------------------------- timing
def time_python(
    engine: str,
    threads: int,
    fns: tuple[Encode, Step],
    wins,
    spec,
    manifest,
    mem_len,
    warmup,
) -> dict:
    encode, step = fns
    s = manifest["search"]
    beam, max_len = int(s["beam"]), int(s["max_len"])
    mode = s.get("beam_mode", "shrinking")
    rows = []
    for w in wins:
        t0 = time.perf_counter()
        mel = np.ascontiguousarray(logmel(w, spec).numpy(), dtype=np.float32)
        t1 = time.perf_counter()
        mem = encode(mel)
        t2 = time.perf_counter()
        if mem_len is not None:
            mem = np.ascontiguousarray(mem[:, :mem_len])
        if beam <= 1:
            ids = search.greedy(step, mem, max_len)
        else:
            ids = search.beam_search(step, mem, beam, max_len, float(s.get("length_norm", 1.0)), mode=mode)
        t3 = time.perf_counter()
        rows.append(((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3, len(ids)))
    rows = rows[warmup:]
    fe, enc, dec, tok = (statistics.median(r[i] for r in rows) for i in range(4))
    return {
        "engine": engine,
        "threads": str(threads),
        "frontend_ms": fe,
        "encoder_ms": enc,
        "decoder_ms": dec,
        "tokens": tok,
        "total_ms": fe + enc + dec,
        "n": len(rows),
    }


def time_earshot(
    earshot: Path, bundle: Path, wav: Path, n: int, warmup: int, threads: int, cache: bool = True
) -> dict:
    cmd = [str(earshot), "bench", "--model", str(bundle), "--input", str(wav), "--json"]
    cmd += ["--windows", str(n), "--warmup", str(warmup), "--threads", str(threads)]
    env = dict(os.environ)
    env.pop("EARSHOT_MODEL", None)
    env["EARSHOT_DECODER_CACHE"] = "on" if cache else "off"
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {out.stderr[-2000:]}")
    r = json.loads(out.stdout)
    st = r["stages_ms"]
    fe, enc, dec = (
        st["frontend"]["median"],
        st["encoder"]["median"],
        st["decoder"]["median"],
    )
    return {
        "engine": "tract (earshot bench)" + (" KV cache" if cache else ""),
        "threads": str(r["threads"]),
        "frontend_ms": fe,
        "encoder_ms": enc,
        "decoder_ms": dec,
        "tokens": st["decoder_steps"]["median"],
        # per-stage medians summed, like the Python rows (decode/resample excluded)
        "total_ms": fe + enc + dec,
        "n": r["windows"],
        "load_ms": r["load_ms"],
        "peak_rss_mb": r["peak_rss_mb"],
        "raw": r,
    }


# ----------------------------------------------------------------------------------------- report
def model_ms(r: dict) -> float:
    """Encoder + decoder: the work all engines share (the Python front end is not the comparison)."""
    return r["encoder_ms"] + r["decoder_ms"]


def table(results: list[dict], window_s: float) -> list[str]:
    ort1 = next(
        (r for r in results if r["engine"] == "onnxruntime" and r["threads"] == "1"),
        None,
    )
    lines = [
        "| engine | threads | log-mel ms | encoder ms | decoder ms (per caption) | steps | total ms "
        "| RTF | enc+dec vs ort-1 | encoder vs ort-1 | decoder vs ort-1 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        rel = f"{model_ms(r) / model_ms(ort1):.2f}×" if ort1 else "–"
        rel_enc = f"{r['encoder_ms'] / ort1['encoder_ms']:.2f}×" if ort1 else "–"
        rel_dec = f"{r['decoder_ms'] / ort1['decoder_ms']:.2f}×" if ort1 else "–"
        lines.append(
            f"| {r['engine']} | {r['threads']} | {r['frontend_ms']:.2f} | {r['encoder_ms']:.2f} | "
            f"{r['decoder_ms']:.2f} | {r['tokens']:.0f} | {r['total_ms']:.2f} | "
            f"{r['total_ms'] / (window_s * 1e3):.4f} "
            f"| {rel} | {rel_enc} | {rel_dec} |"
        )
    return lines


def write_section(doc: Path, name: str, body: list[str]) -> None:
    begin, end = f"<!-- compare:{name}:begin -->", f"<!-- compare:{name}:end -->"
    block = "\n".join([begin, *body, end])
    text = doc.read_text() if doc.is_file() else "# Performance\n"
    pat = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = pat.sub(lambda _m: block, text) if pat.search(text) else text.rstrip("\n") + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", required=True, type=Path)
    ap.add_argument(
        "--name",
        help="section name in the document [default: the bundle's manifest name]",
    )
    ap.add_argument(
        "--torch",
        default="none",
        help="none | tiny | effb2:CKPT_DIR | run:CKPT.pt | module:PKG.MOD:FUNC",
    )
    ap.add_argument("--earshot", type=Path, default=REPO / "target/release/earshot")
    ap.add_argument("--windows", type=int, default=8, help="measured windows per engine")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--input", type=Path, help="audio file [default: deterministic synthetic audio]")
    ap.add_argument("--skip-all-threads", action="store_true", help="only the 1-thread rows")
    ap.add_argument("--out", type=Path, default=REPO / "docs/performance.md")
    args = ap.parse_args(argv)

    manifest = json.loads((args.bundle / "manifest.json").read_text())
    spec = FrontendSpec.from_dict(manifest["frontend"])
    sr, window_s = spec.sample_rate, float(manifest["window_seconds"])
    n_win = args.warmup + args.windows
    if args.input:
        from earshot_train.audio_io import load_audio

        audio = load_audio(args.input, sr)
        audio = np.tile(audio, int(n_win * window_s * sr) // len(audio) + 1)
    else:
        audio = synthetic(sr, n_win * window_s)
    n = int(round(window_s * sr))
    wins = [audio[i * n : (i + 1) * n] for i in range(n_win)]
    mem_len = memory_len(manifest, n)
    all_threads = os.cpu_count() or 1
    cached = "decoder_cached" in manifest
    thread_counts = [1] if args.skip_all_threads or all_threads == 1 else [1, all_threads]
    results = []

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "bench.wav"
        write_wav(wav, np.concatenate(wins), sr)
        if args.earshot.is_file():
            results.append(
                time_earshot(args.earshot, args.bundle, wav, args.windows, args.warmup, 1, cache=False)
            )
            print(results[-1] | {"raw": "..."}, flush=True)
            if cached:
                results.append(time_earshot(args.earshot, args.bundle, wav, args.windows, args.warmup, 1))
                print(results[-1] | {"raw": "..."}, flush=True)
        else:
            print(f"warning: {args.earshot} not found, tract row skipped", file=sys.stderr)

    import torch  # the Python front end (earshot_train.frontend) runs on torch

    for threads in thread_counts:
        torch.set_num_threads(threads)  # no oversubscription of the front end in the ort rows
        fns = ort_engine(args.bundle, manifest, threads)
        results.append(time_python("onnxruntime", threads, fns, wins, spec, manifest, mem_len, args.warmup))
        print(results[-1], flush=True)
        if cached:
            fns = ort_cached_engine(args.bundle, manifest, threads)
            r = time_python("onnxruntime KV cache", threads, fns, wins, spec, manifest, mem_len, args.warmup)
            results.append(r)
            print(results[-1], flush=True)

    torch_fns = torch_engine(args.torch, args.bundle, manifest)
    if torch_fns is not None:
        for threads in thread_counts:
            torch.set_num_threads(threads)
            results.append(
                time_python(
                    "PyTorch eager",
                    threads,
                    torch_fns,
                    wins,
                    spec,
                    manifest,
                    mem_len,
                    args.warmup,
                )
            )
            print(results[-1], flush=True)

    import onnxruntime

    tract = next((r for r in results if r["engine"] == "tract (earshot bench)"), None)
    tract_kv = next((r for r in results if r["engine"].endswith("KV cache") and "tract" in r["engine"]), None)
    ort1_kv = next(
        (r for r in results if r["engine"] == "onnxruntime KV cache" and r["threads"] == "1"), None
    )
    ort1 = next(
        (r for r in results if r["engine"] == "onnxruntime" and r["threads"] == "1"),
        None,
    )
    pt1 = next(
        (r for r in results if r["engine"] == "PyTorch eager" and r["threads"] == "1"),
        None,
    )
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in ln
        ),
        platform.processor(),
    )
    name = args.name or manifest.get("name", args.bundle.name)
    s = manifest["search"]
    cmd = " ".join(["python", "bench/compare.py", *(argv if argv is not None else sys.argv[1:])])
    body = [
        f"### {name}",
        "",
        f"`bench/compare.py`, {_dt.datetime.now(_dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}; "
        f"bundle `{args.bundle}`; "
        f"{args.windows} measured {window_s:g} s windows after {args.warmup} warm-up, medians; "
        f"{'audio ' + str(args.input) if args.input else 'synthetic audio'}; search beam {s['beam']} "
        f"({s.get('beam_mode', 'shrinking')}), max_len {s['max_len']}; "
        'rows without "KV cache" re-run the whole prefix per step.',
        f"{cpu}, {all_threads} cores shared with other jobs (absolute numbers are noisy; read the ratios); "
        f"onnxruntime {onnxruntime.__version__}, tract 0.23.9 (earshot release build).",
        "",
        *table(results, window_s),
        "",
    ]
    if tract:
        body.append(
            f"earshot: model load {tract['load_ms']:.0f} ms, peak RSS {tract['peak_rss_mb']:.1f} MiB."
        )
        if ort1:
            body.append(
                f"tract / onnxruntime-1: encoder+decoder {model_ms(tract) / model_ms(ort1):.2f}×, encoder "
                f"{tract['encoder_ms'] / ort1['encoder_ms']:.2f}×, "
                f"decoder {tract['decoder_ms'] / ort1['decoder_ms']:.2f}×."
            )
        if tract_kv and ort1_kv:
            body.append(
                f"KV-cached graphs, tract / onnxruntime-1: encoder+decoder "
                f"{model_ms(tract_kv) / model_ms(ort1_kv):.2f}×, decoder "
                f"{tract_kv['decoder_ms'] / ort1_kv['decoder_ms']:.2f}×; tract KV cache vs full prefix: "
                f"decoder {tract['decoder_ms'] / tract_kv['decoder_ms']:.1f}× faster."
            )
        if pt1:
            best = tract_kv or tract
            body.append(
                f"PyTorch-eager-1 / tract{' KV cache' if tract_kv else ''}: encoder+decoder "
                f"{model_ms(pt1) / model_ms(best):.1f}×, whole window incl. log-mel "
                f"{pt1['total_ms'] / best['total_ms']:.1f}×."
            )
    body += ["", "```", cmd, "```"]
    write_section(args.out, name, body)
    print(f"wrote section {name!r} of {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
