"""int8 copies of an earshot bundle with ``onnxruntime.quantization``, in the forms tract can run.

``python -m earshot_train quantize --bundle DIR --out DIR [--mode dynamic|static] [--weight-type u8|s8]
[--activation-type u8|s8] [--calib-clips N] [--corpus DIR] [--graphs all|encoder|decoders]`` writes a
complete bundle: the ONNX graphs chosen by ``--graphs`` quantized, the others copied byte for byte,
``vocab.txt``, the tag names when the bundle has a ``tags`` output (and ``MODEL_CARD.md``, with a note
on top) copied, and the manifest unchanged except
``name`` (``-int8-<variant>`` appended) and a new ``precision`` object (the runtime's manifest parser
ignores unknown keys: ``src/model/manifest.rs``, docs/bundle-format.md).

``--graphs`` (default ``all``): ``all`` = every graph of the source (``encoder``, ``decoder`` and, when
present, the KV-cached ``decoder_cached`` graphs ``decoder_init`` / ``decoder_step``); ``encoder`` = the
encoder graph only (decoders stay float32); ``decoders`` = the decoder graphs only (encoder stays
float32). A partial bundle's variant name carries the set (``static-u8u8-encoder``), and its
``precision`` says which graph is which: ``graphs``, ``quantized_graphs``, ``float32_graphs`` and, per
file, ``per_graph``; the top-level ``weights`` / ``activations`` then name the files of each type.

Modes (both per-tensor, ``per_channel=False``: tract's integer kernels take one scale per tensor):

- ``dynamic``: weights int8 ahead of time, activations quantized at run time (``DynamicQuantizeLinear``,
  always uint8) feeding ``MatMulInteger`` / ``ConvInteger``; the word embedding ``Gather`` reads uint8 and
  is followed by ``DequantizeLinear``. No calibration data.
- ``static``: QOperator format (``QLinearConv`` / ``QLinearMatMul`` with fixed activation scales), MinMax
  calibration on the f32 bundle's own inputs for ``--calib-clips`` train clips of the corpus: the student
  log-mels (the corpus' float16 feature cache when its front end matches the manifest, else computed from
  the audio), the memories the f32 encoder makes of them, and the greedy-decoding prefixes / KV states of
  the f32 decoder graphs. QDQ format is not offered: tract runs QDQ graphs in float.

Only ``Conv``, ``MatMul`` and ``Gather`` are quantized: the other quantizable ops of onnxruntime
(``QLinearAdd``, ``QLinearSoftmax``, ...) live in the ``com.microsoft`` domain, which tract does not read.
The quantizer's shape inference leaves ``value_info`` entries with the exporter's symbolic dimension names
(``batch``, ``length``); tract pins the decoder inputs to its own symbols and then fails to unify them
("Impossible to unify Sym(B) with Sym(batch)"), so intermediate ``value_info`` is removed (graph inputs
and outputs keep their declared shapes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from earshot_train.integrity import write_file_hashes

MODES = ("dynamic", "static")
TYPES = {"u8": "QUInt8", "s8": "QInt8"}
ONNX_TYPES = {"u8": "uint8", "s8": "int8"}
OP_TYPES = ["Conv", "MatMul", "Gather"]
# --graphs: which roles of graph_files() are quantized (roles a bundle lacks are skipped)
GRAPH_SETS = {
    "all": ("encoder", "decoder", "init", "step"),
    "encoder": ("encoder",),
    "decoders": ("decoder", "init", "step"),
}
INTEGER_OPS = {
    "MatMulInteger",
    "ConvInteger",
    "QLinearMatMul",
    "QLinearConv",
    "DynamicQuantizeLinear",
    "QuantizeLinear",
}


class BundleError(ValueError):
    """A bundle that cannot be read or quantized (missing files, corrupt ONNX, bad manifest)."""


# ------------------------------------------------------------------------------------------ bundle
def read_manifest(bundle: str | Path) -> dict[str, Any]:
    b = Path(bundle)
    if not b.is_dir():
        raise BundleError(f"bundle {b}: no such directory")
    path = b / "manifest.json"
    if not path.is_file():
        raise BundleError(f"bundle {b}: no manifest.json")
    try:
        m = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise BundleError(f"bundle {b}: manifest.json is not valid JSON ({e})") from None
    if m.get("format") != "earshot-bundle" or m.get("version") != 1:
        raise BundleError(f"bundle {b}: not an earshot-bundle version 1 manifest")
    for key in ("encoder", "decoder"):
        if not isinstance(m.get(key), dict) or "file" not in m[key]:
            raise BundleError(f"bundle {b}: manifest has no {key}.file")
    return m


def graph_files(manifest: dict[str, Any]) -> dict[str, str]:
    """Role -> file name of every ONNX graph of the bundle (``init``, ``step``: with ``decoder_cached``)."""
    files = {"encoder": manifest["encoder"]["file"], "decoder": manifest["decoder"]["file"]}
    cached = manifest.get("decoder_cached")
    if cached:
        files["init"] = cached["init_file"]
        files["step"] = cached["step_file"]
    return files


def check_graphs(graphs: str) -> None:
    if graphs not in GRAPH_SETS:
        raise ValueError(
            f"graphs must be one of {', '.join(GRAPH_SETS)} (which of the bundle's graphs to quantize), "
            f"got {graphs!r}"
        )


def load_onnx(path: Path):
    """``onnx.load`` + ``onnx.checker``, with a one-line error naming the file."""
    import onnx

    if not path.is_file():
        raise BundleError(f"{path}: missing ONNX graph")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as e:  # onnx raises DecodeError, ValidationError, ... depending on the damage
        raise BundleError(f"{path}: not a valid ONNX model ({type(e).__name__}: {str(e)[:200]})") from None
    return model


def ort_session(path: Path):
    """Single-threaded CPU onnxruntime session (the bundle parity settings of ``export.ort_session``)."""
    from earshot_train.export import ort_session as _session

    try:
        return _session(path)
    except Exception as e:  # onnxruntime's Fail/InvalidGraph/... exceptions
        raise BundleError(f"{path}: onnxruntime cannot load it ({str(e)[:300]})") from None


def op_counts(path: Path) -> dict[str, int]:
    import onnx

    counts: dict[str, int] = {}
    for n in onnx.load(str(path)).graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return dict(sorted(counts.items()))


def strip_value_info(path: Path) -> None:
    import onnx

    m = onnx.load(str(path))
    del m.graph.value_info[:]
    onnx.save(m, str(path))


# ------------------------------------------------------------------------------------- calibration
class _Recorder:
    """Wraps an onnxruntime session; remembers every feed dict it is run with."""

    def __init__(self, sess):
        self.sess, self.feeds = sess, []

    def run(self, outputs, feeds):
        self.feeds.append({k: np.array(v, copy=True) for k, v in feeds.items()})
        return self.sess.run(outputs, feeds)


def memory_len(manifest: dict[str, Any], samples: int) -> int | None:
    """Frames the decoder attends to (docs/bundle-format.md ``memory_len``); None = all."""
    if manifest["encoder"].get("memory_len", "full") == "effb2":
        return (samples // int(manifest["frontend"]["hop_length"]) + 1) // 32
    return None


def calibration_features(
    manifest: dict[str, Any], corpus: Path, n_clips: int, split: str = "train"
) -> tuple[list[np.ndarray], list[str]]:
    """Encoder inputs [1, n_mels, frames] (f32) of ``n_clips`` clips of ``split``, spread over the split."""
    from earshot_train.audio_io import load_audio
    from earshot_train.corpus import read_manifest as read_corpus
    from earshot_train.export import window_features
    from earshot_train.frontend import FrontendSpec
    from earshot_train.trainer import spec_digest

    if n_clips < 1:
        raise ValueError("--calib-clips must be >= 1")
    rows = read_corpus(corpus, [split])
    if not rows:
        raise ValueError(f"corpus {corpus} has no {split!r} clips for calibration")
    step = max(1, len(rows) // n_clips)
    rows = rows[::step][:n_clips]
    spec = FrontendSpec.from_dict(manifest["frontend"])
    shape = tuple(manifest["encoder"]["input_shape"])
    cache = corpus / "features" / spec_digest(spec)
    feats = []
    for r in rows:
        f = cache / f"{r['id']}.npy"
        x = np.load(f).astype(np.float32)[None] if f.is_file() else None
        if x is None or x.shape != shape:  # no cache for this front end, or another window length
            audio = load_audio(corpus / r["audio"], spec.sample_rate)
            x = window_features(audio, spec, float(manifest["window_seconds"]))
        feats.append(np.ascontiguousarray(x, dtype=np.float32))
    return feats, [r["id"] for r in rows]


def collect_feeds(bundle: Path, manifest: dict[str, Any], feats: list[np.ndarray]) -> dict[str, list[dict]]:
    """Feeds of every graph of the f32 bundle while it greedily captions ``feats`` (for calibration)."""
    from earshot_train import search

    files = graph_files(manifest)
    enc, dec = manifest["encoder"], manifest["decoder"]
    max_len = int(manifest.get("search", {}).get("max_len", dec.get("max_len", 20)))
    enc_sess = _Recorder(ort_session(bundle / files["encoder"]))
    dec_sess = _Recorder(ort_session(bundle / files["decoder"]))
    samples = int(round(float(manifest["window_seconds"]) * int(manifest["frontend"]["sample_rate"])))
    n_mem = memory_len(manifest, samples)

    def step(tokens: np.ndarray, memory: np.ndarray) -> np.ndarray:
        feeds = {dec["input_tokens"]: tokens.astype(np.int64), dec["input_memory"]: memory}
        return dec_sess.run([dec["output"]], feeds)[0]

    memories = []
    for x in feats:
        mem = enc_sess.run([enc["output"]], {enc["input"]: x})[0]
        if n_mem is not None:
            mem = np.ascontiguousarray(mem[:, :n_mem])
        memories.append(mem)
        search.greedy(step, mem, max_len)
    out = {"encoder": enc_sess.feeds, "decoder": dec_sess.feeds}
    if "init" in files:
        init = _Recorder(ort_session(bundle / files["init"]))
        stepper = _Recorder(ort_session(bundle / files["step"]))
        spec = manifest["decoder_cached"]
        for mem in memories:
            cross_k, cross_v = init.run(None, {"memory": mem})[:2]
            shape = (int(spec["layers"]), 1, int(spec["heads"]), 0, int(spec["head_dim"]))
            past_k = past_v = np.zeros(shape, np.float32)
            token = int(manifest["tokens"]["start"])
            for p in range(max_len):  # greedy, one row: the KV states a caption really produces
                feeds = {
                    "token": np.array([[token]], np.int64),
                    "position": np.array([p], np.int64),
                    "cross_k": cross_k,
                    "cross_v": cross_v,
                    "past_k": past_k,
                    "past_v": past_v,
                }
                logits, past_k, past_v = stepper.run(None, feeds)[:3]
                token = int(np.argmax(logits[0]))
                if token == int(manifest["tokens"]["end"]):
                    break
        out["init"], out["step"] = init.feeds, stepper.feeds
    return out


def _reader(feeds: list[dict[str, np.ndarray]]):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it: Iterator[dict[str, np.ndarray]] = iter(feeds)

        def get_next(self):
            return next(self.it, None)

        def rewind(self):
            self.it = iter(feeds)

    return Reader()


# ---------------------------------------------------------------------------------------- quantize
@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """onnxruntime.quantization logs a pre-processing suggestion per graph on the root logger."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_graph(
    src: Path,
    dst: Path,
    mode: str,
    weight_type: str = "u8",
    activation_type: str = "u8",
    feeds: list[dict[str, np.ndarray]] | None = None,
) -> None:
    """One graph, ``src`` -> ``dst`` (see the module doc for what each mode produces)."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    for t in (weight_type, activation_type):
        if t not in TYPES:
            raise ValueError(f"type must be one of {sorted(TYPES)}, got {t!r}")
    load_onnx(src)
    wt = getattr(QuantType, TYPES[weight_type])
    with _quiet():
        if mode == "dynamic":
            quantize_dynamic(src, dst, op_types_to_quantize=OP_TYPES, per_channel=False, weight_type=wt)
        else:
            if not feeds:
                raise ValueError(f"static quantization of {src.name} needs calibration feeds")
            quantize_static(
                src,
                dst,
                _reader(feeds),
                quant_format=QuantFormat.QOperator,
                op_types_to_quantize=OP_TYPES,
                per_channel=False,
                activation_type=getattr(QuantType, TYPES[activation_type]),
                weight_type=wt,
                calibrate_method=CalibrationMethod.MinMax,
            )
    strip_value_info(dst)


def variant_name(mode: str, weight_type: str, activation_type: str, graphs: str = "all") -> str:
    """``static-u8s8`` (every graph) or ``static-u8s8-encoder`` (only the ``--graphs`` set)."""
    check_graphs(graphs)
    if mode == "dynamic":  # DynamicQuantizeLinear always makes uint8 activations
        name = f"dynamic-u8{weight_type}"
    else:
        name = f"static-{activation_type}{weight_type}"
    return name if graphs == "all" else f"{name}-{graphs}"


def quantize_bundle(
    bundle: str | Path,
    out: str | Path,
    mode: str = "dynamic",
    weight_type: str = "u8",
    activation_type: str = "u8",
    calib_clips: int = 32,
    corpus: str | Path | None = None,
    feeds: dict[str, list[dict]] | None = None,
    log: Callable[[str], None] = print,
    graphs: str = "all",
) -> dict[str, Any]:
    """Write the int8 bundle ``out`` from ``bundle``; returns the ``precision`` object of its manifest.

    ``feeds`` (role -> feed dicts, from :func:`collect_feeds`) skips the calibration pass for static mode
    (e.g. to share one pass among variants); otherwise static mode calibrates on ``calib_clips`` train
    clips of ``corpus`` (default: ``$EARSHOT_CACHE/corpus/<the manifest's provenance.corpus>``).
    ``graphs`` (a key of :data:`GRAPH_SETS`) picks the graphs to quantize; the others are copied unchanged.
    """
    import onnxruntime

    src, dst = Path(bundle), Path(out)
    check_graphs(graphs)
    if mode == "dynamic" and activation_type != "u8":
        raise ValueError("dynamic mode quantizes activations to uint8 only (DynamicQuantizeLinear)")
    manifest = read_manifest(src)
    files = graph_files(manifest)
    for f in files.values():
        load_onnx(src / f)
    vocab = src / manifest.get("vocab", "vocab.txt")
    if not vocab.is_file():
        raise BundleError(f"bundle {src}: missing {vocab.name}")
    if dst.resolve() == src.resolve():
        raise ValueError("--out must differ from --bundle")
    calib: dict[str, Any] | None = None
    if mode == "static" and feeds is None:
        cdir = Path(corpus) if corpus else default_corpus(manifest)
        feats, ids = calibration_features(manifest, cdir, calib_clips)
        log(f"calibrating on {len(ids)} train clips of {cdir}")
        feeds = collect_feeds(src, manifest, feats)
        calib = {"corpus": str(cdir), "split": "train", "clips": ids}
    roles = [r for r in files if r in GRAPH_SETS[graphs]]
    dst.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for role, f in files.items():
        if role in roles:
            quantize_graph(
                src / f,
                dst / f,
                mode,
                weight_type,
                activation_type,
                (feeds or {}).get(role) if feeds else None,
            )
        else:
            shutil.copyfile(src / f, dst / f)
        sizes[f] = [(src / f).stat().st_size, (dst / f).stat().st_size]
        how = "" if role in roles else " (float32, copied unchanged)"
        log(f"{f}: {sizes[f][0] / 1e6:.2f} MB -> {sizes[f][1] / 1e6:.2f} MB{how}")
    shutil.copyfile(vocab, dst / vocab.name)
    tags = (manifest.get("tags") or {}).get("labels")
    if tags:  # the tag names of the encoder's optional ``tags`` output
        shutil.copyfile(src / tags, dst / tags)
    name = variant_name(mode, weight_type, activation_type, graphs)
    int8 = {
        "weights": ONNX_TYPES[weight_type],
        "activations": ONNX_TYPES[activation_type] + (" (dynamic)" if mode == "dynamic" else " (static)"),
    }
    f32 = {"weights": "float32", "activations": "float32"}
    q_files = [files[r] for r in roles]
    f_files = [f for r, f in files.items() if r not in roles]
    per_graph = {
        f: {"role": r, "quantized": r in roles, **(int8 if r in roles else f32)} for r, f in files.items()
    }
    if f_files:  # a mix: say which file has which type instead of claiming the whole bundle is int8
        mixed = {
            k: f"{int8[k]} in {', '.join(q_files)}; float32 in {', '.join(f_files)}"
            for k in ("weights", "activations")
        }
    else:
        mixed = int8
    precision = {
        "weights": mixed["weights"],
        "activations": mixed["activations"],
        "mode": mode,
        "variant": name,
        "graphs": graphs,
        "quantized_graphs": q_files,
        "float32_graphs": f_files,
        "per_graph": per_graph,
        "per_channel": False,
        "op_types": OP_TYPES,
        "tool": f"onnxruntime.quantization {onnxruntime.__version__}"
        + (" QOperator MinMax" if mode == "static" else ""),
        "source_bundle": str(src),
        "source_name": manifest.get("name", ""),
        "graph_bytes": sizes,
    }
    if mode == "static":
        precision["calibration"] = calib or {
            "feeds": {k: len(v) for k, v in (feeds or {}).items() if k in roles}
        }
    new = dict(manifest)
    new["name"] = f"{manifest.get('name', 'earshot')}-int8-{name}"
    new["precision"] = precision
    (dst / "manifest.json").write_text(json.dumps(new, indent=2) + "\n")
    card = src / "MODEL_CARD.md"
    if card.is_file():
        which = "" if not f_files else f"; int8: {', '.join(q_files)}, float32: {', '.join(f_files)}"
        note = (
            f"> **int8 copy** ({name}, `python -m earshot_train quantize`{which}) of "
            f"`{manifest.get('name')}`. Everything below describes the f32 model it was made from; the int8 "
            "model's own scores are in docs/int8.md.\n\n"
        )
        (dst / "MODEL_CARD.md").write_text(note + card.read_text())
    write_file_hashes(dst)
    return precision


def default_corpus(manifest: dict[str, Any]) -> Path:
    from earshot_train.corpus import cache_root

    name = (manifest.get("provenance") or {}).get("corpus") or "default"
    return cache_root() / "corpus" / str(name)


# --------------------------------------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", required=True, type=Path, help="f32 bundle directory")
    p.add_argument("--out", required=True, type=Path, help="directory of the int8 bundle (created)")
    p.add_argument("--mode", choices=MODES, default="dynamic")
    p.add_argument("--weight-type", choices=sorted(TYPES), default="u8")
    p.add_argument(
        "--activation-type", choices=sorted(TYPES), default="u8", help="static mode only (dynamic: u8)"
    )
    p.add_argument("--calib-clips", type=int, default=32, help="static mode: train clips to calibrate on")
    p.add_argument(
        "--corpus", type=Path, default=None, help="corpus dir (default $EARSHOT_CACHE/corpus/<bundle's>)"
    )
    p.add_argument(
        "--graphs",
        choices=list(GRAPH_SETS),
        default="all",
        help="graphs to quantize: all, encoder (decoders stay float32) or decoders (encoder stays float32); "
        "the others are copied unchanged",
    )


def run(args: argparse.Namespace) -> int:
    prec = quantize_bundle(
        args.bundle,
        args.out,
        args.mode,
        args.weight_type,
        args.activation_type,
        args.calib_clips,
        args.corpus,
        graphs=getattr(args, "graphs", "all"),
    )
    print(
        json.dumps(
            {
                "bundle": str(args.out),
                "variant": prec["variant"],
                "graph_bytes": prec["graph_bytes"],
                "quantized_graphs": prec["quantized_graphs"],
                "float32_graphs": prec["float32_graphs"],
            }
        )
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="earshot-train quantize", description=__doc__.split("\n")[0])
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
