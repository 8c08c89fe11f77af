"""Small CNN student encoder: log-mel [B, n_mels, frames] -> memory [B, T, D] + pooled clip embedding [B, D].

Layout: per-mel-bin input BatchNorm, a strided 3x3 stem, then stages of depthwise-separable blocks (the first
block of each stage strided by 2 in time and frequency), a 1x1 head to ``out_dim``, mean over frequency.
The time axis is downsampled by 2 ** (1 + len(channels)) (32 by default: 1001 frames -> 32). Only
Conv/BatchNorm/Relu/ReduceMean in the graph, which tract handles well.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class StudentCNNConfig:
    n_mels: int = 64
    stem_channels: int = 24
    channels: list[int] = field(default_factory=lambda: [48, 96, 144, 192])
    blocks_per_stage: int = 2
    out_dim: int = 256
    dropout: float = 0.1

    def validate(self) -> None:
        if self.n_mels < 1 or self.stem_channels < 1 or self.out_dim < 1 or self.blocks_per_stage < 1:
            raise ValueError("student_cnn sizes must be >= 1")
        if not self.channels or any(c < 1 for c in self.channels):
            raise ValueError("student_cnn channels must be a non-empty list of positive ints")


def _bn_relu(c: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(c), nn.ReLU()]


class DSBlock(nn.Module):
    """Depthwise 3x3 (optionally strided) + pointwise 1x1, residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.dw = nn.Sequential(nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), *_bn_relu(cin))
        self.pw = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw(self.dw(x))
        return torch.relu(x + y if self.residual else y)


class StudentCNN(nn.Module):
    def __init__(self, cfg: StudentCNNConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.input_norm = nn.BatchNorm1d(cfg.n_mels)
        self.stem = nn.Sequential(
            nn.Conv2d(1, cfg.stem_channels, 3, 2, 1, bias=False), *_bn_relu(cfg.stem_channels)
        )
        blocks: list[nn.Module] = []
        cin = cfg.stem_channels
        for c in cfg.channels:
            for i in range(cfg.blocks_per_stage):
                blocks.append(DSBlock(cin, c, 2 if i == 0 else 1))
                cin = c
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Conv2d(cin, cfg.out_dim, 1, bias=False), *_bn_relu(cfg.out_dim))
        self.dropout = nn.Dropout(cfg.dropout)
        self.out_dim = cfg.out_dim
        self.time_stride = 2 ** (1 + len(cfg.channels))

    def forward(self, mel: torch.Tensor) -> dict[str, torch.Tensor]:
        if mel.dim() != 3 or mel.shape[1] != self.cfg.n_mels:
            raise ValueError(f"expected mel [B, {self.cfg.n_mels}, frames], got {tuple(mel.shape)}")
        x = self.input_norm(mel).unsqueeze(1)  # [B,1,F,T]
        x = self.head(self.blocks(self.stem(x)))  # [B,D,F',T']
        memory = self.dropout(x.mean(dim=2).transpose(1, 2))  # [B,T',D]
        emb = memory.mean(dim=1) + memory.amax(dim=1)
        return {"memory": memory, "emb": emb}

    def n_out_frames(self, frames: int) -> int:
        t = frames
        for _ in range(1 + len(self.cfg.channels)):
            t = (t - 1) // 2 + 1
        return t
