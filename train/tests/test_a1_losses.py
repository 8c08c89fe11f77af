"""Losses against values computed by hand."""

import math

import pytest
import torch

from earshot_train.losses import EncoderInfoNCE, EncoderMSE, KDLoss, caption_ce, info_nce, seq_kd
from earshot_train.tokenizer import PAD


def test_ce_uniform_logits_is_log_v_with_or_without_smoothing():
    logits = torch.zeros(1, 2, 4)
    tgt = torch.tensor([[3, 2]])
    assert caption_ce(logits, tgt).item() == pytest.approx(math.log(4))
    assert caption_ce(logits, tgt, 0.3).item() == pytest.approx(math.log(4))


L6 = math.log(6.0)


def test_ce_label_smoothing_hand_value():
    # one position, V = 5, logits (0, 0, 0, 0, ln 6): p = (.1, .1, .1, .1, .6); target id 4
    logits = torch.tensor([[[0.0, 0.0, 0.0, 0.0, L6]]])
    tgt = torch.tensor([[4]])
    assert caption_ce(logits, tgt).item() == pytest.approx(-math.log(0.6), abs=1e-6)
    # eps = 0.25: target distribution 0.8 on id 4 and 0.05 on each of the four others
    want = -(0.8 * math.log(0.6) + 4 * 0.05 * math.log(0.1))
    assert caption_ce(logits, tgt, 0.25).item() == pytest.approx(want, abs=1e-6)


def test_ce_ignores_pad_and_averages_real_tokens():
    # pos 0: p(target 4) = .6 ; pos 1: PAD target (ignored however wrong) ; pos 2: uniform -> ln 5
    logits = torch.tensor([[[0.0, 0.0, 0.0, 0.0, L6], [0.0, 0.0, 0.0, 0.0, 50.0], [0.0] * 5]])
    tgt = torch.tensor([[4, PAD, 3]])
    want = (-math.log(0.6) + math.log(5.0)) / 2
    assert caption_ce(logits, tgt).item() == pytest.approx(want, abs=1e-6)
    assert seq_kd(logits, tgt).item() == pytest.approx(want, abs=1e-6)


def test_ce_all_pad_is_zero_and_shape_errors():
    assert caption_ce(torch.randn(2, 3, 5), torch.zeros(2, 3, dtype=torch.long)).item() == 0.0
    with pytest.raises(ValueError):
        caption_ce(torch.randn(2, 3, 5), torch.zeros(2, 4, dtype=torch.long))


def test_mse_with_identity_projection():
    m = EncoderMSE(2, 2)
    with torch.no_grad():
        m.proj.weight.copy_(torch.eye(2))
        m.proj.bias.zero_()
    s = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    t = torch.tensor([[0.0, 2.0], [2.0, 0.0]])
    # squared errors 1, 0, 4, 0 -> mean 5/4
    assert m(s, t).item() == pytest.approx(1.25)


def test_info_nce_hand_value_orthogonal_pairs():
    # s = t = identity rows (B=2): cosine matrix [[1,0],[0,1]]; scale 1:
    # each row CE = -log(e / (e + 1)) ; symmetric mean is the same value
    s = torch.eye(2)
    want = -math.log(math.e / (math.e + 1.0))
    assert info_nce(s, s.clone(), 1.0).item() == pytest.approx(want, abs=1e-6)
    # scale 10 and swapped teacher rows: the matching pair has cosine 0, the other 1
    t = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    want2 = -math.log(1.0 / (1.0 + math.exp(10.0)))
    assert info_nce(s, t, 10.0).item() == pytest.approx(want2, rel=1e-5)


def test_info_nce_module_temperature_init_and_clamp():
    m = EncoderInfoNCE(3, 5, proj_dim=4, temperature=0.07, max_scale=100.0)
    assert m.scale().item() == pytest.approx(1 / 0.07, rel=1e-5)
    with torch.no_grad():
        m.logit_scale.fill_(10.0)  # exp(10) > 100: clamped
    assert m.scale().item() == pytest.approx(100.0, rel=1e-5)
    loss = m(torch.randn(4, 3), torch.randn(4, 5))
    loss.backward()
    assert m.student_proj.weight.grad is not None and m.teacher_proj.weight.grad is not None


def test_kd_total_is_weighted_sum():
    cfg = {
        "ce": 2.0,
        "seq_kd": 0.5,
        "enc_mse": 3.0,
        "enc_infonce": 0.0,
        "label_smoothing": 0.0,
        "seq_kd_label_smoothing": 0.0,
        "proj_dim": 4,
        "temperature": 0.07,
        "max_logit_scale": 100.0,
    }
    kd = KDLoss(cfg, 2, 2)
    assert kd.nce is None and kd.mse is not None
    with torch.no_grad():
        kd.mse.proj.weight.copy_(torch.eye(2))
        kd.mse.proj.bias.zero_()
    logits = torch.zeros(1, 1, 4)
    tgt = torch.tensor([[1]])
    total, logs = kd(logits, tgt, logits, tgt, torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 0.0]]))
    want = 2.0 * math.log(4) + 0.5 * math.log(4) + 3.0 * 0.5
    assert total.item() == pytest.approx(want, abs=1e-6)
    assert set(logs) == {"ce", "seq_kd", "enc_mse"}
    with pytest.raises(ValueError):
        kd()
