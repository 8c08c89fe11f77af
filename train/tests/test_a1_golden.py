"""The committed golden files are exactly what ``earshot-train golden`` regenerates."""

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from earshot_train import golden

GOLDEN = Path(__file__).resolve().parents[2] / "tests" / "golden"


def _graph(path: Path):
    m = onnx.load(str(path))
    ops = [n.op_type for n in m.graph.node]
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    return ops, inits


def test_golden_regenerates_identically(tmp_path):
    exp = golden.write_golden(tmp_path, frontend=False)
    assert (tmp_path / "tiny-input.wav").read_bytes() == (GOLDEN / "tiny-input.wav").read_bytes()
    assert (tmp_path / "tiny-bundle" / "vocab.txt").read_text() == (
        GOLDEN / "tiny-bundle" / "vocab.txt"
    ).read_text()
    # The ONNX serialisation may differ byte-wise between environments (exporter metadata), so the
    # manifest's file hashes are compared for what they promise: the committed manifest hashes the
    # committed files; everything else in the manifest is identical. The graphs themselves are compared
    # op by op and weight by weight below.
    man_new = json.loads((tmp_path / "tiny-bundle" / "manifest.json").read_text())
    man_old = json.loads((GOLDEN / "tiny-bundle" / "manifest.json").read_text())
    files_new, files_old = man_new.pop("files"), man_old.pop("files")
    assert man_new == man_old
    assert files_new.keys() == files_old.keys()
    for name, entry in files_old.items():
        data = (GOLDEN / "tiny-bundle" / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}, name
        if not name.endswith(".onnx"):
            assert files_new[name] == entry, name
    # parity.json records float rounding between torch and onnxruntime, which depends on the CPU's
    # kernels and thread count: the ids must match exactly, the differences only stay small.
    parity_new = json.loads((tmp_path / "tiny-bundle" / "parity.json").read_text())
    parity_old = json.loads((GOLDEN / "tiny-bundle" / "parity.json").read_text())
    assert parity_new.keys() == parity_old.keys()
    for k, v in parity_old.items():
        if k.endswith("_max_abs_diff"):
            assert parity_new[k] < 1e-4, k
        else:
            assert parity_new[k] == v, k
    for name in ("encoder.onnx", "decoder.onnx"):
        ops_a, init_a = _graph(tmp_path / "tiny-bundle" / name)
        ops_b, init_b = _graph(GOLDEN / "tiny-bundle" / name)
        assert ops_a == ops_b
        assert init_a.keys() == init_b.keys()
        for k in init_a:
            np.testing.assert_array_equal(init_a[k], init_b[k])
    committed = json.loads((GOLDEN / "tiny-bundle-expect.json").read_text())
    assert exp.keys() == committed.keys()
    for k, v in committed.items():
        if isinstance(v, list) and v and isinstance(v[0], float) or isinstance(v, float):
            np.testing.assert_allclose(exp[k], v, rtol=1e-5, atol=1e-5, err_msg=k)
        else:
            assert exp[k] == v, k


def test_golden_bundle_is_small_and_non_degenerate():
    size = sum(p.stat().st_size for p in (GOLDEN / "tiny-bundle").iterdir())
    assert size < 2 * 1024 * 1024
    exp = json.loads((GOLDEN / "tiny-bundle-expect.json").read_text())
    assert len(set(exp["greedy_ids"])) >= 6 and exp["greedy_ids"] != exp["beam_ids"]
    assert exp["greedy_ids"][-1] == exp["beam_ids"][-1] == 2  # both stop on <end>
    man = json.loads((GOLDEN / "tiny-bundle" / "manifest.json").read_text())
    n = int(exp["window_seconds"] * man["frontend"]["sample_rate"])
    import soundfile as sf

    info = sf.info(str(GOLDEN / "tiny-input.wav"))
    assert info.samplerate == man["frontend"]["sample_rate"] and info.subtype == "PCM_16"
    assert info.frames < n  # shorter than the window: the runtime's zero padding is exercised
