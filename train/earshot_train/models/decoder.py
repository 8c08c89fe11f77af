"""Transformer caption decoder (post-norm, ReLU FFN, tied word embedding, sinusoidal positions).

Parameter names follow the paper's released student (``word_embedding``, ``pos_encoder.pe``,
``model.layers.N.{self_attn,multihead_attn,linear1,linear2,norm1..3}``, ``classifier``, ``attn_proj.{0,3}``)
so that a converted checkpoint loads with ``load_state_dict``. The attention is written out with plain
MatMul/Softmax so the exported ONNX graph stays simple for tract.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class DecoderConfig:
    vocab_size: int
    memory_dim: int
    d_model: int = 256
    n_heads: int = 4
    n_layers: int = 2
    ffn_dim: int = 1024
    dropout: float = 0.2
    max_positions: int = 100
    tie_weights: bool = True

    def validate(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} not divisible by n_heads {self.n_heads}")
        if self.d_model % 2:
            raise ValueError("d_model must be even for sinusoidal positions")
        for k in ("vocab_size", "memory_dim", "d_model", "n_layers", "ffn_dim", "max_positions"):
            if getattr(self, k) < 1:
                raise ValueError(f"decoder {k} must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("decoder dropout must be in [0, 1)")


class LayerNorm(nn.Module):
    """LayerNorm over the last axis, written with elementary ops (ReduceMean/Sub/Mul/Sqrt/Div in ONNX)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(-1, keepdim=True)
        xc = x - mean
        var = (xc * xc).mean(-1, keepdim=True)
        return xc / torch.sqrt(var + self.eps) * self.weight + self.bias


class Attention(nn.Module):
    """Multi-head attention with ``nn.MultiheadAttention``'s parameter layout (packed in_proj)."""

    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.d_model, self.n_heads = d_model, n_heads
        self.head_dim = d_model // n_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n = x.shape[0], x.shape[1]
        return x.reshape(b, n, self.n_heads, self.head_dim).transpose(1, 2)  # [B,H,N,dh]

    def forward(self, q_in: torch.Tensor, kv_in: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        d = self.d_model
        w, bias = self.in_proj_weight, self.in_proj_bias
        q = torch.matmul(q_in, w[:d].t()) + bias[:d]
        k = torch.matmul(kv_in, w[d : 2 * d].t()) + bias[d : 2 * d]
        v = torch.matmul(kv_in, w[2 * d :].t()) + bias[2 * d :]
        q, k, v = self._split(q), self._split(k), self._split(v)
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_dim))
        if mask is not None:
            scores = scores + mask
        attn = self.dropout(torch.softmax(scores, dim=-1))
        out = torch.matmul(attn, v).transpose(1, 2)
        out = out.reshape(out.shape[0], out.shape[1], d)
        return self.out_proj(out)


class DecoderLayer(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.self_attn = Attention(cfg.d_model, cfg.n_heads, cfg.dropout)
        self.multihead_attn = Attention(cfg.d_model, cfg.n_heads, cfg.dropout)
        self.linear1 = nn.Linear(cfg.d_model, cfg.ffn_dim)
        self.linear2 = nn.Linear(cfg.ffn_dim, cfg.d_model)
        self.norm1 = LayerNorm(cfg.d_model)
        self.norm2 = LayerNorm(cfg.d_model)
        self.norm3 = LayerNorm(cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, causal: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.drop(self.self_attn(x, x, causal)))
        x = self.norm2(x + self.drop(self.multihead_attn(x, memory, None)))
        x = self.norm3(x + self.drop(self.linear2(self.drop(torch.relu(self.linear1(x))))))
        return x


class _Layers(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.n_layers))


class PositionalEncoding(nn.Module):
    def __init__(self, d_model: int, max_positions: int):
        super().__init__()
        pos = torch.arange(max_positions, dtype=torch.float64)[:, None]
        div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float64) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_positions, 1, d_model, dtype=torch.float64)
        pe[:, 0, 0::2] = torch.sin(pos * div)
        pe[:, 0, 1::2] = torch.cos(pos * div)
        self.register_buffer("pe", pe.float())  # [max_positions, 1, d] (released checkpoint layout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B, L, d]
        return x + self.pe[: x.shape[1], 0, :].unsqueeze(0)


class CaptionDecoder(nn.Module):
    """tokens [B, L] + memory [B, T, memory_dim] -> logits [B, L, V]."""

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.word_embedding = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_encoder = PositionalEncoding(cfg.d_model, cfg.max_positions)
        self.in_dropout = nn.Dropout(cfg.dropout)
        self.attn_proj = nn.Sequential(
            nn.Linear(cfg.memory_dim, cfg.d_model), nn.ReLU(), nn.Dropout(cfg.dropout), LayerNorm(cfg.d_model)
        )
        self.model = _Layers(cfg)
        self.classifier = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        nn.init.normal_(self.word_embedding.weight, std=cfg.d_model**-0.5)
        if cfg.tie_weights:
            self.classifier.weight = self.word_embedding.weight

    def project_memory(self, memory: torch.Tensor) -> torch.Tensor:
        return self.attn_proj(memory)

    def forward(self, tokens: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        n = tokens.shape[1]
        if n > self.cfg.max_positions:
            raise ValueError(f"token prefix of {n} exceeds max_positions {self.cfg.max_positions}")
        mem = self.project_memory(memory)
        x = self.in_dropout(self.word_embedding(tokens)) * math.sqrt(self.cfg.d_model)
        x = self.in_dropout(self.pos_encoder(x))
        idx = torch.arange(n, device=tokens.device)
        causal = (idx[None, :] > idx[:, None]).to(x.dtype) * -1e9  # [L, L], 0 on/below diagonal
        for layer in self.model.layers:
            x = layer(x, mem, causal)
        return self.classifier(x)

    def last_logits(self, tokens: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """The runtime contract: logits for the token after the last prefix position, [B, V]."""
        return self.forward(tokens, memory)[:, -1, :]


class LastLogits(nn.Module):
    """Export wrapper: (tokens, memory) -> logits [B, V]."""

    def __init__(self, decoder: CaptionDecoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, tokens: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        return self.decoder.last_logits(tokens, memory)
