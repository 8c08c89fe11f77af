"""Training losses: caption CE with label smoothing, sequence-level KD, encoder-level KD (MSE, InfoNCE),
tag KD (a tuned mn04's AudioSet tag logits against the frozen mn04's probabilities).

All caption losses ignore ``<pad>`` targets and average over the non-pad target tokens.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from earshot_train.tokenizer import PAD


def caption_ce(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Token CE. logits [B, L, V], targets [B, L] (PAD ignored). With smoothing eps the target distribution
    is (1 - eps) on the target plus eps / V on every word (torch's convention)."""
    if logits.dim() != 3 or targets.shape != logits.shape[:2]:
        raise ValueError(f"caption_ce: logits {tuple(logits.shape)} vs targets {tuple(targets.shape)}")
    if not bool((targets != PAD).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(),
        targets.reshape(-1),
        ignore_index=PAD,
        label_smoothing=label_smoothing,
    )


def seq_kd(logits: torch.Tensor, teacher_targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Sequence-level KD: CE on the teacher's (beam-search) captions; works for clips without references."""
    return caption_ce(logits, teacher_targets, label_smoothing)


class EncoderMSE(nn.Module):
    """MSE between a linear projection of the student's pooled embedding and the teacher's embedding."""

    def __init__(self, student_dim: int, teacher_dim: int):
        super().__init__()
        self.proj = nn.Linear(student_dim, teacher_dim)

    def forward(self, student_emb: torch.Tensor, teacher_emb: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(self.proj(student_emb), teacher_emb)


class EncoderInfoNCE(nn.Module):
    """Symmetric contrastive loss between student and teacher clip embeddings.

    Both sides go through a linear projection head to ``proj_dim`` and are L2-normalised; logits are
    ``exp(logit_scale) * s @ t.T`` with a learnable ``logit_scale`` initialised to ``ln(1 / temperature)``
    and clamped to ``[0, ln(max_logit_scale)]``; loss = mean of the row-wise (student->teacher) and
    column-wise (teacher->student) cross-entropies with the matching pair as the target.
    """

    def __init__(
        self,
        student_dim: int,
        teacher_dim: int,
        proj_dim: int = 256,
        temperature: float = 0.07,
        max_scale=100.0,
    ):
        super().__init__()
        self.student_proj = nn.Linear(student_dim, proj_dim)
        self.teacher_proj = nn.Linear(teacher_dim, proj_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))
        self.max_log_scale = math.log(max_scale)

    def scale(self) -> torch.Tensor:
        return self.logit_scale.clamp(0.0, self.max_log_scale).exp()

    def forward(self, student_emb: torch.Tensor, teacher_emb: torch.Tensor) -> torch.Tensor:
        return info_nce(self.student_proj(student_emb), self.teacher_proj(teacher_emb), self.scale())


def info_nce(s: torch.Tensor, t: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """Symmetric InfoNCE of already-projected embeddings s, t [B, D] (normalised here)."""
    if s.shape[0] != t.shape[0]:
        raise ValueError("info_nce: batch sizes differ")
    s = F.normalize(s, dim=-1)
    t = F.normalize(t, dim=-1)
    logits = scale * s @ t.t()
    target = torch.arange(s.shape[0], device=s.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def tag_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the student's tag logits against the teacher's tag probabilities, minus
    the teacher's own entropy (so 0 when they agree), averaged over clips and tags."""
    p = torch.sigmoid(teacher_logits.float())
    bce = F.binary_cross_entropy_with_logits(student_logits.float(), p)
    own = F.binary_cross_entropy_with_logits(teacher_logits.float(), p)
    return bce - own


class KDLoss(nn.Module):
    """The weighted total: ce * CE + seq_kd * SeqKD + enc_mse * MSE + enc_infonce * InfoNCE + tag_kd * TagKD.

    Only the terms with a non-zero weight are computed; projection heads exist only for those terms.
    """

    def __init__(self, loss_cfg: dict, student_dim: int, teacher_dim: int):
        super().__init__()
        self.w = {
            k: float(loss_cfg.get(k, 0.0)) for k in ("ce", "seq_kd", "enc_mse", "enc_infonce", "tag_kd")
        }
        self.ls = float(loss_cfg["label_smoothing"])
        self.kd_ls = float(loss_cfg["seq_kd_label_smoothing"])
        self.mse = EncoderMSE(student_dim, teacher_dim) if self.w["enc_mse"] > 0 else None
        self.nce = (
            EncoderInfoNCE(
                student_dim,
                teacher_dim,
                int(loss_cfg["proj_dim"]),
                float(loss_cfg["temperature"]),
                float(loss_cfg["max_logit_scale"]),
            )
            if self.w["enc_infonce"] > 0
            else None
        )

    def forward(
        self,
        logits_ref: torch.Tensor | None = None,
        targets_ref: torch.Tensor | None = None,
        logits_kd: torch.Tensor | None = None,
        targets_kd: torch.Tensor | None = None,
        student_emb: torch.Tensor | None = None,
        teacher_emb: torch.Tensor | None = None,
        student_tags: torch.Tensor | None = None,
        teacher_tags: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        parts: dict[str, torch.Tensor] = {}
        if self.w["ce"] > 0 and logits_ref is not None:
            parts["ce"] = caption_ce(logits_ref, targets_ref, self.ls)
        if self.w["seq_kd"] > 0 and logits_kd is not None:
            parts["seq_kd"] = seq_kd(logits_kd, targets_kd, self.kd_ls)
        if self.mse is not None and student_emb is not None:
            parts["enc_mse"] = self.mse(student_emb, teacher_emb)
        if self.nce is not None and student_emb is not None and student_emb.shape[0] > 1:
            parts["enc_infonce"] = self.nce(student_emb, teacher_emb)
        if self.w["tag_kd"] > 0 and student_tags is not None and teacher_tags is not None:
            parts["tag_kd"] = tag_kd(student_tags, teacher_tags)
        if not parts:
            raise ValueError("KDLoss: no loss term was computed (check the weights and the batch)")
        total = sum(self.w[k] * v for k, v in parts.items())
        logs = {k: float(v.detach()) for k, v in parts.items()}
        if self.nce is not None:
            logs["logit_scale"] = float(self.nce.scale().detach())
        return total, logs
