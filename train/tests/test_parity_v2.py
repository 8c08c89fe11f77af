"""The committed model-v2 decoding parity golden (tests/golden/parity-v2/, checked against the runtime by
tests/parity_v2.rs) is exactly what ``earshot_train.golden.write_parity_v2`` regenerates: ids and captions
identical, the onnxruntime float values within 1e-5 (they vary slightly with CPU kernels)."""

import json
from pathlib import Path

import numpy as np

from earshot_train import golden

GOLDEN = Path(__file__).resolve().parents[2] / "tests" / "golden"


def test_parity_v2_regenerates_identically(tmp_path):
    doc = golden.write_parity_v2(GOLDEN, tmp_path)
    committed = json.loads((GOLDEN / "parity-v2" / "parity-v2.json").read_text())
    for wav in sorted((GOLDEN / "parity-v2").glob("*.wav")):
        assert (tmp_path / wav.name).read_bytes() == wav.read_bytes(), wav.name
    assert sorted(p.name for p in tmp_path.glob("*.wav")) == sorted(
        p.name for p in (GOLDEN / "parity-v2").glob("*.wav")
    )
    assert len(doc["cases"]) == len(committed["cases"])
    for i, (new, old) in enumerate(zip(doc["cases"], committed["cases"], strict=True)):
        assert new["audio"] == old["audio"] and new["manifest"] == old["manifest"], i
        for name in ("greedy", "beam"):
            a, b = new[name], old[name]
            assert a["ids"] == b["ids"], (i, name)
            assert a["ids_without_rules"] == b["ids_without_rules"], (i, name)
            assert a["caption"] == b["caption"], (i, name)
            np.testing.assert_allclose(a["logprobs"], b["logprobs"], atol=1e-5, err_msg=f"{i} {name}")
            np.testing.assert_allclose(
                [a["score"], a["confidence"]], [b["score"], b["confidence"]], atol=1e-5
            )
    # every case's rules change at least one of its two captions, and the cases differ from each other
    assert all(
        any(c[n]["ids"] != c[n]["ids_without_rules"] for n in ("greedy", "beam")) for c in committed["cases"]
    )
    assert len({json.dumps([c["greedy"]["ids"], c["beam"]["ids"]]) for c in committed["cases"]}) >= 4
