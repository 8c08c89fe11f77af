"""Parameterised log-mel front end, exactly as specified in ``docs/bundle-format.md``.

The same :class:`FrontendSpec` is written into a bundle's ``manifest.json`` (key ``frontend``) and
re-implemented by the Rust runtime; ``tests/golden/frontend/*.json`` (written by
:func:`write_frontend_goldens`) pins both implementations to the same numbers.

Pure torch/numpy: the mel matrix is built in float64 and cast to float32; the STFT runs in the
dtype of the input (float32 by default).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

WINDOWS = ("hann_periodic", "hann_symmetric")
PAD_MODES = ("reflect", "constant")
MEL_SCALES = ("htk", "slaney", "kaldi")
MEL_NORMS = ("none", "slaney")
LOGS = ("ln", "db")


@dataclass(frozen=True)
class FrontendSpec:
    """The manifest ``frontend`` object. Field names are the manifest keys, one to one."""

    sample_rate: int = 16000
    preemphasis: float = 0.0
    n_fft: int = 512
    win_length: int = 512
    hop_length: int = 160
    window: str = "hann_periodic"
    center: bool = True
    pad_mode: str = "reflect"
    power: float = 2.0
    n_mels: int = 64
    f_min: float = 0.0
    f_max: float = 8000.0
    mel_scale: str = "htk"
    mel_norm: str = "none"
    log: str = "db"
    log_offset: float = 1e-5
    amin: float = 1e-10
    db_ref: float = 1.0
    top_db: float | None = 120.0
    norm_add: float = 0.0
    norm_div: float = 1.0

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ validation / (de)serialisation
    def validate(self) -> None:
        def bad(key: str, why: str) -> ValueError:
            return ValueError(f"frontend.{key}: {why} (got {getattr(self, key)!r})")

        for key in ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise bad(key, "must be a positive integer")
        if self.n_fft % 2:
            raise bad("n_fft", "must be even")
        if self.win_length > self.n_fft:
            raise bad("win_length", f"must be <= n_fft ({self.n_fft})")
        if self.window not in WINDOWS:
            raise bad("window", f"must be one of {WINDOWS}")
        if not isinstance(self.center, bool):
            raise bad("center", "must be true or false")
        if self.pad_mode not in PAD_MODES:
            raise bad("pad_mode", f"must be one of {PAD_MODES}")
        if self.mel_scale not in MEL_SCALES:
            raise bad("mel_scale", f"must be one of {MEL_SCALES}")
        if self.mel_norm not in MEL_NORMS:
            raise bad("mel_norm", f"must be one of {MEL_NORMS}")
        if self.mel_scale == "kaldi" and self.mel_norm != "none":
            raise bad("mel_norm", "kaldi mel banks are never normalised; use 'none'")
        if self.log not in LOGS:
            raise bad("log", f"must be one of {LOGS}")
        for key in ("preemphasis", "power", "f_min", "f_max", "log_offset", "amin", "db_ref", "norm_add"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise bad(key, "must be a finite number")
        if not 0.0 <= self.preemphasis < 1.0:
            raise bad("preemphasis", "must be in [0, 1)")
        if self.power <= 0:
            raise bad("power", "must be > 0")
        if not 0.0 <= self.f_min < self.f_max:
            raise bad("f_min", f"must satisfy 0 <= f_min < f_max ({self.f_max})")
        if self.f_max > self.sample_rate / 2:
            raise bad("f_max", f"must be <= sample_rate/2 ({self.sample_rate / 2})")
        if self.log_offset <= 0:
            raise bad("log_offset", "must be > 0")
        if self.amin <= 0:
            raise bad("amin", "must be > 0")
        if self.db_ref <= 0:
            raise bad("db_ref", "must be > 0")
        if self.top_db is not None and (
            isinstance(self.top_db, bool)
            or not isinstance(self.top_db, (int, float))
            or not math.isfinite(self.top_db)
            or self.top_db <= 0
        ):
            raise bad("top_db", "must be null or a positive number")
        if (
            isinstance(self.norm_div, bool)
            or not isinstance(self.norm_div, (int, float))
            or not math.isfinite(self.norm_div)
            or self.norm_div == 0
        ):
            raise bad("norm_div", "must be a finite non-zero number")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for key in (
            "preemphasis",
            "power",
            "f_min",
            "f_max",
            "log_offset",
            "amin",
            "db_ref",
            "norm_add",
            "norm_div",
        ):
            d[key] = float(d[key])
        if d["top_db"] is not None:
            d["top_db"] = float(d["top_db"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FrontendSpec:
        """Build and validate a spec from a manifest ``frontend`` object.

        Every field is required; unknown keys are ignored (forward compatibility, as for the manifest).
        """
        if not isinstance(d, dict):
            raise ValueError(f"frontend: expected an object, got {type(d).__name__}")
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in d:
                raise ValueError(f"frontend.{f.name}: missing")
            v = d[f.name]
            if f.name in ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels"):
                if isinstance(v, float) and v.is_integer():
                    v = int(v)
            kwargs[f.name] = v
        return cls(**kwargs)

    def replace(self, **changes: Any) -> FrontendSpec:
        return dataclasses.replace(self, **changes)


#: The paper's student front end (also the released effb2 model's): 16 kHz, 64 HTK mels, dB, top_db 120.
STUDENT_SPEC = FrontendSpec()

#: EfficientAT mn04_as front end (AugmentMelSTFT in eval mode). f_max is 16000 Hz (Nyquist), not
#: EfficientAT's training default of 15000 Hz: 16000 reproduces the reference log-mels in
#: ``shared/teachers/efficientat-mn04/reference_outputs.json`` exactly (means agree to 1e-7), 15000
#: is off by ~0.03 (checked by ``tests/test_mn04.py``).
MN04_FRONTEND = FrontendSpec(
    sample_rate=32000,
    preemphasis=0.97,
    n_fft=1024,
    win_length=800,
    hop_length=320,
    window="hann_symmetric",
    center=True,
    pad_mode="reflect",
    power=2.0,
    n_mels=128,
    f_min=0.0,
    f_max=16000.0,
    mel_scale="kaldi",
    mel_norm="none",
    log="ln",
    log_offset=1e-5,
    amin=1e-10,
    db_ref=1.0,
    top_db=None,
    norm_add=4.5,
    norm_div=5.0,
)


# ---------------------------------------------------------------------------------------- building blocks
def _hz_to_mel(f: np.ndarray, scale: str) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + f / 700.0)
    if scale == "kaldi":
        return 1127.0 * np.log(1.0 + f / 700.0)
    # slaney: linear below 1 kHz, logarithmic above
    f_sp = 200.0 / 3.0
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    mel = f / f_sp
    high = f >= min_log_hz
    return np.where(high, min_log_mel + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep, mel)


def _mel_to_hz(m: np.ndarray, scale: str) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    if scale == "kaldi":
        return 700.0 * (np.exp(m / 1127.0) - 1.0)
    f_sp = 200.0 / 3.0
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(spec: FrontendSpec) -> np.ndarray:
    """Mel filter matrix ``[n_mels, n_fft//2 + 1]`` in float64."""
    n_bins = spec.n_fft // 2 + 1
    bin_hz = np.arange(n_bins, dtype=np.float64) * spec.sample_rate / spec.n_fft
    if spec.mel_scale == "kaldi":
        # triangles in the mel domain over the first n_fft/2 bins; the Nyquist bin gets weight 0
        lo = _hz_to_mel(np.float64(spec.f_min), "kaldi")
        hi = _hz_to_mel(np.float64(spec.f_max), "kaldi")
        delta = (hi - lo) / (spec.n_mels + 1)
        m = np.arange(spec.n_mels, dtype=np.float64)[:, None]
        left = lo + m * delta
        centre = lo + (m + 1.0) * delta
        right = lo + (m + 2.0) * delta
        mel = _hz_to_mel(bin_hz[: n_bins - 1], "kaldi")[None, :]
        up = (mel - left) / (centre - left)
        down = (right - mel) / (right - centre)
        fb = np.zeros((spec.n_mels, n_bins), dtype=np.float64)
        fb[:, : n_bins - 1] = np.maximum(0.0, np.minimum(up, down))
        return fb
    # htk / slaney: points equally spaced in mel, triangles in Hz
    m_pts = np.linspace(
        _hz_to_mel(np.float64(spec.f_min), spec.mel_scale),
        _hz_to_mel(np.float64(spec.f_max), spec.mel_scale),
        spec.n_mels + 2,
    )
    f_pts = _mel_to_hz(m_pts, spec.mel_scale)
    f_diff = np.diff(f_pts)  # [n_mels + 1]
    slopes = f_pts[None, :] - bin_hz[:, None]  # [n_bins, n_mels + 2]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    fb = np.maximum(0.0, np.minimum(down, up)).T  # [n_mels, n_bins]
    if spec.mel_norm == "slaney":
        fb = fb * (2.0 / (f_pts[2 : spec.n_mels + 2] - f_pts[: spec.n_mels]))[:, None]
    return fb


def window(spec: FrontendSpec) -> np.ndarray:
    """The analysis window, zero-padded centrally to ``n_fft`` (float64)."""
    n = np.arange(spec.win_length, dtype=np.float64)
    denom = spec.win_length if spec.window == "hann_periodic" else max(spec.win_length - 1, 1)
    w = 0.5 - 0.5 * np.cos(2.0 * math.pi * n / denom)
    out = np.zeros(spec.n_fft, dtype=np.float64)
    left = (spec.n_fft - spec.win_length) // 2
    out[left : left + spec.win_length] = w
    return out


def n_frames(n_samples: int, spec: FrontendSpec) -> int:
    """Number of feature frames for an input of ``n_samples`` samples (before pre-emphasis)."""
    n = int(n_samples) - (1 if spec.preemphasis > 0 else 0)
    if spec.center:
        return 1 + n // spec.hop_length
    if n < spec.n_fft:
        return 0
    return 1 + (n - spec.n_fft) // spec.hop_length


def min_samples(spec: FrontendSpec) -> int:
    """Shortest input the front end accepts (reflect padding needs more than n_fft/2 samples)."""
    extra = 1 if spec.preemphasis > 0 else 0
    if not spec.center:
        return spec.n_fft + extra
    if spec.pad_mode == "reflect":
        return spec.n_fft // 2 + 1 + extra
    return 1 + extra


def _as_batch(samples: Any, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(samples, torch.Tensor):
        x = samples.detach()
    else:
        arr = np.asarray(samples)
        if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
            raise ValueError(f"logmel: samples must be numeric, got dtype {arr.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(arr))
    if x.is_complex() or x.dtype == torch.bool:
        raise ValueError(f"logmel: samples must be real, got {x.dtype}")
    if x.dim() == 1:
        x = x.unsqueeze(0)
    if x.dim() != 2:
        raise ValueError(f"logmel: samples must have shape [N] or [B, N], got {tuple(x.shape)}")
    x = x.to(dtype)
    if not bool(torch.isfinite(x).all()):
        raise ValueError("logmel: samples contain NaN or infinity")
    return x


def power_spectrogram(samples: Any, spec: FrontendSpec, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Steps 1-2: pre-emphasis and ``|STFT|^power`` → ``[B, n_fft//2+1, frames]``."""
    x = _as_batch(samples, dtype)
    need = min_samples(spec)
    if x.shape[1] < need:
        raise ValueError(
            f"logmel: input of {x.shape[1]} samples is too short for this front end (need >= {need})"
        )
    if spec.preemphasis > 0:
        x = x[:, 1:] - spec.preemphasis * x[:, :-1]
    if spec.center:
        pad = spec.n_fft // 2
        x = torch.nn.functional.pad(x.unsqueeze(1), (pad, pad), mode=spec.pad_mode).squeeze(1)
    win = torch.from_numpy(window(spec)).to(device=x.device, dtype=dtype)
    frames = x.unfold(-1, spec.n_fft, spec.hop_length)  # [B, T, n_fft]
    X = torch.fft.rfft(frames * win, dim=-1)  # [B, T, n_bins]
    if spec.power == 2.0:
        p = X.real.square() + X.imag.square()
    else:
        p = X.abs().pow(spec.power)
    return p.transpose(1, 2)


def logmel(samples: Any, spec: FrontendSpec, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Log-mel features ``[B, n_mels, frames]`` for samples ``[N]`` or ``[B, N]`` (float, in [-1, 1]).

    ``dtype`` is the compute dtype (float32 by default; float64 for reference values). Torch input stays
    on its device (CPU or CUDA); the result is on that device.
    """
    p = power_spectrogram(samples, spec, dtype)
    fb = torch.from_numpy(mel_filterbank(spec)).to(device=p.device, dtype=dtype)
    mel = torch.matmul(fb, p)  # [B, n_mels, T]
    if spec.log == "ln":
        out = torch.log(mel + spec.log_offset)
    else:
        out = 10.0 * torch.log10(torch.clamp(mel, min=spec.amin))
        out = out - 10.0 * math.log10(max(spec.amin, spec.db_ref))
        if spec.top_db is not None:
            peak = out.amax(dim=(1, 2), keepdim=True)
            out = torch.maximum(out, peak - spec.top_db)
    if spec.norm_add != 0.0 or spec.norm_div != 1.0:
        out = (out + spec.norm_add) / spec.norm_div
    return out


# ---------------------------------------------------------------------------------------- golden vectors
def _golden_audio(name: str, sample_rate: int, n: int, seed: int) -> np.ndarray:
    """Deterministic synthetic test audio (tones, a chirp, broadband noise, an onset)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64) / sample_rate
    nyq = sample_rate / 2
    x = 0.25 * np.sin(2 * math.pi * 440.0 * t)
    x += 0.1 * np.sin(2 * math.pi * (0.19 * nyq) * t + 0.3)
    # linear chirp from 100 Hz to 0.8·Nyquist
    dur = n / sample_rate
    f0, f1 = 100.0, 0.8 * nyq
    x += 0.1 * np.sin(2 * math.pi * (f0 * t + 0.5 * (f1 - f0) / dur * t * t))
    x += 0.02 * rng.standard_normal(n)
    # an amplitude step (onset) at 40 % of the clip
    env = np.where(t < 0.4 * dur, 0.5, 1.0)
    x *= env
    if name == "effb2_topdb":
        # loud first half, digital silence afterwards: the top_db clamp is active on the silent frames
        x = 0.9 * np.sin(2 * math.pi * 1000.0 * t) + 0.05 * rng.standard_normal(n)
        x[n // 2 :] = 0.0
    return np.clip(x, -1.0, 1.0).astype(np.float32)


#: (case name, spec, number of samples, seed)
def golden_cases() -> list[tuple[str, FrontendSpec, int, int]]:
    return [
        ("student_db_htk", STUDENT_SPEC, 16000, 1),
        ("mn04_kaldi_ln", MN04_FRONTEND, 32000, 2),
        ("effb2_topdb", STUDENT_SPEC, 24000, 3),
        (
            "slaney_odd_length",
            FrontendSpec(
                sample_rate=22050,
                preemphasis=0.5,
                n_fft=400,
                win_length=300,
                hop_length=128,
                window="hann_symmetric",
                center=True,
                pad_mode="constant",
                power=1.0,
                n_mels=40,
                f_min=50.0,
                f_max=10000.0,
                mel_scale="slaney",
                mel_norm="slaney",
                log="db",
                log_offset=1e-5,
                amin=1e-10,
                db_ref=2.0,
                top_db=60.0,
                norm_add=20.0,
                norm_div=30.0,
            ),
            17777,
            4,
        ),
    ]


def _fmt_f32(v: float) -> str:
    """Shortest decimal string that round-trips to the same float32."""
    s = np.format_float_positional(np.float32(v), unique=True, trim="-")
    return s if "." in s or "e" in s else s + ".0"


def write_frontend_goldens(out_dir: str | Path) -> list[Path]:
    """Write ``<out_dir>/<case>.json`` for every golden case; returns the written paths.

    Features are computed in float64 from the float32 samples stored in the file and rounded to
    float32, so they are the reference values an f32 implementation should approach.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, spec, n, seed in golden_cases():
        x = _golden_audio(name, spec.sample_rate, n, seed)
        feats = logmel(x.astype(np.float64), spec, dtype=torch.float64)[0].numpy().astype(np.float32)
        spec_json = json.dumps(spec.to_dict())
        samples = ",".join(_fmt_f32(v) for v in x)
        rows = ",\n  ".join("[" + ",".join(_fmt_f32(v) for v in row) + "]" for row in feats)
        text = (
            '{"case": ' + json.dumps(name) + ",\n"
            ' "spec": ' + spec_json + ",\n"
            ' "n_frames": ' + str(feats.shape[1]) + ",\n"
            ' "samples": [' + samples + "],\n"
            ' "features": [\n  ' + rows + "]}\n"
        )
        path = out_dir / f"{name}.json"
        path.write_text(text)
        written.append(path)
    return written
