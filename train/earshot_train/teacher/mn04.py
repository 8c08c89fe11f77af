"""EfficientAT ``mn04_as`` (MobileNetV3-Large layout at width 0.4, AudioSet-pretrained), own implementation.

Parameter names match ``shared/teachers/efficientat-mn04/state_dict_shapes.tsv`` so the released
state dict loads with ``strict=True``. The front end is :data:`MN04_FRONTEND` (a
:class:`~earshot_train.frontend.FrontendSpec`); the module takes its log-mel output ``[B, 128, T]``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from earshot_train.frontend import MN04_FRONTEND
from earshot_train.shared import shared_dir

__all__ = ["MN04", "MN04Tuple", "MN04_FRONTEND", "load_mn04", "mn04_labels", "default_mn04_dir"]

WIDTH = 0.4
BN_EPS = 1e-3


def _divisible(v: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor`` without going below 90 % of ``v``."""
    out = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if out < 0.9 * v:
        out += divisor
    return out


@dataclass(frozen=True)
class _Block:
    cin: int
    kernel: int
    expanded: int
    cout: int
    se: bool
    hardswish: bool
    stride: int


# MobileNetV3-Large bneck table (input, kernel, expanded, output, SE, activation HS?, stride), width 1.0
_LARGE = [
    (16, 3, 16, 16, False, False, 1),
    (16, 3, 64, 24, False, False, 2),
    (24, 3, 72, 24, False, False, 1),
    (24, 5, 72, 40, True, False, 2),
    (40, 5, 120, 40, True, False, 1),
    (40, 5, 120, 40, True, False, 1),
    (40, 3, 240, 80, False, True, 2),
    (80, 3, 200, 80, False, True, 1),
    (80, 3, 184, 80, False, True, 1),
    (80, 3, 184, 80, False, True, 1),
    (80, 3, 480, 112, True, True, 1),
    (112, 3, 672, 112, True, True, 1),
    (112, 5, 672, 160, True, True, 2),
    (160, 5, 960, 160, True, True, 1),
    (160, 5, 960, 160, True, True, 1),
]


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: nn.Module | None = None):
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout, eps=BN_EPS, momentum=0.01),
    ]
    if act is not None:
        layers.append(act)
    return nn.Sequential(*layers)


class _SE(nn.Module):
    """Channel squeeze-excitation with linear layers (mean over F,T → fc1 → ReLU → fc2 → sigmoid)."""

    def __init__(self, channels: int):
        super().__init__()
        squeeze = _divisible(channels // 4)
        self.fc1 = nn.Linear(channels, squeeze)
        self.fc2 = nn.Linear(squeeze, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3))
        s = torch.sigmoid(self.fc2(nn.functional.relu(self.fc1(s))))
        return x * s[:, :, None, None]


class _ConcurrentSE(nn.Module):
    """Holder for the ``conc_se_layers.0`` names; with a single (channel) SE, aggregation is identity."""

    def __init__(self, channels: int):
        super().__init__()
        self.conc_se_layers = nn.ModuleList([_SE(channels)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conc_se_layers[0](x)


class _InvertedResidual(nn.Module):
    def __init__(self, b: _Block):
        super().__init__()
        act = nn.Hardswish if b.hardswish else nn.ReLU
        layers: list[nn.Module] = []
        if b.expanded != b.cin:
            layers.append(_conv_bn(b.cin, b.expanded, 1, act=act()))
        layers.append(_conv_bn(b.expanded, b.expanded, b.kernel, b.stride, groups=b.expanded, act=act()))
        if b.se:
            layers.append(_ConcurrentSE(b.expanded))
        layers.append(_conv_bn(b.expanded, b.cout, 1))
        self.block = nn.Sequential(*layers)
        self.residual = b.stride == 1 and b.cin == b.cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.residual else y


class MN04(nn.Module):
    """mn04_as: ``forward(mel [B, 128, T])`` → dict(frames [B, T', 384], emb [B, 384], logits [B, 527]).

    ``frames`` is the last feature map (after ``features.16``) averaged over frequency, a memory
    sequence with a time stride of 32 input frames; ``emb`` is its mean over time (the model's pooled
    384-d embedding); ``logits`` are AudioSet tag logits (apply a sigmoid for probabilities).
    """

    n_mels = 128
    dim = 384
    n_classes = 527

    def __init__(self, width: float = WIDTH, n_classes: int = 527):
        super().__init__()
        blocks = [
            _Block(_divisible(ci * width), k, _divisible(ce * width), _divisible(co * width), se, hs, s)
            for ci, k, ce, co, se, hs, s in _LARGE
        ]
        layers: list[nn.Module] = [_conv_bn(1, blocks[0].cin, 3, 2, act=nn.Hardswish())]
        layers += [_InvertedResidual(b) for b in blocks]
        last_in = blocks[-1].cout
        self.dim = 6 * last_in
        layers.append(_conv_bn(last_in, self.dim, 1, act=nn.Hardswish()))
        self.features = nn.Sequential(*layers)
        hidden = _divisible(1280 * width)
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Flatten(start_dim=1),
            nn.Linear(self.dim, hidden),
            nn.Hardswish(),
            nn.Dropout(p=0.2),
            nn.Linear(hidden, n_classes),
        )
        self.n_classes = n_classes

    def forward(self, mel: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.forward_from(self.maps(mel, 0), 0)

    def maps(self, mel: torch.Tensor, stop: int) -> torch.Tensor:
        """The feature map at the input of ``features[stop]`` ([B, C, F, T]; ``stop = 0``: the mel
        itself as [B, 1, 128, T]). :meth:`forward_from` with the same index finishes the model."""
        if mel.dim() != 3 or mel.shape[1] != self.n_mels:
            raise ValueError(f"MN04 expects mel [B, {self.n_mels}, T], got {tuple(mel.shape)}")
        if not 0 <= stop < len(self.features):
            raise ValueError(f"stop must be in 0..{len(self.features) - 1}, got {stop}")
        return self.features[:stop](mel.unsqueeze(1))

    def forward_from(self, x: torch.Tensor, start: int) -> dict[str, torch.Tensor]:
        """Run ``features[start:]`` and the heads on the map :meth:`maps` returned for ``start``."""
        return self.heads(self.features[start:](x))

    def heads(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """frames / emb / logits from the last feature map [B, 384, F', T']."""
        frames = x.mean(dim=2).transpose(1, 2)  # [B, T', 384]
        emb = frames.mean(dim=1)  # == global average pool of the feature map
        logits = self.classifier(x)
        return {"frames": frames, "emb": emb, "logits": logits}


class MN04Tuple(nn.Module):
    """Export wrapper: ``mel`` → ``(frames, emb, logits)`` as a tuple (ONNX graphs need positional outputs).

    Always in eval mode (BatchNorm with running statistics), whatever mode the wrapped model is in.
    """

    def __init__(self, model: MN04):
        super().__init__()
        self.model = model
        self.eval()

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.model(mel)
        return out["frames"], out["emb"], out["logits"]


def default_mn04_dir() -> Path:
    return shared_dir() / "teachers" / "efficientat-mn04"


def load_mn04(path: str | Path | None = None, device: str | torch.device = "cpu") -> MN04:
    """Load the pretrained ``mn04_as`` state dict (strict) and return the module in eval mode.

    ``path`` is the ``.pt`` file or the folder holding ``mn04_as_mAP_432.pt`` (default: the shared teacher).
    """
    p = Path(path) if path is not None else default_mn04_dir()
    if p.is_dir():
        p = p / "mn04_as_mAP_432.pt"
    if not p.is_file():
        raise FileNotFoundError(f"mn04 weights not found: {p} (set EARSHOT_SHARED or pass the path)")
    state = torch.load(p, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    model = MN04()
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


def mn04_labels(path: str | Path | None = None) -> list[str]:
    """AudioSet display names in logit order (from ``class_labels_indices.csv``)."""
    p = Path(path) if path is not None else default_mn04_dir() / "class_labels_indices.csv"
    if p.is_dir():
        p = p / "class_labels_indices.csv"
    with open(p, newline="") as f:
        rows = list(csv.DictReader(f))
    labels = [""] * len(rows)
    for r in rows:
        labels[int(r["index"])] = r["display_name"]
    return labels
