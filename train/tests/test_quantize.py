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


@pytest.fixture(scope="module")
def partial(tiny, feeds, tmp_path_factory) -> dict[str, Path]:
    """Encoder-only int8 bundles (static u8u8 / s8s8 / u8s8, dynamic) and one decoders-only bundle."""
    root = tmp_path_factory.mktemp("int8-partial")
    out = {}
    for mode, act, wt, graphs in (
        ("static", "u8", "u8", "encoder"),
        ("static", "s8", "s8", "encoder"),
        ("static", "u8", "s8", "encoder"),
        ("dynamic", "u8", "u8", "encoder"),
        ("static", "u8", "u8", "decoders"),
    ):
        name = Q.variant_name(mode, wt, act, graphs)
        Q.quantize_bundle(tiny, root / name, mode, wt, act, feeds=feeds, log=lambda s: None, graphs=graphs)
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


def _has_integer_ops(path: Path) -> bool:
    return any(op in Q.INTEGER_OPS for op in Q.op_counts(path))


def test_encoder_only_quantizes_the_encoder_alone(tiny, partial):
    src = Q.read_manifest(tiny)
    files = Q.graph_files(src)
    assert set(files) == {"encoder", "decoder", "init", "step"}
    decoders = [f for r, f in files.items() if r != "encoder"]
    for name, b in partial.items():
        if not name.endswith("-encoder"):
            continue
        m = Q.read_manifest(b)
        for key in ("frontend", "encoder", "decoder", "tokens", "search", "decoder_cached"):
            assert m[key] == src[key]
        assert m["name"].endswith(f"-int8-{name}")
        ops = Q.op_counts(b / files["encoder"])
        assert _has_integer_ops(b / files["encoder"]), (name, ops)
        assert ops.get("Conv", 0) == 0, (name, ops)  # every Conv of the encoder quantized
        Q.ort_session(b / files["encoder"])
        for f in decoders:
            assert (b / f).read_bytes() == (tiny / f).read_bytes(), (name, f)
            assert not _has_integer_ops(b / f), (name, f)
        p = m["precision"]
        assert p["variant"] == name and p["graphs"] == "encoder"
        assert p["quantized_graphs"] == [files["encoder"]]
        assert sorted(p["float32_graphs"]) == sorted(decoders)
        assert p["per_graph"][files["encoder"]]["quantized"] is True
        assert p["per_graph"][files["encoder"]]["weights"] in ("uint8", "int8")
        for f in decoders:
            assert p["per_graph"][f] == {
                "role": next(r for r, g in files.items() if g == f),
                "quantized": False,
                "weights": "float32",
                "activations": "float32",
            }
            assert p["graph_bytes"][f][0] == p["graph_bytes"][f][1]
        # the top-level summary does not claim the whole bundle is int8
        assert "float32 in decoder.onnx" in p["weights"] and "float32" in p["activations"]
        if name.startswith("static"):
            assert set(p["calibration"]["feeds"]) == {"encoder"}


def test_decoders_only_keeps_the_encoder(tiny, partial):
    b = partial["static-u8u8-decoders"]
    files = Q.graph_files(Q.read_manifest(b))
    assert (b / files["encoder"]).read_bytes() == (tiny / files["encoder"]).read_bytes()
    for r in ("decoder", "init", "step"):
        assert Q.op_counts(b / files[r]).get("QLinearMatMul", 0) > 0, r
    assert Q.read_manifest(b)["precision"]["float32_graphs"] == [files["encoder"]]


def test_all_graphs_precision_unchanged(quantized):
    p = Q.read_manifest(quantized["static-s8s8"])["precision"]
    assert p["weights"] == "int8" and p["activations"] == "int8 (static)" and p["graphs"] == "all"
    assert p["float32_graphs"] == [] and all(g["quantized"] for g in p["per_graph"].values())


def test_bad_graphs_value(tmp_path, tiny, capsys):
    with pytest.raises(ValueError, match=r"graphs must be one of all, encoder, decoders.*got 'encoders'"):
        Q.quantize_bundle(tiny, tmp_path / "x", graphs="encoders")
    assert not (tmp_path / "x").exists()
    with pytest.raises(ValueError, match="graphs must be one of"):
        Q.variant_name("static", "u8", "u8", "decoder")
    with pytest.raises(SystemExit) as e:
        cli.main(["quantize", "--bundle", str(tiny), "--out", str(tmp_path / "y"), "--graphs", "enc"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "argument --graphs: invalid choice: 'enc'" in err and "encoder" in err
    assert not (tmp_path / "y").exists()


def test_cli_encoder_only(tmp_path, tiny, capsys):
    src = tmp_path / "src"
    shutil.copytree(tiny, src)
    (src / "MODEL_CARD.md").write_text("# tiny\n")
    args = ["quantize", "--bundle", str(src), "--out", str(tmp_path / "e"), "--graphs", "encoder"]
    assert cli.main(args) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["variant"] == "dynamic-u8u8-encoder"
    assert out["quantized_graphs"] == ["encoder.onnx"]
    assert set(out["float32_graphs"]) == {"decoder.onnx", "decoder_init.onnx", "decoder_step.onnx"}
    assert Q.op_counts(tmp_path / "e" / "encoder.onnx").get("ConvInteger", 0) > 0
    note = (tmp_path / "e" / "MODEL_CARD.md").read_text().split("\n")[0]
    assert "dynamic-u8u8-encoder" in note and "int8: encoder.onnx, float32: decoder.onnx" in note


def test_variants_and_decision_rule():
    assert R.parse_variant("static-s8s8") == ("static", "s8", "s8")
    assert R.variant_parts("static-s8s8") == ("static", "s8", "s8", "all")
    assert R.variant_parts("static-u8s8-encoder") == ("static", "u8", "s8", "encoder")
    assert R.variant_parts("dynamic-u8u8-decoders") == ("dynamic", "u8", "u8", "decoders")
    for v in R.VARIANTS:
        mode, act, wt, graphs = R.variant_parts(v)
        assert Q.variant_name(mode, wt, act, graphs) == v
    assert {R.variant_parts(v)[3] for v in R.VARIANTS} == {"all", "encoder"}
    for bad in ("dynamic-s8u8", "static-u8", "fast", "static-u8u8-all", "static-u8u8-enc", "a-b-c-d"):
        with pytest.raises(ValueError):
            R.variant_parts(bad)

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

    enc_only = res([0.9, 0.95, 0.92], -0.002)  # an encoder-only variant: same rule, says which graphs
    enc_only["variants"]["v"]["precision"] = {
        "graphs": "encoder",
        "quantized_graphs": ["encoder.onnx"],
        "float32_graphs": ["decoder.onnx", "decoder_step.onnx"],
    }
    d = R.decide(enc_only, list(R.SPLITS))
    assert d["ship_int8"] and d["per_variant"]["v"]["graphs"] == "encoder"
    assert "v (int8 encoder.onnx; float32 decoder.onnx, decoder_step.onnx) is faster" in d["because"]
    enc_only["speed"]["per_bundle"]["v"]["ratio_model_ms"]["per_pass"][1] = 1.01
    enc_only["speed"]["per_bundle"]["v"]["faster"] = False
    enc_only["speed"]["per_bundle"]["v"]["ratio_encoder_ms"] = {"median": 0.8}
    d = R.decide(enc_only, list(R.SPLITS))
    assert not d["ship_int8"]
    assert "not faster in tract in every pass" in d["per_variant_reasons"][0]
    assert "encoder alone 0.80" in d["per_variant_reasons"][0]


def _fake_report(partial: dict[str, Path]) -> dict:
    """A report dict of the shape report() writes, for f32 + one all-graphs + one encoder-only variant."""
    names = ["f32", "static-u8u8", "static-u8u8-encoder"]
    scores = {
        s: {"n_clips": 4, "BLEU-4": 0.3, "METEOR": 0.3, "ROUGE-L": 0.5, "CIDEr-D": 1.0} for s in R.SPLITS
    }
    bench = {"encoder_ms": 2.0, "decoder_ms": 5.0, "model_ms": 7.0, "total_ms": 9.0, "load_ms": 100.0}
    bench["peak_rss_mb"] = 50.0
    res = {
        "bundle": "tiny",
        "bundle_name": "tiny",
        "date": "d",
        "machine": "m",
        "onnxruntime": "x",
        "command": "c",
        "runtime_decoding_path": "cached",
        "variants": {},
        "tract_load": {n: {"ok": True} for n in names},
        "quality": {"splits": {s: 4 for s in R.SPLITS}, "per_bundle": {}, "predictions_file": "p"},
        "crosscheck": {"clips": ["a"], "note": "n", "per_bundle": {}},
        "speed": {"passes": 3, "order": "o", "command": "b", "per_bundle": {}},
        "size_bytes": {n: {"total (graphs)": 1000} for n in names},
        "elapsed_s": 1.0,
    }
    for n in names:
        q = {"scores": scores}
        if n != "f32":
            q["delta_vs_f32"] = {s: {"CIDEr-D": -0.001} for s in R.SPLITS}
            q["captions_identical_to_f32"] = {s: {"n": 4, "of": 4} for s in R.SPLITS}
        res["quality"]["per_bundle"][n] = {
            "full": q,
            "cached": q,
            "full_vs_cached_identical": {"n": 8, "of": 8},
        }
        res["crosscheck"]["per_bundle"][n] = {"cached": {"ids_equal": 1, "of": 1, "clips": {}}}
        rec = {"median": bench, "runs": [bench] * 3}
        if n != "f32":
            ratio = [0.9, 0.95, 0.9] if n.endswith("encoder") else [1.5, 1.6, 1.7]
            for k in ("encoder_ms", "decoder_ms", "model_ms", "total_ms"):
                rec[f"ratio_{k}"] = {
                    "per_pass": ratio,
                    "median": ratio[1],
                    "min": min(ratio),
                    "max": max(ratio),
                }
            rec["faster"] = all(r < 1 for r in ratio)
            b = partial[n] if n in partial else partial["static-u8u8-encoder"]
            prec = Q.read_manifest(b)["precision"]
            if n == "static-u8u8":  # the all-graphs form of the same precision
                prec = {
                    **prec,
                    "graphs": "all",
                    "float32_graphs": [],
                    "weights": "uint8",
                    "activations": "uint8 (static)",
                }
                prec["quantized_graphs"] = list(prec["per_graph"])
            res["variants"][n] = {
                "precision": prec,
                "ops": {f: Q.op_counts(b / f) for f in prec["per_graph"]},
                "quantize_command": f"python -m earshot_train quantize ... {n}",
            }
        res["speed"]["per_bundle"][n] = rec
    return res


def test_markdown_covers_encoder_only(partial):
    res = _fake_report(partial)
    res["decision"] = R.decide(res, list(R.SPLITS))
    assert res["decision"]["variant"] == "static-u8u8-encoder"
    md = R.markdown(res, "docs/int8.json")
    assert "**Ship int8: yes — static-u8u8-encoder**" in md
    row = "| static-u8u8-encoder | static | `encoder.onnx` | uint8 (others float32) | uint8 (static) (others"
    assert row in md
    assert "| static-u8u8 | static | all | uint8 | uint8 (static) | yes |" in md
    assert "`decoder.onnx` float32 (copied unchanged)" in md
    assert "- static-u8u8 (int8" not in md  # an all-graphs variant is not labelled as partial


NO_EARSHOT = "target/release/earshot not built (cargo build --release): tract not checked"


@pytest.mark.skipif(not EARSHOT.is_file(), reason=NO_EARSHOT)
def test_tract_runs_int8(quantized):
    _tract_runs(quantized.values())


@pytest.mark.skipif(not EARSHOT.is_file(), reason=NO_EARSHOT)
def test_tract_runs_mixed_bundle(partial):
    """int8 encoder + float32 decoders (and the reverse), both decoder paths of the runtime."""
    _tract_runs(partial.values())


def _tract_runs(bundles) -> None:
    wav = REPO / "tests" / "golden" / "tiny-input.wav"
    for b in bundles:
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
