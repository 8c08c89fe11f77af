"""Teacher feature cache: shapes, agreement with a direct forward pass, resumability."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import build_tiny_corpus

from earshot_train.audio_io import load_audio
from earshot_train.corpus import read_manifest
from earshot_train.frontend import logmel
from earshot_train.teacher.mn04 import MN04, MN04_FRONTEND
from earshot_train.teacher_cache import cache_teacher_features, clip_path, load_teacher_features, main


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    # Smaller than the session's tiny corpus (8 clips): the teacher runs a forward pass per clip.
    return build_tiny_corpus(
        tmp_path_factory.mktemp("tc") / "c",
        name="tc",
        seed=1234,
        synthetic_files_per_class=8,
        n_train_single=2,
        n_train_bed=1,
        n_train_overlap=1,
        n_train_sequence=0,
        n_val_single=1,
        n_val_bed=0,
        n_val_overlap=0,
        n_val_sequence=0,
        n_test_single=1,
        n_test_bed=1,
        n_test_overlap=0,
        n_test_sequence=0,
        n_audio_only=1,
    )


def _model():
    """Random mn04 with BatchNorm statistics calibrated on random input, so activations are O(1)
    (with default statistics they shrink to ~1e-9 and every comparison would pass trivially)."""
    torch.manual_seed(0)
    m = MN04().train()
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.reset_running_stats()
            mod.momentum = None  # cumulative average
    with torch.no_grad():
        m(torch.randn(4, 128, 200))
    return m.eval()


def test_cache_contents_and_resume(corpus, tmp_path):
    model = _model()
    labels = [f"tag{i}" for i in range(527)]
    out = cache_teacher_features(
        corpus, tmp_path / "t", model=model, labels=labels, batch_size=3, progress=False
    )
    rows = read_manifest(corpus)
    info = json.loads((out / "teacher_info.json").read_text())
    assert info["n_clips"] == len(rows) and info["frames_shape"] == [32, 384] and info["emb_dim"] == 384
    tags = [json.loads(line) for line in (out / "tags.jsonl").read_text().splitlines()]
    assert [t["id"] for t in tags] == [r["id"] for r in rows]
    assert all(len(t["top"]) == 5 and t["top"][0][0].startswith("tag") for t in tags)
    # cached values equal a direct forward pass on the clip
    r = rows[2]
    z = load_teacher_features(out, r["id"])
    x = load_audio(corpus / r["audio"], 32000)
    with torch.no_grad():
        o = model(logmel(x, MN04_FRONTEND))
    scale = float(np.abs(o["emb"][0].numpy()).max())
    assert scale > 1e-2
    np.testing.assert_allclose(z["emb"], o["emb"][0].numpy(), rtol=1e-4, atol=1e-4 * scale)
    np.testing.assert_allclose(
        z["frames"].astype(np.float32), o["frames"][0].numpy(), rtol=2e-3, atol=2e-3 * scale
    )
    assert z["frames"].dtype == np.float16 and z["emb"].dtype == np.float32
    probs = torch.sigmoid(o["logits"][0])
    assert int(z["top_idx"][0]) == int(probs.argmax())
    # resume: an existing file is kept as is, a missing one is recomputed identically
    keep = clip_path(out, rows[0]["id"])
    np.savez(
        keep,
        frames=np.zeros((1, 1), np.float16),
        emb=np.zeros(1, np.float32),
        top_idx=np.zeros(5, np.int32),
        top_prob=np.zeros(5, np.float32),
    )
    gone = clip_path(out, rows[1]["id"])
    before = load_teacher_features(out, rows[1]["id"])
    gone.unlink()
    cache_teacher_features(corpus, out, model=model, labels=labels, progress=False)
    assert load_teacher_features(out, rows[0]["id"])["frames"].shape == (1, 1)
    after = load_teacher_features(out, rows[1]["id"])
    np.testing.assert_array_equal(before["top_idx"], after["top_idx"])
    for k in ("frames", "emb", "top_prob"):
        np.testing.assert_allclose(
            before[k].astype(np.float32), after[k].astype(np.float32), rtol=2e-3, atol=1e-4
        )


def test_cache_only_some_splits_and_errors(corpus, tmp_path):
    out = cache_teacher_features(corpus, tmp_path / "v", splits=["val"], model=_model(), progress=False)
    assert len(list((out / "clips").glob("*.npz"))) == len(read_manifest(corpus, ["val"]))
    with pytest.raises(FileNotFoundError, match="no cached teacher features"):
        load_teacher_features(out, "train-single-00000")
    with pytest.raises(ValueError, match="labels"):
        cache_teacher_features(corpus, tmp_path / "w", model=_model(), labels=["a"], progress=False)
    assert main(["--corpus", str(tmp_path / "nowhere"), "--no-progress"]) == 2


def test_yamnet_optional(corpus, tmp_path):
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert not installed (optional: train[yamnet])")
    from earshot_train.shared import shared_path
    from earshot_train.teacher.yamnet import YamnetEmbedder
    from earshot_train.teacher_cache import cache_yamnet_features

    d = shared_path("teachers", "yamnet")
    if d is None:
        pytest.skip("shared teachers/yamnet absent (set EARSHOT_SHARED)")
    emb = YamnetEmbedder(d)
    assert len(emb.labels) == 521
    # a 1 kHz tone: windows every 0.48 s over 2 s -> 1 + ceil((32000 - 15600) / 7680) = 4 windows
    t = np.arange(32000) / 16000
    o = emb.embed((0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32))
    assert o["frames"].shape == (4, 1024) and o["scores"].shape == (4, 521)
    np.testing.assert_allclose(o["emb"], o["frames"].mean(axis=0), rtol=1e-6)
    with pytest.raises(ValueError, match="mono"):
        emb.embed(np.zeros((2, 100), np.float32))
    out = cache_yamnet_features(corpus, tmp_path / "y", splits=["test_single"], embedder=emb, progress=False)
    info = json.loads((out / "teacher_info.json").read_text())
    assert info["emb_dim"] == 1024 and info["frames_shape"][1] == 1024
    dog = shared_path("data", "esc10", "001 - Dog bark", "1-100032-A.ogg")
    if dog is not None:  # sanity: YAMNet hears the dog
        scores = emb.embed(load_audio(dog, 16000))["scores"].max(axis=0)
        top = [emb.labels[i] for i in np.argsort(-scores)[:5]]
        assert "Dog" in top or "Bark" in top, top
