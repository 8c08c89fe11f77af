"""SpecAugment-style masking of student log-mel inputs during training (``[augment]`` in the config).

Only the student's input is masked; the KD targets (teacher captions, teacher clip embeddings) come from the
clean clip, so the student learns to reproduce the teacher from a degraded view of the same audio.
Masked cells get the clip's own mean level (the inputs are dB, where 0 would be a loud constant).
"""

from __future__ import annotations

from typing import Any

import torch

KEYS = ("time_masks", "time_width", "freq_masks", "freq_width")


def enabled(cfg: dict[str, Any]) -> bool:
    return any(int(cfg.get(k, 0)) > 0 for k in ("time_masks", "freq_masks"))


def validate(cfg: dict[str, Any]) -> None:
    for k in KEYS:
        v = cfg.get(k, 0)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ValueError(f"config: augment.{k} must be an integer >= 0, got {v!r}")
    for masks, width in (("time_masks", "time_width"), ("freq_masks", "freq_width")):
        if cfg.get(masks, 0) > 0 and cfg.get(width, 0) == 0:
            raise ValueError(f"config: augment.{masks} > 0 needs augment.{width} > 0")


def _mask_axis(
    keep: torch.Tensor, n_masks: int, max_width: int, axis: int, gen: torch.Generator | None
) -> None:
    """Zero ``keep`` [B, F, T] along ``axis`` (1 = mel bins, 2 = frames) in ``n_masks`` random bands."""
    b, size = keep.shape[0], keep.shape[axis]
    max_width = min(max_width, size)
    for _ in range(n_masks):
        width = torch.randint(0, max_width + 1, (b,), generator=gen)
        start = (torch.rand(b, generator=gen) * (size - width + 1).float()).long()
        idx = torch.arange(size).unsqueeze(0)  # [1, size]
        band = (idx >= start.unsqueeze(1)) & (idx < (start + width).unsqueeze(1))  # [B, size]
        shape = (b, size, 1) if axis == 1 else (b, 1, size)
        keep &= ~band.view(shape).to(keep.device)


def spec_augment(mel: torch.Tensor, cfg: dict[str, Any], gen: torch.Generator | None = None) -> torch.Tensor:
    """A masked copy of ``mel`` [B, n_mels, frames]; unchanged when no masks are configured."""
    if not enabled(cfg):
        return mel
    if mel.dim() != 3:
        raise ValueError(f"spec_augment expects [B, n_mels, frames], got {tuple(mel.shape)}")
    keep = torch.ones(mel.shape, dtype=torch.bool, device=mel.device)
    _mask_axis(keep, int(cfg.get("time_masks", 0)), int(cfg.get("time_width", 0)), 2, gen)
    _mask_axis(keep, int(cfg.get("freq_masks", 0)), int(cfg.get("freq_width", 0)), 1, gen)
    fill = mel.mean(dim=(1, 2), keepdim=True).expand_as(mel)
    return torch.where(keep, mel, fill)
