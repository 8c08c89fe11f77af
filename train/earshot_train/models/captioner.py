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
        return IdentityEncoder(int(model_cfg.get("teacher_dim", 384)))
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
