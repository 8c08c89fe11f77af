"""Where the read-only shared data lives: ``$EARSHOT_SHARED``, default ``<repo>/../shared``."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    """The shared folder path (it may not exist: check with :func:`shared_path`)."""
    env = os.environ.get("EARSHOT_SHARED")
    return Path(env) if env else (REPO_ROOT.parent / "shared")


def shared_path(*parts: str) -> Path | None:
    """``shared_dir()/parts...`` if it exists, else ``None`` (callers skip or fail with a clear message)."""
    p = shared_dir().joinpath(*parts)
    return p if p.exists() else None


def require_shared(*parts: str) -> Path:
    """Like :func:`shared_path` but raises ``FileNotFoundError`` naming the variable to set."""
    p = shared_path(*parts)
    if p is None:
        raise FileNotFoundError(
            f"shared data not found: {shared_dir().joinpath(*parts)} "
            "(set EARSHOT_SHARED to the folder holding data/ and teachers/)"
        )
    return p
