"""Encoder + decoder wrapper shared by teacher and students, built from the ``[model]`` config section."""

from __future__ import annotations

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
    raise ValueError(f"model.encoder must be 'cnn', 'tcn', 'effb2' or 'teacher_frames', got {kind!r}")


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
