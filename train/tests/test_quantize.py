"""int8 bundles (earshot_train.quantize) on the golden tiny bundle + its KV-cached graphs; no shared data."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from earshot_train import cli
from earshot_train import int8_report as R
from earshot_train import quantize as Q

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "tests" / "golden" / "tiny-bundle"
EARSHOT = REPO / "target" / "release" / "earshot"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A copy of the golden tiny bundle with the decoder_cached graphs added (as export_cached does)."""
    import torch

    from earshot_train.export_cached import _tiny_decoder, add_to_bundle

    torch.set_num_threads(1)
    b = tmp_path_factory.mktemp("q") / "tiny"
    shutil.copytree(TINY, b)
    add_to_bundle(_tiny_decoder(b), b)
    return b


@pytest.fixture(scope="module")
def mel(tiny) -> np.ndarray:
    from earshot_train.audio_io import load_audio
    from earshot_train.export import window_features
    from earshot_train.frontend import FrontendSpec

    m = Q.read_manifest(tiny)
    spec = FrontendSpec.from_dict(m["frontend"])
    audio = load_audio(REPO / "tests" / "golden" / "tiny-input.wav", spec.sample_rate)
    return window_features(audio, spec, float(m["window_seconds"]))


@pytest.fixture(scope="module")
def feeds(tiny, mel):
    rng = np.random.default_rng(0)
    feats = [mel] + [(mel + rng.normal(0, 3, mel.shape)).astype(np.float32) for _ in range(3)]
    return Q.collect_feeds(tiny, Q.read_manifest(tiny), feats)


@pytest.fixture(scope="module")
def quantized(tiny, feeds, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("int8")
    out = {}
    for mode, act, wt in (("dynamic", "u8", "u8"), ("static", "u8", "u8"), ("static", "s8", "s8")):
        name = Q.variant_name(mode, wt, act)
        Q.quantize_bundle(tiny, root / name, mode, wt, act, feeds=feeds, log=lambda s: None)
        out[name] = root / name
    return out


def _close(a: np.ndarray, b: np.ndarray, rel: float) -> None:
    assert a.shape == b.shape
    assert np.abs(a - b).max() <= rel * np.abs(a).max(), (np.abs(a - b).max(), np.abs(a).max())
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99


def test_bundle_complete_and_marked(tiny, quantized):
    src = Q.read_manifest(tiny)
    for name, b in quantized.items():
        m = Q.read_manifest(b)
        assert m["precision"]["variant"] == name and m["precision"]["per_channel"] is False
        assert m["name"].endswith(f"-int8-{name}")
        for key in ("frontend", "encoder", "decoder", "tokens", "search", "decoder_cached"):
            assert m[key] == src[key]
        assert (b / "vocab.txt").read_text() == (tiny / "vocab.txt").read_text()
        files = Q.graph_files(m).values()  # the tiny encoder is so small that node overhead wins
        assert sum((b / f).stat().st_size for f in files) < 0.75 * sum(
            (tiny / f).stat().st_size for f in files
        )


def test_integer_ops_and_onnxruntime_loads(quantized):
    for name, b in quantized.items():
        m = Q.read_manifest(b)
        for role, f in Q.graph_files(m).items():
            Q.ort_session(b / f)
            ops = Q.op_counts(b / f)
            kind = "Conv" if role == "encoder" else "MatMul"
            want = f"{kind}Integer" if name.startswith("dynamic") else f"QLinear{kind}"
            assert ops.get(want, 0) > 0, (name, f, ops)
            assert ops.get(kind, 0) == 0 or kind == "MatMul", (name, f, ops)  # every Conv quantized


def test_outputs_close_to_f32(tiny, quantized, mel, feeds):
    enc0 = Q.ort_session(tiny / "encoder.onnx").run(None, {"mel": mel})[0]
    tok = np.array([[1, 4, 5, 6], [1, 7, 8, 9]], np.int64)
    mem = np.repeat(enc0, 2, axis=0)
    dec0 = Q.ort_session(tiny / "decoder.onnx").run(None, {"tokens": tok, "memory": mem})[0]
    step_feed = feeds["step"][3]
    step0 = Q.ort_session(tiny / "decoder_step.onnx").run(None, step_feed)[0]
    for b in quantized.values():
        _close(enc0, Q.ort_session(b / "encoder.onnx").run(None, {"mel": mel})[0], 0.05)
        _close(dec0, Q.ort_session(b / "decoder.onnx").run(None, {"tokens": tok, "memory": mem})[0], 0.1)
        _close(step0, Q.ort_session(b / "decoder_step.onnx").run(None, step_feed)[0], 0.1)


def test_missing_bundle_and_corrupt_onnx(tmp_path, tiny, capsys):
    with pytest.raises(Q.BundleError, match="no such directory"):
        Q.quantize_bundle(tmp_path / "nope", tmp_path / "out")
    bad = tmp_path / "bad"
    shutil.copytree(tiny, bad)
    (bad / "encoder.onnx").write_bytes(b"this is not protobuf" * 10)
    with pytest.raises(Q.BundleError, match=r"encoder\.onnx: not a valid ONNX model"):
        Q.quantize_bundle(bad, tmp_path / "out2")
    assert not (tmp_path / "out2").exists()
    (bad / "encoder.onnx").unlink()
    with pytest.raises(Q.BundleError, match=r"encoder\.onnx: missing ONNX graph"):
        Q.quantize_bundle(bad, tmp_path / "out3")
    rc = cli.main(["quantize", "--bundle", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "no such directory" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--out must differ"):
        Q.quantize_bundle(tiny, tiny)
    with pytest.raises(ValueError, match="uint8 only"):
        Q.quantize_bundle(tiny, tmp_path / "o4", "dynamic", activation_type="s8")


def test_static_needs_a_corpus(tmp_path, tiny):
    with pytest.raises(FileNotFoundError, match="build the corpus"):
        Q.quantize_bundle(tiny, tmp_path / "s", "static", corpus=tmp_path / "no-corpus")


def test_cli_dynamic(tmp_path, tiny, capsys):
    assert cli.main(["quantize", "--bundle", str(tiny), "--out", str(tmp_path / "d")]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["variant"] == "dynamic-u8u8" and set(out["graph_bytes"]) == {
        "encoder.onnx",
        "decoder.onnx",
        "decoder_init.onnx",
        "decoder_step.onnx",
    }


def test_variants_and_decision_rule():
    assert R.parse_variant("static-s8s8") == ("static", "s8", "s8")
    for bad in ("dynamic-s8u8", "static-u8", "fast"):
        with pytest.raises(ValueError):
            R.parse_variant(bad)

    def res(ratios, cider_delta):
        return {
            "runtime_decoding_path": "cached",
            "variants": {"v": {}},
            "tract_load": {"v": {"ok": True}},
            "speed": {
                "per_bundle": {
                    "v": {
                        "ratio_model_ms": {"per_pass": ratios, "median": float(np.median(ratios))},
                        "faster": all(r < 1 for r in ratios),
                    }
                }
            },
            "quality": {
                "per_bundle": {
                    "v": {"cached": {"delta_vs_f32": {s: {"CIDEr-D": cider_delta} for s in R.SPLITS}}}
                }
            },
        }

    assert R.decide(res([0.8, 0.9, 0.7], -0.009), list(R.SPLITS))["ship_int8"]
    assert not R.decide(res([0.8, 1.1, 0.7], 0.0), list(R.SPLITS))["ship_int8"]  # not faster every pass
    assert not R.decide(res([0.8, 0.9, 0.7], -0.011), list(R.SPLITS))["ship_int8"]  # loses > 1 point
    no_tract = res([0.5] * 3, 0.0)
    no_tract["tract_load"]["v"]["ok"] = False
    d = R.decide(no_tract, list(R.SPLITS))
    assert not d["ship_int8"] and "tract rejects" in " ".join(d["per_variant_reasons"])


@pytest.mark.skipif(not EARSHOT.is_file(), reason="target/release/earshot not built (cargo build --release)")
def test_tract_runs_int8(quantized):
    wav = REPO / "tests" / "golden" / "tiny-input.wav"
    for b in quantized.values():
        for cache in ("on", "off"):
            r = subprocess.run(
                [str(EARSHOT), "caption", "--model", str(b), str(wav), "--print-ids"],
                capture_output=True,
                text=True,
                env={"EARSHOT_DECODER_CACHE": cache, "PATH": "/usr/bin:/bin"},
                timeout=300,
            )
            assert r.returncode == 0, (b.name, cache, r.stderr)
            assert "[ids" in r.stdout
