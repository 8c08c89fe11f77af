"""Encoder + decoder wrapper shared by teacher and students, built from the ``[model]`` config section."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from earshot_train.models.decoder import CaptionDecoder, DecoderConfig
from earshot_train.models.student_cnn import StudentCNN, StudentCNNConfig


class IdentityEncoder(nn.Module):
    """For the teacher: the cached mn04 frame sequence [B, T, D] is already the memory."""

    def __init__(self, dim: int):
        super().__init__()
        self.out_dim = dim

    def forward(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        if frames.dim() != 3 or frames.shape[2] != self.out_dim:
            raise ValueError(f"expected frames [B, T, {self.out_dim}], got {tuple(frames.shape)}")
        return {"memory": frames, "emb": frames.mean(dim=1)}


class TagToken(nn.Module):
    """One extra memory row made from mn04's own AudioSet tag probabilities (``model.tag_token``).

    mn04's tag head is a small MLP on the pooled embedding, a function the decoder's cross-attention
    (weighted means of linearly projected frames) cannot compute; appending ``proj(sigmoid(logits))``
    to the frame sequence lets the decoder read which sources mn04 hears, two at once in a mixture.
    ``head`` is mn04's classifier after its pooling (frozen, ``emb`` [B, 384] -> logits [B, 527]);
    ``proj`` (527 -> frame dim) is trained with the decoder. The bundle's encoder graph appends the
    same row (``export.TeacherEncoder``), so memory is [B, T' + 1, D] in training and at runtime.
    """

    def __init__(self, head: nn.Module, n_tags: int, dim: int):
        super().__init__()
        self.head = head
        for p in self.head.parameters():
            p.requires_grad_(False)
        self.proj = nn.Linear(n_tags, dim)

    def train(self, mode: bool = True) -> TagToken:
        super().train(mode)
        self.head.eval()  # frozen: its dropout stays off while the decoder trains
        return self

    def logits(self, emb: torch.Tensor) -> torch.Tensor:
        return self.head(emb)

    def append(self, frames: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        token = self.proj(torch.sigmoid(logits)).unsqueeze(1)
        return torch.cat([frames, token], dim=1)


def mn04_tag_head(weights: str = "shared") -> nn.Module:
    """mn04's tag head after its pooling: pooled embedding [B, 384] -> AudioSet logits [B, 527]
    (``weights = "random"``: a random mn04, for tests without the shared folder)."""
    from earshot_train.teacher.mn04 import MN04, load_mn04

    mn04 = load_mn04() if weights == "shared" else MN04().eval()
    return nn.Sequential(*list(mn04.classifier)[2:]).eval()  # after AdaptiveAvgPool2d + Flatten


def mn04_tag_token(dim: int, weights: str = "shared") -> TagToken:
    """A :class:`TagToken` on mn04's tag head (:func:`mn04_tag_head`)."""
    from earshot_train.teacher.mn04 import MN04

    return TagToken(mn04_tag_head(weights), MN04.n_classes, dim)


class FramesWithTags(nn.Module):
    """Training encoder for cached mn04 frames with the tag row appended (see :class:`TagToken`)."""

    def __init__(self, dim: int, tag_token: TagToken):
        super().__init__()
        self.out_dim = dim
        self.tag_token = tag_token

    def forward(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        if frames.dim() != 3 or frames.shape[2] != self.out_dim:
            raise ValueError(f"expected frames [B, T, {self.out_dim}], got {tuple(frames.shape)}")
        emb = frames.mean(dim=1)
        logits = self.tag_token.logits(emb)
        return {"memory": self.tag_token.append(frames, logits), "emb": emb, "tags": logits}


class MN04Tuned(nn.Module):
    """mn04 with its last blocks fine-tuned (``model.encoder = "mn04_tuned"``), trained from cached maps.

    Input: mn04's feature map at the input of ``features[maps_at]`` ([B, C, F, T], cached once per
    clip by ``teacher_cache`` with ``maps_at``). ``features[maps_at:train_from]`` stay frozen,
    ``features[train_from:]`` and the tag head (``classifier``) are trained; every BatchNorm keeps
    mn04's running statistics (eval mode in training too), so the exported graph computes what
    training computed. ``base`` is the untouched pretrained mn04: it supplies the frozen part and,
    in training, the targets of the tag and encoder distillation (``teacher_tags``: mn04's logits,
    ``teacher_emb``: its pooled embedding) from the same map — only with ``targets`` (a loss uses them;
    otherwise the frozen pass is skipped). :meth:`to_mn04` returns a whole mn04 with the tuned weights
    in place (what the bundle's encoder runs on the log-mel).
    """

    def __init__(
        self,
        base: nn.Module,
        maps_at: int,
        train_from: int,
        input_dropout: float = 0.0,
        targets: bool = True,
    ):
        super().__init__()
        n = len(base.features)
        if not 1 <= maps_at <= train_from < n:
            raise ValueError(
                f"mn04_tuned needs 1 <= maps_at <= train_from < {n} (got {maps_at}, {train_from})"
            )
        self.base = base.eval()
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.maps_at, self.train_from = maps_at, train_from
        self.top = copy.deepcopy(base.features[train_from:])
        self.classifier = copy.deepcopy(base.classifier)
        for p in [*self.top.parameters(), *self.classifier.parameters()]:
            p.requires_grad_(True)
        self.input_dropout = float(input_dropout)
        self.targets = bool(targets)
        self.out_dim = int(base.dim)

    def train(self, mode: bool = True) -> MN04Tuned:
        super().train(mode)
        self.base.eval()
        for m in self.top.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def forward(self, maps: torch.Tensor) -> dict[str, torch.Tensor]:
        if maps.dim() != 4:
            raise ValueError(f"expected mn04 maps [B, C, F, T], got {tuple(maps.shape)}")
        with torch.no_grad():
            x = self.base.features[self.maps_at : self.train_from](maps)
        if self.training and self.input_dropout > 0:
            x = nn.functional.dropout2d(x, self.input_dropout, training=True)
        y = self.top(x)
        frames = y.mean(dim=2).transpose(1, 2)
        out = {"memory": frames, "emb": frames.mean(dim=1), "tags": self.classifier(y)}
        if self.training and self.targets:
            with torch.no_grad():
                t = self.base.forward_from(x, self.train_from)
            out["teacher_emb"], out["teacher_tags"] = t["emb"], t["logits"]
        return out

    def to_mn04(self) -> nn.Module:
        m = copy.deepcopy(self.base)
        m.features[self.train_from :].load_state_dict(self.top.state_dict())
        m.classifier.load_state_dict(self.classifier.state_dict())
        return m.eval()


def mn04_base(weights: str = "shared", seed: int = 0) -> nn.Module:
    """The pretrained mn04 (``weights = "shared"``) or a seeded random one (tests without shared data)."""
    from earshot_train.teacher.mn04 import MN04, load_mn04

    if weights == "shared":
        return load_mn04()
    torch.manual_seed(seed)
    return MN04().eval()


def build_encoder(model_cfg: dict[str, Any], n_mels: int) -> nn.Module:
    kind = model_cfg.get("encoder", "cnn")
    if kind == "cnn":
        c = dict(model_cfg.get("cnn", {}))
        c.setdefault("n_mels", n_mels)
        return StudentCNN(StudentCNNConfig(**c))
    if kind == "tcn":
        from earshot_train.models.student_tcn import StudentTCN, StudentTCNConfig

        c = dict(model_cfg.get("tcn", {}))
        c.setdefault("n_mels", n_mels)
        return StudentTCN(StudentTCNConfig(**c))
    if kind == "effb2":
        from earshot_train.models.effb2 import EfficientNetB2Encoder

        return EfficientNetB2Encoder(**model_cfg.get("effb2", {}))
    if kind == "teacher_frames":
        dim = int(model_cfg.get("teacher_dim", 384))
        if model_cfg.get("tag_token"):
            return FramesWithTags(dim, mn04_tag_token(dim, model_cfg.get("tag_token_weights", "shared")))
        return IdentityEncoder(dim)
    if kind == "mn04_tuned":
        c = model_cfg.get("mn04_tuned", {})
        base = mn04_base(model_cfg.get("mn04_weights", "shared"), int(model_cfg.get("mn04_seed", 0)))
        return MN04Tuned(
            base,
            int(c.get("maps_at", 12)),
            int(c.get("train_from", 12)),
            float(c.get("input_dropout", 0.0)),
            targets=bool(model_cfg.get("mn04_targets", True)),
        )
    raise ValueError(
        f"model.encoder must be 'cnn', 'tcn', 'effb2', 'teacher_frames' or 'mn04_tuned', got {kind!r}"
    )


class Captioner(nn.Module):
    def __init__(self, encoder: nn.Module, decoder: CaptionDecoder):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def encode(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.encoder(x)
        mem_len = out.get("memory_len")
        if (
            mem_len is not None
        ):  # effb2: attend to the first memory_len frames only (same for the whole batch)
            out = dict(out)
            out["memory"] = out["memory"][:, : int(mem_len)]
        return out

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        enc = self.encode(x)
        return self.decoder(tokens, enc["memory"]), enc


def build_captioner(model_cfg: dict[str, Any], vocab_size: int, n_mels: int) -> Captioner:
    enc = build_encoder(model_cfg, n_mels)
    dcfg = DecoderConfig(vocab_size=vocab_size, memory_dim=enc.out_dim, **model_cfg.get("decoder", {}))
    return Captioner(enc, CaptionDecoder(dcfg))
