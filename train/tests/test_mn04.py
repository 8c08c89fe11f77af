"""mn04 teacher: parameter names vs the released state dict, reference outputs, ONNX exportability."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from earshot_train.audio_io import load_audio
from earshot_train.frontend import logmel
from earshot_train.shared import shared_path
from earshot_train.teacher import MN04, MN04_FRONTEND, MN04Tuple, load_mn04, mn04_labels


def _mn04_dir():
    d = shared_path("teachers", "efficientat-mn04")
    if d is None or not (d / "mn04_as_mAP_432.pt").is_file():
        pytest.skip("shared teachers/efficientat-mn04 absent (set EARSHOT_SHARED)")
    return d


def test_forward_shapes_and_pooling():
    torch.manual_seed(0)
    m = MN04().eval()
    mel = torch.randn(2, 128, 1000)
    with torch.no_grad():
        out = m(mel)
    assert out["frames"].shape == (2, 32, 384)  # time stride 32
    assert out["emb"].shape == (2, 384)
    assert out["logits"].shape == (2, 527)
    torch.testing.assert_close(out["emb"], out["frames"].mean(dim=1))
    # the classifier sees the same pooled vector as emb
    with torch.no_grad():
        logits = m.classifier[2:](out["emb"])
    torch.testing.assert_close(logits, out["logits"], rtol=1e-5, atol=1e-5)
    # batch items are independent in eval mode
    with torch.no_grad():
        one = m(mel[1:])
    torch.testing.assert_close(one["emb"][0], out["emb"][1], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="mel"):
        m(torch.zeros(1, 64, 100))


def test_parameter_names_match_released_state_dict():
    d = _mn04_dir()
    rows = [line.split("\t") for line in (d / "state_dict_shapes.tsv").read_text().splitlines()[1:] if line]
    want = {k: tuple(int(s) for s in shape.strip("()").split(",") if s.strip()) for k, shape, _ in rows}
    got = {k: tuple(v.shape) for k, v in MN04().state_dict().items()}
    assert got == want


def test_reproduces_reference_outputs():
    d = _mn04_dir()
    root = d.parents[1]
    refs = json.loads((d / "reference_outputs.json").read_text())
    model = load_mn04(d)
    labels = mn04_labels(d)
    assert len(labels) == 527
    for ref in refs:
        x = load_audio(root / ref["file"], 32000)
        mel = logmel(x, MN04_FRONTEND)
        assert list(mel.shape) == ref["logmel_shape"]
        assert abs(mel.mean().item() - ref["logmel_mean"]) < 1e-4
        np.testing.assert_allclose(mel[0, :5, 0].numpy(), ref["logmel_first5_frame0"], atol=1e-4)
        with torch.no_grad():
            out = model(mel)
        probs = torch.sigmoid(out["logits"][0])
        top = torch.topk(probs, 5)
        assert [labels[i] for i in top.indices.tolist()] == [name for name, _ in ref["top5"]]
        np.testing.assert_allclose(top.values.numpy(), [p for _, p in ref["top5"]], atol=1e-3)
        emb = out["emb"][0]
        assert emb.shape[0] == ref["embedding_dim"]
        np.testing.assert_allclose(emb[:8].numpy(), ref["embedding_first8"], atol=1e-3)
        assert abs(emb.norm().item() - ref["embedding_l2"]) < 1e-3


def test_f_max_15000_would_not_match_reference():
    """The front-end choice is pinned by the data: EfficientAT's training default (15 kHz) is off."""
    d = _mn04_dir()
    ref = json.loads((d / "reference_outputs.json").read_text())[1]
    x = load_audio(d.parents[1] / ref["file"], 32000)
    good = logmel(x, MN04_FRONTEND).mean().item()
    bad = logmel(x, MN04_FRONTEND.replace(f_max=15000.0)).mean().item()
    assert abs(good - ref["logmel_mean"]) < 1e-4 < 1e-2 < abs(bad - ref["logmel_mean"])


def test_onnx_export_matches_torch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(1)
    m = MN04().train()  # the wrapper must switch to eval mode itself
    # non-trivial BatchNorm statistics so that a wrong export would show
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 1.5)
    mel = torch.randn(1, 128, 300)
    path = tmp_path / "mn04.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            MN04Tuple(m),
            (mel,),
            str(path),
            input_names=["mel"],
            output_names=["frames", "emb", "logits"],
            opset_version=17,
            dynamo=False,
        )
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    frames, emb, logits = sess.run(None, {"mel": mel.numpy()})
    with torch.no_grad():
        ref = m(mel)
    np.testing.assert_allclose(frames, ref["frames"].numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(emb, ref["emb"].numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(logits, ref["logits"].numpy(), atol=1e-4, rtol=1e-4)
