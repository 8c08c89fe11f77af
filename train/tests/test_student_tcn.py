"""The temporal-CNN student encoder (the KD study's student): shapes, errors, ONNX parity."""

import numpy as np
import pytest
import torch

from earshot_train.models.captioner import build_encoder
from earshot_train.models.student_tcn import StudentTCN, StudentTCNConfig


def test_shapes_and_time_stride():
    torch.manual_seed(0)
    m = StudentTCN(StudentTCNConfig(channels=[16, 24, 32], out_dim=40)).eval()
    out = m(torch.randn(2, 64, 1001))
    assert out["memory"].shape == (2, m.n_out_frames(1001), 40) == (2, 126, 40)
    assert out["emb"].shape == (2, 40)
    assert m.time_stride == 8


def test_built_from_config_section():
    enc = build_encoder({"encoder": "tcn", "tcn": {"channels": [8, 8], "out_dim": 12}}, n_mels=32)
    assert isinstance(enc, StudentTCN)
    assert enc.eval()(torch.zeros(1, 32, 100))["memory"].shape == (1, 25, 12)


@pytest.mark.parametrize(
    "kw", [{"kernel": 4}, {"channels": []}, {"channels": [8, 0]}, {"out_dim": 0}, {"blocks_per_stage": 0}]
)
def test_bad_config_is_an_error(kw):
    with pytest.raises(ValueError, match="student_tcn"):
        StudentTCN(StudentTCNConfig(**kw))


def test_wrong_input_shape_is_an_error():
    m = StudentTCN(StudentTCNConfig(channels=[8]))
    with pytest.raises(ValueError, match="expected mel"):
        m(torch.zeros(1, 40, 100))


def test_onnx_export_matches_pytorch(tmp_path):
    import onnxruntime as ort

    torch.manual_seed(1)
    m = StudentTCN(StudentTCNConfig(channels=[16, 24], blocks_per_stage=2, out_dim=20)).eval()
    x = torch.randn(1, 64, 301)

    class Mem(torch.nn.Module):
        def __init__(self, enc):
            super().__init__()
            self.enc = enc

        def forward(self, mel):
            return self.enc(mel)["memory"]

    wrapped = Mem(m).eval()
    want = wrapped(x).detach().numpy()
    path = tmp_path / "enc.onnx"
    torch.onnx.export(
        Mem(m), (x,), str(path), input_names=["mel"], output_names=["memory"], opset_version=17, dynamo=False
    )
    got = ort.InferenceSession(str(path)).run(None, {"mel": x.numpy()})[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-4)
