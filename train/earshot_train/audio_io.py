"""Audio file input/output: mono float32 in [-1, 1], polyphase resampling, 16-bit PCM WAV out."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Polyphase resampling (scipy ``resample_poly``, its default Kaiser window) to ``sr_out``."""
    if sr_in <= 0 or sr_out <= 0:
        raise ValueError(f"resample: sample rates must be positive (got {sr_in} -> {sr_out})")
    x = np.asarray(x, dtype=np.float32)
    if sr_in == sr_out:
        return x
    g = math.gcd(int(sr_in), int(sr_out))
    return resample_poly(x, int(sr_out) // g, int(sr_in) // g).astype(np.float32)


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Read an audio file (WAV, OGG/Vorbis, FLAC, ...), mix to mono, resample to ``sample_rate``.

    Returns a 1-D float32 array. Raises ``ValueError`` with the file name for unreadable or empty files.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"load_audio: no such file: {path}")
    try:
        x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise ValueError(f"load_audio: cannot decode {path}: {e}") from e
    if x.shape[0] == 0:
        raise ValueError(f"load_audio: {path} contains no samples")
    mono = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
    return resample(np.ascontiguousarray(mono), int(sr), int(sample_rate))


def write_wav(path: str | Path, x: np.ndarray, sr: int) -> None:
    """Write mono 16-bit PCM WAV; samples outside [-1, 1] are clipped."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"write_wav: expected mono samples [N], got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("write_wav: samples contain NaN or infinity")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(x, -1.0, 1.0), int(sr), subtype="PCM_16", format="WAV")
