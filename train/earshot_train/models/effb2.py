"""EfficientNet-B2 audio encoder with one input channel and frequency-mean pooling.

This is the encoder of the paper's released student (Xu et al. 2024, "effb2-trm"): log-mel (dB)
``[B, 64, frames]`` -> EfficientNet-B2 feature map ``[B, 1408, F/32, frames/32]`` -> mean over frequency
-> memory ``[B, frames/32, 1408]``. Parameter names follow the efficientnet_pytorch layout used by the
released checkpoint (``_conv_stem``, ``_bn0``, ``_blocks.N.{_expand_conv,_bn0,_depthwise_conv,_bn1,
_se_reduce,_se_expand,_project_conv,_bn2}``, ``_conv_head``, ``_bn1``) under ``backbone.eff_net.``, so a
converted checkpoint loads with ``load_state_dict``.

Architecture facts (EfficientNet-B2 = B0 scaled by width 1.1, depth 1.2):

- stem: 3x3 stride-2 conv 1 -> 32 channels, BatchNorm, swish;
- 7 stages of MBConv blocks (kernel, stride, expand ratio, out channels, repeats):
  (3,1,1,16,2) (3,2,6,24,3) (5,2,6,48,3) (3,2,6,88,4) (5,1,6,120,4) (5,2,6,208,5) (3,1,6,352,2);
  each block: [1x1 expand, BN, swish] (expand ratio != 1) -> depthwise kxk (stride on the stage's first
  block), BN, swish -> squeeze-excitation (global mean, 1x1 reduce to max(1, in/4), swish, 1x1 expand,
  sigmoid, scale) -> 1x1 project, BN -> identity skip when stride 1 and in == out (drop-connect when
  training);
- head: 1x1 conv 352 -> 1408, BN, swish. BatchNorm eps 1e-3.

"Same" padding: TensorFlow-style (total padding ``max((ceil(i/s)-1)*s + k - i, 0)``, the extra pixel on
the right/bottom). ``padding="static"`` computes it once per conv for a square ``image_size`` input (260
for B2), as efficientnet_pytorch does when the model is built with an image size — the released student
was built that way (this reproduces its reference outputs; ``"dynamic"`` does not); ``"dynamic"`` computes
it from each input's actual size.

Time downsampling is 32: ``frames`` -> ``ceil``-like ``T = frames/32`` (501 -> 16, 1001 -> 32). The
released model attends only to the first ``frames // 32`` memory frames (``memory_len``; frames =
floor(samples/160) + 1), which can be one less than T. Fewer than 32 frames gives no usable memory: a
``ValueError``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# (kernel, stride, expand_ratio, in_channels, out_channels, repeats) of EfficientNet-B0.
B0_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (3, 1, 1, 32, 16, 1),
    (3, 2, 6, 16, 24, 2),
    (5, 2, 6, 24, 40, 2),
    (3, 2, 6, 40, 80, 3),
    (5, 1, 6, 80, 112, 3),
    (5, 2, 6, 112, 192, 4),
    (3, 1, 6, 192, 320, 1),
)
SE_RATIO = 0.25
BN_EPS = 1e-3
BN_MOMENTUM = 0.01
TIME_STRIDE = 32


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """Scale a channel count by ``width`` and round to a multiple of ``divisor`` (never down by >10 %)."""
    c = channels * width
    new = max(divisor, int(c + divisor / 2) // divisor * divisor)
    if new < 0.9 * c:
        new += divisor
    return int(new)


def round_repeats(repeats: int, depth: float) -> int:
    return int(math.ceil(depth * repeats))


def same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "same" padding (before, after) for one axis."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """Conv2d with TF-style "same" padding, static (for a fixed square image size) or dynamic."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        stride: int = 1,
        groups: int = 1,
        bias: bool = False,
        image_size: int | None = None,
    ):
        super().__init__(cin, cout, kernel, stride=stride, padding=0, groups=groups, bias=bias)
        self.static_pad: tuple[int, int, int, int] | None = None
        if image_size is not None:
            lo, hi = same_pad(image_size, kernel, stride)
            self.static_pad = (lo, hi, lo, hi)  # (left, right, top, bottom)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.static_pad is not None:
            pad = self.static_pad
        else:
            k, s = self.kernel_size[0], self.stride[0]
            ph = same_pad(int(x.shape[-2]), k, s)
            pw = same_pad(int(x.shape[-1]), k, s)
            pad = (pw[0], pw[1], ph[0], ph[1])
        left, right, top, bottom = pad
        if left == right and top == bottom:  # symmetric: the conv's own zero padding (no Pad op in ONNX)
            return F.conv2d(x, self.weight, self.bias, self.stride, (top, left), self.dilation, self.groups)
        x = F.pad(x, pad)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        stride: int,
        expand: int,
        image_size: int | None,
        drop_connect: float = 0.0,
    ):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(cin, mid, 1, image_size=image_size)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid, image_size=image_size)
        self._bn1 = _bn(mid)
        squeezed = max(1, int(cin * SE_RATIO))
        self._se_reduce = nn.Conv2d(mid, squeezed, 1)
        self._se_expand = nn.Conv2d(squeezed, mid, 1)
        self._project_conv = SameConv2d(mid, cout, 1)
        self._bn2 = _bn(cout)
        self.skip = stride == 1 and cin == cout
        self.drop_connect = drop_connect

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs
        if self.has_expand:
            x = swish(self._bn0(self._expand_conv(x)))
        x = swish(self._bn1(self._depthwise_conv(x)))
        s = x.mean(dim=(2, 3), keepdim=True)
        s = self._se_expand(swish(self._se_reduce(s)))
        x = x * torch.sigmoid(s)
        x = self._bn2(self._project_conv(x))
        if self.skip:
            if self.training and self.drop_connect > 0:
                keep = 1.0 - self.drop_connect
                mask = torch.floor(keep + torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device))
                x = x / keep * mask
            x = x + inputs
        return x


class EfficientNetFeatures(nn.Module):
    """EfficientNet trunk without the classification top: [B, C_in, H, W] -> [B, head, H/32, W/32]."""

    def __init__(
        self,
        in_channels: int = 1,
        width: float = 1.1,
        depth: float = 1.2,
        image_size: int | None = 260,
        drop_connect_rate: float = 0.2,
    ):
        super().__init__()
        size = image_size
        stem = round_filters(32, width)
        self._conv_stem = SameConv2d(in_channels, stem, 3, 2, image_size=size)
        self._bn0 = _bn(stem)
        size = None if size is None else math.ceil(size / 2)
        specs: list[tuple[int, int, int, int, int, int | None]] = []
        for k, s, e, cin, cout, r in B0_STAGES:
            cin, cout = round_filters(cin, width), round_filters(cout, width)
            for i in range(round_repeats(r, depth)):
                stride = s if i == 0 else 1
                specs.append((cin if i == 0 else cout, cout, k, stride, e, size))
                if i == 0 and size is not None:
                    size = math.ceil(size / s)
        n = len(specs)
        self._blocks = nn.ModuleList(
            MBConvBlock(ci, co, k, st, e, sz, drop_connect_rate * idx / n)
            for idx, (ci, co, k, st, e, sz) in enumerate(specs)
        )
        head_in = specs[-1][1]
        self.out_channels = round_filters(1280, width)
        self._conv_head = SameConv2d(head_in, self.out_channels, 1)
        self._bn1 = _bn(self.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = swish(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return swish(self._bn1(self._conv_head(x)))


class _Backbone(nn.Module):
    def __init__(self, **kwargs):
        super().__init__()
        self.eff_net = EfficientNetFeatures(**kwargs)


def memory_len_for_frames(frames: int) -> int:
    """Memory frames the released model attends to: frames // 32 (frames = floor(samples/hop) + 1)."""
    return int(frames) // TIME_STRIDE


def memory_len_for_samples(samples: int, hop_length: int = 160) -> int:
    """The manifest's ``memory_len: "effb2"``: floor((floor(samples/hop) + 1) / 32)."""
    return (int(samples) // int(hop_length) + 1) // TIME_STRIDE


class EfficientNetB2Encoder(nn.Module):
    """log-mel ``[B, n_mels, frames]`` -> ``{"memory": [B, T, 1408], "emb": [B, 1408], "memory_len": int}``.

    ``memory`` is the full encoder output (T = frames/32 rounded as the padding dictates); ``memory_len``
    (= frames // 32) is how many leading frames the decoder may attend to; ``emb`` is the mean of those
    frames (the released model's ``fc_emb``).
    """

    def __init__(
        self,
        n_mels: int = 64,
        in_channels: int = 1,
        padding: str = "static",
        image_size: int = 260,
        width: float = 1.1,
        depth: float = 1.2,
        drop_connect_rate: float = 0.2,
    ):
        super().__init__()
        if padding not in ("static", "dynamic"):
            raise ValueError(f"effb2 padding must be 'static' or 'dynamic', got {padding!r}")
        if in_channels != 1:
            raise ValueError("effb2 encoder takes one input channel (log-mel)")
        self.n_mels = n_mels
        self.padding = padding
        self.backbone = _Backbone(
            in_channels=in_channels,
            width=width,
            depth=depth,
            image_size=image_size if padding == "static" else None,
            drop_connect_rate=drop_connect_rate,
        )
        self.out_dim = self.backbone.eff_net.out_channels
        self.time_stride = TIME_STRIDE

    def features(self, mel: torch.Tensor) -> torch.Tensor:
        """[B, n_mels, frames] -> [B, T, out_dim] (all T frames)."""
        if mel.dim() != 3 or mel.shape[1] != self.n_mels:
            raise ValueError(f"expected mel [B, {self.n_mels}, frames], got {tuple(mel.shape)}")
        if mel.shape[2] < TIME_STRIDE:
            raise ValueError(
                f"effb2 encoder needs at least {TIME_STRIDE} frames (~{TIME_STRIDE * 10} ms of audio at hop "
                f"10 ms); got {mel.shape[2]}: the clip is too short for this model"
            )
        x = self.backbone.eff_net(mel.unsqueeze(1))  # [B, C, F', T']
        return x.mean(dim=2).transpose(1, 2)

    def forward(self, mel: torch.Tensor) -> dict[str, torch.Tensor]:
        memory = self.features(mel)
        n = memory_len_for_frames(mel.shape[2])
        return {"memory": memory, "emb": memory[:, :n].mean(dim=1), "memory_len": n}

    def n_out_frames(self, frames: int) -> int:
        with torch.no_grad():
            return int(self.features(torch.zeros(1, self.n_mels, frames)).shape[1])
