"""mn04 split at a feature index (cached maps + the rest) and the fine-tuned encoder built on it
(``models.captioner.MN04Tuned``): training and the exported mn04 compute the same thing."""

import torch

from earshot_train.losses import tag_kd
from earshot_train.models.captioner import MN04Tuned, mn04_base


def _mel(seed: int = 0, frames: int = 200) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 128, frames, generator=g) * 3 - 5


def test_maps_then_forward_from_is_the_whole_model():
    m = mn04_base("random", 3)
    mel = _mel()
    with torch.no_grad():
        whole = m(mel)
        for k in (1, 12, 16):
            part = m.forward_from(m.maps(mel, k), k)
            for key in ("frames", "emb", "logits"):
                torch.testing.assert_close(part[key], whole[key], rtol=1e-5, atol=1e-5)


def test_tuned_encoder_matches_its_exported_mn04_and_keeps_batchnorm_statistics():
    base = mn04_base("random", 3)
    enc = MN04Tuned(base, maps_at=12, train_from=14, input_dropout=0.0)
    with torch.no_grad():  # move the tuned copy away from the base, as training would
        for p in [*enc.top.parameters(), *enc.classifier.parameters()]:
            p.add_(0.05 * torch.randn_like(p))
    enc.train()
    assert all(not m.training for m in enc.top.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert not enc.base.training
    mel = _mel(1)
    with torch.no_grad():
        maps = base.maps(mel, 12)
        enc.eval()
        ours = enc(maps)
        exported = enc.to_mn04()(mel)
        untouched = base(mel)
    torch.testing.assert_close(ours["memory"], exported["frames"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours["tags"], exported["logits"], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(ours["memory"], untouched["frames"], atol=1e-3)
    # in training mode the frozen mn04's own outputs come along as distillation targets
    enc.train()
    with torch.no_grad():
        t = enc(maps)
    torch.testing.assert_close(t["teacher_emb"], untouched["emb"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(t["teacher_tags"], untouched["logits"], rtol=1e-5, atol=1e-5)


def test_tag_kd_is_zero_at_agreement_and_positive_otherwise():
    t = torch.randn(4, 527)
    assert abs(float(tag_kd(t, t))) < 1e-6
    assert float(tag_kd(t + torch.randn(4, 527), t)) > 1e-3


def test_without_targets_the_frozen_pass_is_skipped():
    base = mn04_base("random", 3)
    enc = MN04Tuned(base, maps_at=12, train_from=14, targets=False).train()
    with torch.no_grad():
        out = enc(base.maps(_mel(2), 12))
    assert "teacher_emb" not in out and "teacher_tags" not in out and out["memory"].shape[-1] == 384
