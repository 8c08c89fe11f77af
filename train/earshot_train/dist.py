"""Distributed data parallel helpers (torchrun): NCCL on CUDA, gloo on CPU; a no-op when not launched."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_launched() -> bool:
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def setup(device: torch.device) -> tuple[int, int]:
    """Initialise the process group when launched by torchrun; returns (rank, world_size)."""
    if not is_launched():
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    return dist.get_rank(), dist.get_world_size()


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def all_reduce_mean(x: float, device: torch.device) -> float:
    if world_size() == 1:
        return x
    t = torch.tensor([x], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / world_size()
