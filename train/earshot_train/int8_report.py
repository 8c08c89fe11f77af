"""f32 vs int8 for one bundle, by the numbers: quality, tract speed, size, and the issue-5 decision.

    python -m earshot_train.int8_report --bundle models/default [--out-json docs/int8.json]
        [--out-md docs/int8.md] [--work DIR] [--variants dynamic-u8u8,static-u8u8,...]

1. Quantizes the bundle into every variant of ``--variants`` (``earshot_train.quantize``; the static ones
   share one calibration pass on ``--calib-clips`` train clips). A variant is ``<mode>-<act><weight>``
   (every graph int8) or ``<mode>-<act><weight>-<graphs>`` with ``graphs`` = ``encoder`` (int8 encoder,
   float32 decoders) or ``decoders`` (the reverse): ``quantize --graphs``. The default list has every
   all-graphs variant and the static encoder-only ones (the static int8 encoder was the one graph that
   ran faster than f32 in tract); every variant goes through the same steps 2-6 and the same rule.
2. Loads each one in the Rust runtime (``earshot caption --model V samples/woman-speaks.wav``); a variant
   tract rejects is recorded with the exact error and left out of the rest.
3. Quality: decodes ``test_single`` and ``test_mix`` with onnxruntime on the bundle's own ONNX graphs
   (single-threaded, ``export.ort_session``), beam search from ``earshot_train.search`` with the manifest's
   beam / max_len / length_norm / beam_mode, front end = the manifest's (``export.window_features`` on the
   corpus audio). Two decoding paths: ``full`` = ``decoder.onnx`` over the whole prefix (``export.ort_step``
   + ``search.beam_search_many``), and, when the bundle has ``decoder_cached``, ``cached`` = the KV-cached
   graphs the runtime uses by default (``bench/compare.py``'s ``ort_cached_engine``, the Python copy of
   ``src/model/cached.rs``, + ``search.beam_search``). Scores with ``earshot_train.evaluate``
   (BLEU-1..4, METEOR, ROUGE-L, CIDEr-D, source accuracy) — identical code for f32 and int8.
4. Cross-check: ``earshot caption --print-ids`` on a few test clips (written as 16-bit WAV at the model's
   rate so that tract and Python read the same samples) against the onnxruntime ids of the same path.
5. Speed: ``earshot bench --threads 1 --json --input <test clip>`` for f32 and each variant, alternating
   in one run (order reversed every other pass), medians per pass, int8/f32 ratios per pass.
6. Writes ``--out-json`` (every number, the commands) and ``--out-md`` (generated) with the decision.

Decision rule (issue 5): ship int8 only if tract runs it faster and it loses no more than 1 CIDEr-D point.
CIDEr-D is reported on pycocoevalcap's 0-10 scale (e.g. 1.505), so "1 point" = 0.01 on that scale (one
hundredth of CIDEr-D, i.e. 1 point on the x100 scale papers use). Made concrete here:

- faster: the int8/f32 ratio of tract's encoder + decoder time is below 1 in **every** alternating pass
  (the machine is shared and noisy; one median ratio below 1 is not enough evidence);
- quality: CIDEr-D(f32) - CIDEr-D(int8) <= 0.01 on **each** of test_single and test_mix, on the decoding
  path the runtime uses (``cached`` when the bundle has it, else ``full``);
- and tract loads and runs every graph of it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from earshot_train import quantize as Q

REPO = Path(__file__).resolve().parents[2]
SPLITS = ("test_single", "test_mix")
VARIANTS = (
    "dynamic-u8u8",
    "dynamic-u8s8",
    "static-u8u8",
    "static-s8s8",
    "static-u8s8",
    "static-u8u8-encoder",
    "static-s8s8-encoder",
    "static-u8s8-encoder",
)
CIDER_TOL = 0.01
PARTIAL = tuple(g for g in Q.GRAPH_SETS if g != "all")  # variant-name suffixes


def variant_parts(name: str) -> tuple[str, str, str, str]:
    """``static-u8s8-encoder`` -> (mode, activation type, weight type, graphs); no suffix = ``all``."""
    parts = name.split("-")
    if len(parts) not in (2, 3) or len(parts[1]) != 4:
        raise ValueError(f"bad variant {name!r} (e.g. dynamic-u8u8, static-s8s8, static-u8u8-encoder)")
    mode, act, wt = parts[0], parts[1][:2], parts[1][2:]
    graphs = parts[2] if len(parts) == 3 else "all"
    if (
        mode not in Q.MODES
        or act not in Q.TYPES
        or wt not in Q.TYPES
        or (mode == "dynamic" and act != "u8")
        or (len(parts) == 3 and graphs not in PARTIAL)
    ):
        raise ValueError(
            f"bad variant {name!r}: <dynamic-u8|static-u8|static-s8><u8|s8>[-{'|-'.join(PARTIAL)}], "
            f"e.g. {', '.join(VARIANTS)}"
        )
    return mode, act, wt, graphs


def parse_variant(name: str) -> tuple[str, str, str]:
    """``dynamic-u8s8`` -> (mode, activation type, weight type); see :func:`variant_parts` for the graphs."""
    return variant_parts(name)[:3]


def _cmd(args: list[str | Path]) -> str:
    return shlex.join(str(a) for a in args)


def _run(args: list[str | Path], env: dict[str, str] | None = None, timeout: int = 900):
    e = dict(os.environ)
    e.pop("EARSHOT_MODEL", None)
    e.update(env or {})
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, env=e, timeout=timeout)


def bundle_bytes(b: Path) -> dict[str, int]:
    m = Q.read_manifest(b)
    files = {f: (b / f).stat().st_size for f in Q.graph_files(m).values()}
    files["total (graphs)"] = sum(files.values())
    return files


# ------------------------------------------------------------------------------------------- tract
def tract_load(earshot: Path, bundle: Path, wav: Path) -> dict[str, Any]:
    """Does the runtime load and run the bundle? Both decoder paths (KV cache on / off)."""
    out: dict[str, Any] = {"ok": True}
    for cache in ("on", "off"):
        args = [earshot, "caption", "--model", bundle, wav, "--print-ids"]
        r = _run(args, {"EARSHOT_DECODER_CACHE": cache}, timeout=600)
        out[f"cache_{cache}"] = {
            "command": f"EARSHOT_DECODER_CACHE={cache} " + _cmd(args),
            "rc": r.returncode,
            "stdout": r.stdout.strip(),
            "stderr": r.stderr.strip()[-2000:],
        }
        out["ok"] = out["ok"] and r.returncode == 0
    return out


def tract_ids(earshot: Path, bundle: Path, wavs: list[Path], window: float, cache: str) -> dict[str, Any]:
    """First window of each file: ``earshot caption --format jsonl --print-ids`` (hop = window)."""
    args = [earshot, "caption", "--model", bundle, *wavs, "--hop", str(window), "--format", "jsonl"]
    args.append("--print-ids")
    r = _run(args, {"EARSHOT_DECODER_CACHE": cache})
    if r.returncode != 0:
        raise RuntimeError(f"{_cmd(args)} failed ({r.returncode}): {r.stderr[-1000:]}")
    ids: dict[str, Any] = {}
    for line in r.stdout.splitlines():
        d = json.loads(line)
        key = Path(d["file"]).stem
        if key not in ids:
            ids[key] = {"caption": d["caption"], "ids": d.get("token_ids", [])}
    return {"command": f"EARSHOT_DECODER_CACHE={cache} " + _cmd(args), "clips": ids}


def tract_bench(earshot: Path, bundle: Path, wav: Path, windows: int, warmup: int) -> dict[str, Any]:
    args = [earshot, "bench", "--model", bundle, "--windows", str(windows), "--warmup", str(warmup)]
    args += ["--threads", "1", "--json", "--input", wav]
    r = _run(args)
    if r.returncode != 0:
        raise RuntimeError(f"{_cmd(args)} failed ({r.returncode}): {r.stderr[-1000:]}")
    d = json.loads(r.stdout)
    st = d["stages_ms"]
    enc, dec = st["encoder"]["median"], st["decoder"]["median"]
    return {
        "encoder_ms": enc,
        "decoder_ms": dec,
        "model_ms": enc + dec,
        "total_ms": st["total"]["median"],
        "decoder_steps": st["decoder_steps"]["median"],
        "load_ms": d["load_ms"],
        "peak_rss_mb": d["peak_rss_mb"],
        "caption": d.get("last_caption"),
    }


def speed(
    earshot: Path, bundles: dict[str, Path], wav: Path, passes: int, windows: int, warmup: int, log
) -> dict[str, Any]:
    """Alternating ``earshot bench`` runs: pass k runs every bundle once (order reversed on odd k)."""
    names = list(bundles)
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for k in range(passes):
        for n in names if k % 2 == 0 else names[::-1]:
            runs[n].append(tract_bench(earshot, bundles[n], wav, windows, warmup))
        log(
            f"speed pass {k + 1}/{passes}: "
            + ", ".join(f"{n} {runs[n][-1]['model_ms']:.2f} ms" for n in names)
        )
    keys = ("encoder_ms", "decoder_ms", "model_ms", "total_ms", "load_ms", "peak_rss_mb")
    out: dict[str, Any] = {
        "command": _cmd(
            [earshot, "bench", "--model", "BUNDLE", "--windows", windows, "--warmup", warmup]
            + ["--threads", "1", "--json", "--input", wav]
        ),
        "passes": passes,
        "order": "f32 first on even passes, reversed on odd passes",
        "per_bundle": {},
    }
    f32 = runs["f32"]
    for n in names:
        rec: dict[str, Any] = {"runs": runs[n]}
        rec["median"] = {k: statistics.median(r[k] for r in runs[n]) for k in keys}
        if n != "f32":
            for k in ("encoder_ms", "decoder_ms", "model_ms", "total_ms"):
                ratios = [a[k] / b[k] for a, b in zip(runs[n], f32, strict=True)]
                rec[f"ratio_{k}"] = {
                    "per_pass": ratios,
                    "median": statistics.median(ratios),
                    "min": min(ratios),
                    "max": max(ratios),
                }
            rec["faster"] = all(r < 1.0 for r in rec["ratio_model_ms"]["per_pass"])
        out["per_bundle"][n] = rec
    return out


# ----------------------------------------------------------------------------------------- quality
def _compare_module():
    path = REPO / "bench" / "compare.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("earshot_bench_compare", path)
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


class Decoder:
    """One bundle decoded in onnxruntime along one path (``full`` or ``cached``)."""

    def __init__(self, bundle: Path, path: str):
        from earshot_train.export import ort_session, ort_step

        self.bundle, self.path = bundle, path
        self.m = Q.read_manifest(bundle)
        s = self.m.get("search", {})
        self.beam, self.max_len = int(s.get("beam", 1)), int(s.get("max_len", self.m["decoder"]["max_len"]))
        self.length_norm, self.mode = float(s.get("length_norm", 1.0)), s.get("beam_mode", "shrinking")
        e = self.m["encoder"]
        enc = ort_session(bundle / e["file"])
        self.encode = lambda mel: enc.run([e["output"]], {e["input"]: mel})[0]
        if path == "full":
            self.step = ort_step(ort_session(bundle / self.m["decoder"]["file"]))
        else:
            cmp = _compare_module()
            if cmp is None:
                raise RuntimeError("bench/compare.py (ort_cached_engine) not found")
            _, self.step = cmp.ort_cached_engine(bundle, self.m, 1)
        samples = int(round(float(self.m["window_seconds"]) * int(self.m["frontend"]["sample_rate"])))
        self.n_mem = Q.memory_len(self.m, samples)

    def memory(self, mel: np.ndarray) -> np.ndarray:
        mem = self.encode(mel)
        return np.ascontiguousarray(mem[:, : self.n_mem]) if self.n_mem is not None else mem

    def decode(self, feats: dict[str, np.ndarray]) -> dict[str, list[int]]:
        from earshot_train import search

        ids = list(feats)
        out: dict[str, list[int]] = {}
        if self.beam <= 1:
            return {i: search.greedy(self.step, self.memory(feats[i]), self.max_len) for i in ids}
        if self.path == "cached":  # the cached step keeps the state of one clip at a time
            for i in ids:
                out[i] = search.beam_search(
                    self.step, self.memory(feats[i]), self.beam, self.max_len, self.length_norm, self.mode
                )
            return out
        for k in range(0, len(ids), 16):  # as trainer.decode_clips: one decoder call per step for 16 clips
            part = ids[k : k + 16]
            mems = [self.memory(feats[i]) for i in part]
            seqs = search.beam_search_many(
                self.step, mems, self.beam, self.max_len, self.length_norm, self.mode
            )
            out.update(zip(part, seqs, strict=True))
        return out


def features(manifest: dict[str, Any], files: dict[str, Path]) -> dict[str, np.ndarray]:
    """The manifest's front end on each file (first window, zero-padded): [1, n_mels, frames] f32."""
    from earshot_train.audio_io import load_audio
    from earshot_train.export import window_features
    from earshot_train.frontend import FrontendSpec

    spec = FrontendSpec.from_dict(manifest["frontend"])
    w = float(manifest["window_seconds"])
    return {k: window_features(load_audio(p, spec.sample_rate), spec, w) for k, p in files.items()}


def vocab_words(bundle: Path, manifest: dict[str, Any]) -> list[str]:
    return (bundle / manifest.get("vocab", "vocab.txt")).read_text().split("\n")


def caption_of(ids: list[int], words: list[str], manifest: dict[str, Any]) -> str:
    t = manifest["tokens"]
    skip = {int(t["pad"]), int(t["start"]), int(t["end"])}
    return " ".join(words[i] for i in ids if i not in skip)


# -------------------------------------------------------------------------------------------- main
def report(args: argparse.Namespace, log=print) -> dict[str, Any]:
    import onnxruntime
    import torch

    from earshot_train.audio_io import load_audio, write_wav
    from earshot_train.corpus import read_manifest as read_corpus
    from earshot_train.evaluate import evaluate_predictions

    torch.set_num_threads(1)
    t_start = time.time()
    bundle = Path(args.bundle)
    manifest = Q.read_manifest(bundle)
    earshot = Path(args.earshot)
    if not earshot.is_file():
        raise FileNotFoundError(f"no earshot binary at {earshot}: run `cargo build --release` first")
    corpus = Path(args.corpus) if args.corpus else Q.default_corpus(manifest)
    work = Path(args.work) if args.work else Path("/tmp/earshot-int8") / (manifest.get("name") or bundle.name)
    work.mkdir(parents=True, exist_ok=True)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in variants:
        variant_parts(v)
    runtime_path = "cached" if manifest.get("decoder_cached") else "full"
    paths = ["full", "cached"] if runtime_path == "cached" else ["full"]
    res: dict[str, Any] = {
        "bundle": str(bundle),
        "bundle_name": manifest.get("name"),
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "python -m earshot_train.int8_report "
        + shlex.join(sys.argv[1:] if args.argv is None else args.argv),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load average "
        + " ".join(f"{x:.1f}" for x in os.getloadavg())
        + " at the start",
        "onnxruntime": onnxruntime.__version__,
        "earshot": str(earshot),
        "corpus": str(corpus),
        "work_dir": str(work),
        "cider_scale": "pycocoevalcap CIDEr-D, 0-10 scale; 1 CIDEr-D point = 0.01",
        "runtime_decoding_path": runtime_path,
        "variants": {},
    }

    # 1. quantize
    bundles: dict[str, Path] = {"f32": bundle}
    feeds = None
    for v in variants:
        mode, act, wt, graphs = variant_parts(v)
        out = work / v
        if mode == "static" and feeds is None:
            feats, ids = Q.calibration_features(manifest, corpus, args.calib_clips)
            log(f"calibration: {len(ids)} train clips")
            feeds = Q.collect_feeds(bundle, manifest, feats)
            res["calibration"] = {"split": "train", "clips": ids}
        t0 = time.time()
        prec = Q.quantize_bundle(
            bundle, out, mode, wt, act, feeds=feeds if mode == "static" else None, log=log, graphs=graphs
        )
        cmd = ["python", "-m", "earshot_train", "quantize", "--bundle", bundle, "--out", out, "--mode", mode]
        cmd += ["--weight-type", wt] + (
            ["--activation-type", act, "--calib-clips", args.calib_clips] if mode == "static" else []
        )
        cmd += ["--graphs", graphs] if graphs != "all" else []
        keys = ("weights", "activations", "mode", "tool", "graphs", "quantized_graphs", "float32_graphs")
        res["variants"][v] = {
            "dir": str(out),
            "quantize_command": _cmd(cmd),
            "quantize_s": round(time.time() - t0, 1),
            "precision": {k: prec[k] for k in keys} | {"per_graph": prec["per_graph"]},
            "ops": {f: Q.op_counts(out / f) for f in Q.graph_files(manifest).values()},
        }
        bundles[v] = out

    # 2. does tract load it?
    sample = REPO / "samples" / "woman-speaks.wav"
    res["tract_load"] = {}
    for name, b in bundles.items():
        r = tract_load(earshot, b, sample)
        res["tract_load"][name] = r
        log(f"tract {name}: {'loads' if r['ok'] else 'REJECTED: ' + r['cache_on']['stderr'][-300:]}")
    loaded = {n: b for n, b in bundles.items() if res["tract_load"][n]["ok"]}
    if "f32" not in loaded:
        raise RuntimeError(f"tract cannot run the f32 bundle itself: {res['tract_load']['f32']}")

    # 3. quality
    rows = read_corpus(corpus, list(args.splits))
    rows = [r for r in rows if r["captions"]]
    rows = [r for s in args.splits for r in [x for x in rows if x["split"] == s][: args.limit or None]]
    log(f"features of {len(rows)} test clips")
    feats = features(manifest, {r["id"]: corpus / r["audio"] for r in rows})
    res["quality"] = {
        "splits": {s: sum(r["split"] == s for r in rows) for s in args.splits},
        "per_bundle": {},
    }
    ids_of: dict[tuple[str, str], dict[str, list[int]]] = {}
    predictions: dict[str, dict[str, str]] = {}
    for name, b in loaded.items():
        words, qrec = vocab_words(b, manifest), {}
        for path in paths:
            t0 = time.time()
            ids = Decoder(b, path).decode(feats)
            dt = time.time() - t0
            ids_of[(name, path)] = ids
            preds = {i: caption_of(s, words, manifest) for i, s in ids.items()}
            scores = evaluate_predictions(preds, corpus, list(args.splits))
            qrec[path] = {"decode_s": round(dt, 1), "scores": scores}
            predictions[f"{name}/{path}"] = preds
            log(
                f"{name} [{path}] "
                + ", ".join(f"{s} CIDEr-D {scores[s]['CIDEr-D']:.4f}" for s in args.splits)
                + f" ({dt:.0f} s)"
            )
        res["quality"]["per_bundle"][name] = qrec
    for name in loaded:
        if name == "f32":
            continue
        for path in paths:
            q, f = res["quality"]["per_bundle"][name][path], res["quality"]["per_bundle"]["f32"][path]
            q["delta_vs_f32"] = {
                s: {
                    k: q["scores"][s][k] - f["scores"][s][k]
                    for k in ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D", "source_accuracy")
                    if isinstance(q["scores"][s].get(k), float) and isinstance(f["scores"][s].get(k), float)
                }
                for s in [*args.splits, "all"]
            }
            split_of = {r["id"]: r["split"] for r in rows}
            q["captions_identical_to_f32"] = {
                s: {
                    "n": sum(
                        ids_of[(name, path)][i] == ids_of[("f32", path)][i] for i in feats if split_of[i] == s
                    ),
                    "of": sum(split_of[i] == s for i in feats),
                }
                for s in args.splits
            }
            a, b = predictions[f"{name}/{path}"], predictions[f"f32/{path}"]
            q["captions_changed"] = [{"id": i, "f32": b[i], "int8": a[i]} for i in feats if a[i] != b[i]]
    pred_file = work / "predictions.json"
    pred_file.write_text(json.dumps(predictions, indent=1) + "\n")
    res["quality"]["predictions_file"] = str(pred_file)
    # full vs cached, f32: the paths should agree (numerical noise only)
    if len(paths) == 2:
        for name in loaded:
            same = sum(ids_of[(name, "full")][i] == ids_of[(name, "cached")][i] for i in feats)
            res["quality"]["per_bundle"][name]["full_vs_cached_identical"] = {"n": same, "of": len(feats)}

    # 4. tract vs onnxruntime on a few clips
    spec_sr = int(manifest["frontend"]["sample_rate"])
    picks = [r for s in args.splits for r in rows if r["split"] == s]
    per = max(1, args.crosscheck_clips // len(args.splits))
    chosen = [r for s in args.splits for r in [x for x in picks if x["split"] == s][:per]][
        : args.crosscheck_clips
    ]
    wavs = {}
    for r in chosen:
        p = work / "crosscheck" / f"{r['id']}.wav"
        write_wav(p, load_audio(corpus / r["audio"], spec_sr), spec_sr)
        wavs[r["id"]] = p
    cfeats = features(manifest, wavs)
    res["crosscheck"] = {
        "clips": list(wavs),
        "note": "16-bit WAVs at the model rate; first window",
        "per_bundle": {},
    }
    for name, b in loaded.items():
        rec = {}
        for path in paths:
            t = tract_ids(
                earshot,
                b,
                list(wavs.values()),
                float(manifest["window_seconds"]),
                "on" if path == "cached" else "off",
            )
            o = Decoder(b, path).decode(cfeats)
            words = vocab_words(b, manifest)
            clips = {
                i: {
                    "tract": t["clips"].get(i, {}).get("caption"),
                    "onnxruntime": caption_of(o[i], words, manifest),
                    "ids_equal": t["clips"].get(i, {}).get("ids") == o[i],
                }
                for i in wavs
            }
            rec[path] = {
                "command": t["command"],
                "ids_equal": sum(c["ids_equal"] for c in clips.values()),
                "of": len(clips),
                "clips": clips,
            }
        res["crosscheck"]["per_bundle"][name] = rec
        log(f"crosscheck {name}: " + ", ".join(f"{p} {rec[p]['ids_equal']}/{rec[p]['of']}" for p in paths))

    # 5. speed and size
    bench_wav = wavs[next(iter(wavs))] if args.bench_input is None else Path(args.bench_input)
    res["speed"] = speed(earshot, loaded, bench_wav, args.passes, args.windows, args.warmup, log)
    res["size_bytes"] = {n: bundle_bytes(b) for n, b in bundles.items()}

    # 6. decision
    res["decision"] = decide(res, list(args.splits))
    res["elapsed_s"] = round(time.time() - t_start, 1)
    return res


def int8_graphs(res: dict[str, Any], v: str) -> str:
    """`` (int8 encoder.onnx; float32 decoder.onnx, ...)`` for a partial variant, else ``""``."""
    p = res["variants"][v].get("precision", {})
    if p.get("graphs", "all") == "all" or not p.get("float32_graphs"):
        return ""
    return f" (int8 {', '.join(p['quantized_graphs'])}; float32 {', '.join(p['float32_graphs'])})"


def decide(res: dict[str, Any], splits: list[str]) -> dict[str, Any]:
    path = res["runtime_decoding_path"]
    per: dict[str, Any] = {}
    for v in res["variants"]:
        loads = res["tract_load"][v]["ok"]
        graphs = res["variants"][v].get("precision", {}).get("graphs", "all")
        rec: dict[str, Any] = {"tract_loads": loads, "graphs": graphs}
        if loads:
            sp = res["speed"]["per_bundle"][v]
            d = res["quality"]["per_bundle"][v][path]["delta_vs_f32"]
            rec["model_time_ratio_median"] = sp["ratio_model_ms"]["median"]
            rec["model_time_ratio_per_pass"] = sp["ratio_model_ms"]["per_pass"]
            for k in ("encoder", "decoder"):
                if f"ratio_{k}_ms" in sp:
                    rec[f"{k}_time_ratio_median"] = sp[f"ratio_{k}_ms"]["median"]
            rec["faster"] = sp["faster"]
            rec["cider_loss"] = {s: 0.0 - d[s]["CIDEr-D"] + 0.0 for s in splits}
            rec["quality_ok"] = all(-d[s]["CIDEr-D"] <= CIDER_TOL for s in splits)
            rec["meets_rule"] = rec["faster"] and rec["quality_ok"]
        else:
            rec["meets_rule"] = False
        per[v] = rec
    ok = [v for v, r in per.items() if r["meets_rule"]]
    if ok:  # among the variants that meet the rule, the one that loses least CIDEr-D on the worst split
        best = min(ok, key=lambda v: (max(per[v]["cider_loss"].values()), per[v]["model_time_ratio_median"]))
        why = (
            f"{best}{int8_graphs(res, best)} is faster in tract in every pass (median encoder+decoder ratio "
            f"{per[best]['model_time_ratio_median']:.2f}) and loses at most "
            f"{max(per[best]['cider_loss'].values()):.4f} CIDEr-D (<= {CIDER_TOL})"
        )
        others = [
            f"{v}{int8_graphs(res, v)}: " + ("meets the rule" if r["meets_rule"] else "does not")
            for v, r in per.items()
        ]
        return {
            "ship_int8": True,
            "variant": best,
            "because": why,
            "per_variant_reasons": others,
            "per_variant": per,
        }
    reasons = []
    for v, r in per.items():
        if not r["tract_loads"]:
            reasons.append(f"{v}: tract rejects it")
            continue
        ratios = r["model_time_ratio_per_pass"]
        span = f"{r['model_time_ratio_median']:.2f} median, {min(ratios):.2f}–{max(ratios):.2f} over passes"
        if r["faster"]:
            speed_txt = f"faster in tract (encoder+decoder time int8/f32 {span})"
        elif min(ratios) >= 1.0:
            speed_txt = f"slower in tract in every pass (encoder+decoder time int8/f32 {span})"
        else:
            speed_txt = f"not faster in tract in every pass (encoder+decoder time int8/f32 {span})"
        parts = [
            f"{k} alone {r[f'{k}_time_ratio_median']:.2f}"
            for k in ("encoder", "decoder")
            if f"{k}_time_ratio_median" in r
        ]
        if parts:
            speed_txt += f" [median int8/f32: {', '.join(parts)}]"
        delta = ", ".join(f"{s} {0.0 - r['cider_loss'][s]:+.4f}" for s in splits)
        verdict = "within" if r["quality_ok"] else "loses more than"
        reasons.append(
            f"{v}{int8_graphs(res, v)}: {speed_txt}; ΔCIDEr-D {delta} ({verdict} the {CIDER_TOL} allowance)"
        )
    n_slow = sum(1 for r in per.values() if r["tract_loads"] and not r["faster"])
    n_ok = sum(1 for r in per.values() if r.get("quality_ok"))
    summary = (
        f"no variant meets the rule: {n_slow} of {len(per)} are not faster in tract, "
        f"{n_ok} of {len(per)} stay within the CIDEr-D allowance"
    )
    return {
        "ship_int8": False,
        "variant": None,
        "because": summary,
        "per_variant_reasons": reasons,
        "per_variant": per,
    }


# ---------------------------------------------------------------------------------------- markdown
def _f(x: Any, nd: int = 3) -> str:
    return f"{x:.{nd}f}" if isinstance(x, float) else str(x)


def markdown(res: dict[str, Any], json_path: str) -> str:
    splits = list(res["quality"]["splits"])
    path = res["runtime_decoding_path"]
    dec = res["decision"]
    L = [
        "# int8 for the student bundle (issue 5)",
        "",
        "<!-- generated by `python -m earshot_train.int8_report`; do not edit by hand, re-run it -->",
        "",
        f"Bundle `{res['bundle']}` (`{res['bundle_name']}`), {res['date']}, {res['machine']}; "
        f"onnxruntime {res['onnxruntime']}. All numbers and commands: `{json_path}` (every prediction: "
        f"`{res['quality']['predictions_file']}`, not committed).",
        "",
        "```",
        res["command"],
        "```",
        "",
        "## Decision",
        "",
        "Rule (issue 5): *ship the chosen student in f32, and int8 only if tract runs it faster and it "
        "loses no more than 1 CIDEr-D point.* CIDEr-D here is pycocoevalcap's CIDEr-D on its 0–10 scale "
        f"(e.g. 1.505), so **1 CIDEr-D point = {CIDER_TOL}** on that scale (1 point of the ×100 scale papers "
        "use). *Faster* = tract's encoder + decoder time per window, int8/f32, below 1 in **every** pass of "
        "one alternating run (the machine is shared; a median alone can be noise). *Loses no more than 1 "
        f"point* = CIDEr-D(f32) − CIDEr-D(int8) ≤ {CIDER_TOL} on **each** of {' and '.join(splits)}, decoded "
        f"along the path the runtime uses (`{path}`). And tract must load and run every graph.",
        "",
        f"**Ship int8: {'yes — ' + dec['variant'] if dec['ship_int8'] else 'no'}**, because "
        + dec["because"]
        + ":",
        "",
        *[f"- {r}" for r in dec["per_variant_reasons"]],
        "",
        "## Variants and tract",
        "",
        "| variant | mode | int8 graphs | weights | activations | tract loads | graphs size | vs f32 |",
        "|---|---|---|---|---|---|---:|---:|",
    ]
    f32_size = res["size_bytes"]["f32"]["total (graphs)"]
    L.append(
        f"| f32 | – | none | float32 | float32 | {'yes' if res['tract_load']['f32']['ok'] else 'NO'} | "
        f"{f32_size / 1e6:.2f} MB | 1.00 |"
    )
    for v, r in res["variants"].items():
        p, sz = r["precision"], res["size_bytes"][v]["total (graphs)"]
        tl = res["tract_load"][v]
        ok = "yes" if tl["ok"] else f"NO: `{(tl['cache_on']['stderr'] or tl['cache_off']['stderr'])[-300:]}`"
        if p.get("float32_graphs"):  # a mix: the int8 graphs' types, the rest said to be float32
            which = ", ".join(f"`{f}`" for f in p["quantized_graphs"])
            g = p.get("per_graph", {}).get(p["quantized_graphs"][0], p)
            wts, acts = (f"{g[k]} (others float32)" for k in ("weights", "activations"))
        else:
            which, wts, acts = "all", p["weights"], p["activations"]
        L.append(
            f"| {v} | {p['mode']} | {which} | {wts} | {acts} | {ok} | {sz / 1e6:.2f} MB | "
            f"{sz / f32_size:.2f} |"
        )
    L += ["", "Quantized ops per graph:", ""]
    for v, r in res["variants"].items():
        ints = {
            f: {k: n for k, n in ops.items() if k in Q.INTEGER_OPS | {"DequantizeLinear"}}
            for f, ops in r["ops"].items()
        }
        f32_files = set(r["precision"].get("float32_graphs") or [])
        L.append(
            f"- {v}: "
            + "; ".join(
                f"`{f}` "
                + (
                    "float32 (copied unchanged)"
                    if f in f32_files
                    else ", ".join(f"{k} {n}" for k, n in o.items()) or "no integer ops"
                )
                for f, o in ints.items()
            )
        )
    L += [
        "",
        "## Quality (onnxruntime on the bundle graphs, beam search of the manifest)",
        "",
    ]
    metrics = ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D", "source_accuracy")
    for p in res["quality"]["per_bundle"]["f32"]:
        if p not in ("full", "cached"):
            continue
        L += [
            f"Decoding path `{p}`" + (" (the runtime's default)" if p == path else "") + ":",
            "",
            "| bundle | split | " + " | ".join(metrics) + " | ΔCIDEr-D vs f32 | captions = f32 |",
            "|---|---|" + "---:|" * (len(metrics) + 2),
        ]
        for name, q in res["quality"]["per_bundle"].items():
            rec = q[p]
            for s in splits:
                sc = rec["scores"][s]
                delta = rec.get("delta_vs_f32", {}).get(s, {}).get("CIDEr-D")
                same = rec.get("captions_identical_to_f32", {}).get(s)
                L.append(
                    f"| {name} | {s} (n={sc['n_clips']}) | "
                    + " | ".join(_f(sc.get(m)) for m in metrics)
                    + f" | {'–' if delta is None else f'{delta:+.4f}'} | "
                    + ("–" if same is None else f"{same['n']}/{same['of']}")
                    + " |"
                )
        L.append("")
    fc = {n: q.get("full_vs_cached_identical") for n, q in res["quality"]["per_bundle"].items()}
    if any(fc.values()):
        L += [
            "Same token ids from the `full` and `cached` paths: "
            + ", ".join(f"{n} {v['n']}/{v['of']}" for n, v in fc.items() if v)
            + " (f32 and the encoder-only variants: the two paths run the same float32 decoder function on "
            "the same memory; int8 decoders: `decoder.onnx` and `decoder_step.onnx` are quantized "
            "separately, so they can round differently).",
            "",
        ]
    spread = []
    for s in splits:
        deltas = [
            q[p]["delta_vs_f32"][s]["CIDEr-D"]
            for n, q in res["quality"]["per_bundle"].items()
            if n != "f32"
            for p in ("full", "cached")
            if p in q
        ]
        same = [
            q[p]["captions_identical_to_f32"][s]["n"]
            for n, q in res["quality"]["per_bundle"].items()
            if n != "f32"
            for p in ("full", "cached")
            if p in q
        ]
        if deltas:
            n_clips = res["quality"]["splits"][s]
            spread.append(
                f"{s}: ΔCIDEr-D {min(deltas):+.4f} to {max(deltas):+.4f} with {min(same)}–{max(same)} of "
                f"{n_clips} captions identical to f32"
            )
    if spread:
        L += [
            "Spread over all int8 variants and both paths (how far the few changed captions move the "
            "metric): " + "; ".join(spread) + ".",
            "",
        ]
    L += ["## tract vs onnxruntime (cross-check)", ""]
    L.append(f"Clips {', '.join(res['crosscheck']['clips'])} ({res['crosscheck']['note']}); token ids equal:")
    L.append("")
    mism = []
    for name, rec in res["crosscheck"]["per_bundle"].items():
        L.append(f"- {name}: " + ", ".join(f"`{p}` {r['ids_equal']}/{r['of']}" for p, r in rec.items()))
        for p, r in rec.items():
            for cid, c in r["clips"].items():
                if not c["ids_equal"]:
                    mism.append(
                        f"  - {name} `{p}` {cid}: tract “{c['tract']}” vs onnxruntime “{c['onnxruntime']}”"
                    )
    if mism:
        L += ["", "Mismatches:", "", *mism]
    L += ["", "## Speed (tract, one alternating run)", ""]
    sp = res["speed"]
    L += [
        f"{sp['passes']} passes ({sp['order']}); each cell is the median over passes of `earshot bench`'s "
        "per-window medians. Ratios are int8/f32 of the same pass (median, min–max over passes).",
        "",
        "| bundle | encoder ms | decoder ms | enc+dec ms | total ms | load ms | peak RSS MiB "
        "| enc+dec ratio | encoder ratio | decoder ratio | faster in every pass |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, r in sp["per_bundle"].items():
        m = r["median"]

        def ratio(k: str, r=r) -> str:
            if f"ratio_{k}" not in r:
                return "1"
            q = r[f"ratio_{k}"]
            return f"{q['median']:.2f} ({q['min']:.2f}–{q['max']:.2f})"

        L.append(
            f"| {name} | {m['encoder_ms']:.2f} | {m['decoder_ms']:.2f} | {m['model_ms']:.2f} | "
            f"{m['total_ms']:.2f} | {m['load_ms']:.0f} | {m['peak_rss_mb']:.1f} | {ratio('model_ms')} | "
            f"{ratio('encoder_ms')} | {ratio('decoder_ms')} | "
            + ("–" if name == "f32" else ("yes" if r["faster"] else "no"))
            + " |"
        )
    L += ["", "```", sp["command"], "```", ""]
    L += [
        "## Notes",
        "",
        f"- Speed was measured on this machine ({res['machine']}). tract's integer kernels differ per CPU "
        "architecture (the Raspberry Pi target is aarch64): re-run this report there before quoting the "
        "speed verdict for the Pi.",
        "- Smaller files and a lower peak RSS (tables above) are not part of the issue-5 rule.",
        "- The quantizer's `value_info` (symbolic dims `batch`, `length`) is removed from every int8 graph: "
        "with it tract fails on the decoder (`Impossible to unify Sym(B) with Sym(batch)`); see "
        "`earshot_train/quantize.py`.",
        "",
        "## Reproduce",
        "",
        "The int8 bundles are written to the work directory, not to `models/`:",
        "",
        "```",
        *[r["quantize_command"] for r in res["variants"].values()],
        "```",
        "",
        f"Whole report: {res['elapsed_s']:.0f} s.",
        "",
    ]
    return "\n".join(L)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m earshot_train.int8_report", description=__doc__.split("\n")[0]
    )
    p.add_argument("--bundle", required=True, type=Path)
    p.add_argument("--out-json", type=Path, default=REPO / "docs" / "int8.json")
    p.add_argument("--out-md", type=Path, default=REPO / "docs" / "int8.md")
    p.add_argument(
        "--work",
        type=Path,
        default=None,
        help="int8 bundles + cross-check WAVs (default /tmp/earshot-int8/<name>)",
    )
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument(
        "--corpus", type=Path, default=None, help="default $EARSHOT_CACHE/corpus/<bundle's corpus>"
    )
    p.add_argument("--splits", nargs="+", default=list(SPLITS))
    p.add_argument("--limit", type=int, default=0, help="only the first N clips of each split (0 = all)")
    p.add_argument("--calib-clips", type=int, default=32)
    p.add_argument("--crosscheck-clips", type=int, default=6)
    p.add_argument("--passes", type=int, default=5)
    p.add_argument("--windows", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--bench-input", type=Path, default=None, help="default: the first cross-check clip")
    p.add_argument("--earshot", type=Path, default=REPO / "target" / "release" / "earshot")
    args = p.parse_args(argv)
    args.argv = argv
    if args.passes < 3:
        p.error("--passes must be >= 3")
    try:
        res = report(args, log=lambda s: print(s, flush=True))
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.out_json.parent.mkdir(parents=True, exist_ok=True)
    args.out_json.write_text(json.dumps(res, indent=1) + "\n")
    try:
        shown = str(args.out_json.resolve().relative_to(REPO))
    except ValueError:
        shown = str(args.out_json)
    args.out_md.write_text(markdown(res, shown))
    d = res["decision"]
    print(
        f"wrote {args.out_json} and {args.out_md}; ship int8: "
        + (f"yes ({d['variant']})" if d["ship_int8"] else "no")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
