"""SpecAugment masking of student inputs: bounds, fill value, determinism, off by default, config checks."""

import pytest
import torch

from earshot_train import augment
from earshot_train.config import load_config

CFG = {"time_masks": 2, "time_width": 10, "freq_masks": 1, "freq_width": 8}


def _mel(b=4, f=64, t=100):
    g = torch.Generator().manual_seed(0)
    return torch.randn(b, f, t, generator=g) * 10 - 40


def test_off_by_default_returns_input_unchanged():
    x = _mel()
    from earshot_train.config import DEFAULTS

    assert augment.spec_augment(x, DEFAULTS["augment"]) is x


def test_masked_cells_get_clip_mean_and_stay_within_widths():
    x = _mel()
    y = augment.spec_augment(x, CFG, torch.Generator().manual_seed(1))
    changed = y != x
    mean = x.mean(dim=(1, 2))
    for b in range(x.shape[0]):
        assert torch.allclose(y[b][changed[b]], mean[b].expand(int(changed[b].sum())))
        # whole frames are masked by time masks: at most 2 bands of <= 10 frames
        full_cols = changed[b].all(dim=0).sum()
        assert full_cols <= 2 * 10
        full_rows = changed[b].all(dim=1).sum()
        assert full_rows <= 8
    assert changed.any(), "with these settings some cells must be masked"


def test_same_generator_seed_same_masks_and_input_not_modified():
    x = _mel()
    before = x.clone()
    a = augment.spec_augment(x, CFG, torch.Generator().manual_seed(3))
    b = augment.spec_augment(x, CFG, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert torch.equal(x, before)


def test_only_freq_masks_leave_frames_partially_intact():
    x = _mel(b=2)
    y = augment.spec_augment(x, {"freq_masks": 2, "freq_width": 5}, torch.Generator().manual_seed(0))
    changed = y != x
    # a frequency band spans every frame: any changed row is changed across the whole clip
    rows = changed.any(dim=2)
    assert torch.equal(rows, changed.all(dim=2))


@pytest.mark.parametrize(
    "bad",
    [{"time_masks": -1}, {"time_masks": 1.5}, {"time_masks": 2, "time_width": 0}, {"freq_masks": True}],
)
def test_bad_settings_are_rejected(bad):
    with pytest.raises(ValueError, match="augment"):
        augment.validate(bad)


def test_unknown_augment_key_is_a_config_error(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[experiment]\nname = "x"\n[augment]\ntime_maks = 2\n')
    with pytest.raises(ValueError, match="augment.time_maks"):
        load_config(p)
