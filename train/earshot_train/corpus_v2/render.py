"""How corpus-v2 clips are presented to a model in training: the way the runtime presents them.

The runtime (``earshot caption``/``listen``) hands the model a fixed window in which a short clip is
followed by **exact zeros**, at whatever level the user recorded, with whatever noise their room has,
after resampling the file's 44.1/48 kHz audio to the model rate. Training must see the same variety,
so :func:`render_clip` draws, per clip (all from one ``numpy`` generator, reproducible by seed):

- **placement**: the clip at a random offset in the window; the rest exact zeros (a clip longer than
  the window is cut at a random start);
- **gain**: peak level uniform over ``gain_dbfs`` (default −40..0 dBFS);
- **noise floor**: none (probability ``p_no_noise``: the zeros stay exact) or white/pink noise with an
  RMS uniform over ``noise_dbfs`` (default −90..−40 dBFS, from inaudible to audible);
- **resampling**: with probability ``p_resample`` the clip takes a round trip through 44.1 or 48 kHz
  with a randomly chosen method (polyphase, FFT, linear interpolation), so the model does not learn one
  resampler's fingerprint — the runtime's own (rubato sinc) differs from scipy's.

:func:`nothing_recipes`/:func:`generate_nothing` make the "nothing recognisable" class: digital
silence, white and pink noise, 50/60 Hz mains hum with harmonics, pure tones and tone sweeps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import resample, resample_poly

__all__ = [
    "RenderSpec",
    "render_clip",
    "resample_with",
    "mix_events",
    "excerpt",
    "nothing_recipes",
    "generate_nothing",
    "RESAMPLERS",
]

RESAMPLERS = ("polyphase", "fft", "linear")


@dataclass(frozen=True)
class RenderSpec:
    sample_rate: int = 16000
    window_s: float = 10.0
    gain_dbfs: tuple[float, float] = (-40.0, 0.0)
    noise_dbfs: tuple[float, float] = (-90.0, -40.0)
    p_no_noise: float = 0.3
    p_pink: float = 0.5
    p_resample: float = 0.5
    rates: tuple[int, ...] = (44100, 48000)

    def validate(self) -> None:
        lo, hi = self.gain_dbfs
        if not (lo <= hi <= 0.0):
            raise ValueError(f"render: gain_dbfs must be lo <= hi <= 0, got {self.gain_dbfs}")
        if not (self.noise_dbfs[0] <= self.noise_dbfs[1] <= 0.0):
            raise ValueError(f"render: noise_dbfs must be lo <= hi <= 0, got {self.noise_dbfs}")
        for k in ("p_no_noise", "p_pink", "p_resample"):
            if not 0.0 <= getattr(self, k) <= 1.0:
                raise ValueError(f"render: {k} must be in [0, 1]")
        if self.sample_rate <= 0 or self.window_s <= 0:
            raise ValueError("render: sample_rate and window_s must be positive")


def resample_with(x: np.ndarray, sr_in: int, sr_out: int, method: str) -> np.ndarray:
    """Resample mono ``x`` with one of :data:`RESAMPLERS`; output length ``round(len * out / in)``."""
    x = np.asarray(x, dtype=np.float64)
    if sr_in == sr_out:
        return x.astype(np.float32)
    n_out = int(round(len(x) * sr_out / sr_in))
    if method == "polyphase":
        g = math.gcd(sr_in, sr_out)
        y = resample_poly(x, sr_out // g, sr_in // g)
    elif method == "fft":
        y = resample(x, n_out)
    elif method == "linear":
        t = np.arange(n_out) * (sr_in / sr_out)
        y = np.interp(t, np.arange(len(x)), x)
    else:
        raise ValueError(f"render: unknown resampler {method!r} (one of {RESAMPLERS})")
    y = y[:n_out]
    if len(y) < n_out:
        y = np.pad(y, (0, n_out - len(y)))
    return y.astype(np.float32)


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    """Pink (1/f power) noise, unit RMS, by shaping white noise in the frequency domain."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    y = np.fft.irfft(spec / np.sqrt(f), n)
    return y / (np.sqrt(np.mean(y**2)) + 1e-12)


def _noise(n: int, rms_dbfs: float, pink: bool, rng: np.random.Generator) -> np.ndarray:
    base = _pink(n, rng) if pink else rng.standard_normal(n)
    return (base * 10 ** (rms_dbfs / 20)).astype(np.float32)


def render_clip(x: np.ndarray, spec: RenderSpec, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """One training window from clip ``x`` (mono, at ``spec.sample_rate``) and what was drawn."""
    spec.validate()
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"render: expected a non-empty mono clip, got shape {x.shape}")
    info: dict = {}
    if rng.random() < spec.p_resample:
        rate = int(rng.choice(spec.rates))
        m_up, m_down = rng.choice(RESAMPLERS), rng.choice(RESAMPLERS)
        x = resample_with(resample_with(x, spec.sample_rate, rate, m_up), rate, spec.sample_rate, m_down)
        info["resample"] = (rate, str(m_up), str(m_down))
    n = int(round(spec.window_s * spec.sample_rate))
    if len(x) > n:
        start = int(rng.integers(0, len(x) - n + 1))
        x, offset = x[start : start + n], 0
    else:
        offset = int(rng.integers(0, n - len(x) + 1))
    out = np.zeros(n, dtype=np.float32)
    peak = float(np.max(np.abs(x)))
    gain_db = float(rng.uniform(*spec.gain_dbfs))
    if peak > 0:
        out[offset : offset + len(x)] = x * (10 ** (gain_db / 20) / peak)
    info.update(offset=offset, length=len(x), gain_dbfs=gain_db)
    if rng.random() >= spec.p_no_noise:
        level = float(rng.uniform(*spec.noise_dbfs))
        pink = bool(rng.random() < spec.p_pink)
        out = out + _noise(n, level, pink, rng)
        info["noise"] = ("pink" if pink else "white", level)
    else:
        info["noise"] = None
    return np.clip(out, -1.0, 1.0).astype(np.float32), info


def excerpt(x: np.ndarray, max_len: int, rng: np.random.Generator) -> np.ndarray:
    """``x`` itself when it fits in ``max_len`` samples, else a ``max_len`` excerpt drawn among those
    holding at least half the energy of the loudest one, so a long, sparse recording still gives its
    event and a dense one a random part."""
    if len(x) <= max_len:
        return x
    c = np.concatenate([[0.0], np.cumsum(np.asarray(x, np.float64) ** 2)])
    energy = c[max_len:] - c[: len(c) - max_len]  # energy of x[s : s + max_len] for every start s
    starts = np.flatnonzero(energy >= 0.5 * energy.max())
    s = int(rng.choice(starts))
    return x[s : s + max_len]


def mix_events(
    a: np.ndarray,
    b: np.ndarray,
    mode: str,
    rng: np.random.Generator,
    window: int,
    snr_db: tuple[float, float] = (-6.0, 6.0),
) -> np.ndarray:
    """Two clips as one event pair that fits in ``window`` samples, so both events are in the window
    the model sees: ``"while"`` overlaps them, ``"then"`` puts ``b`` after ``a`` (``a`` takes 35–60 %
    of the window at most, then a gap, then ``b`` in what is left). Longer clips are cut to their
    loudest excerpt (:func:`excerpt`).

    ``b`` is scaled to a peak ratio uniform over ``snr_db`` relative to ``a``; the result is not
    normalised (pass it to :func:`render_clip`, which sets the level).
    """
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    if mode == "then":
        a = excerpt(a, int(window * rng.uniform(0.35, 0.6)), rng)
        gap = np.zeros(int(rng.integers(0, max(1, len(a) // 4))), np.float32)
        b = excerpt(b, window - len(a) - len(gap), rng)
    elif mode == "while":
        a, b = excerpt(a, window, rng), excerpt(b, window, rng)
    else:
        raise ValueError(f"mix_events: mode must be 'while' or 'then', got {mode!r}")
    pa, pb = float(np.max(np.abs(a))) or 1.0, float(np.max(np.abs(b))) or 1.0
    b = b * (pa / pb) * 10 ** (float(rng.uniform(*snr_db)) / 20)
    if mode == "then":
        return np.concatenate([a, gap, b])
    n = max(len(a), len(b))
    out = np.zeros(n, np.float32)
    out[: len(a)] += a
    start = int(rng.integers(0, n - len(b) + 1))
    out[start : start + len(b)] += b
    return out


_KINDS = ("silence", "white", "pink", "hum50", "hum60", "tone", "sweep")


def nothing_recipes(n: int) -> list[str]:
    """``n`` recipe names ``kind/index`` cycling through silence, noises, hums, tones and sweeps."""
    return [f"{_KINDS[i % len(_KINDS)]}/{i // len(_KINDS)}" for i in range(n)]


def generate_nothing(
    recipe: str, sample_rate: int = 16000, seconds: float = 10.0, seed: int = 0
) -> np.ndarray:
    """The audio of one "nothing recognisable" recipe (deterministic in ``recipe`` and ``seed``)."""
    kind, _, idx = recipe.partition("/")
    if kind not in _KINDS:
        raise ValueError(f"generate_nothing: unknown kind {kind!r} (one of {_KINDS})")
    rng = np.random.default_rng([seed, int(idx or 0), _KINDS.index(kind)])
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    level = 10 ** (rng.uniform(-40.0, -6.0) / 20)
    if kind == "silence":
        return np.zeros(n, np.float32)
    if kind in ("white", "pink"):
        return (_noise(n, 0.0, kind == "pink", rng) * level / 3).astype(np.float32)
    if kind.startswith("hum"):
        f0 = 50.0 if kind == "hum50" else 60.0
        y = sum((0.6**k) * np.sin(2 * np.pi * f0 * (k + 1) * t + rng.uniform(0, 6.28)) for k in range(5))
    elif kind == "tone":
        y = np.sin(2 * np.pi * rng.uniform(100.0, 4000.0) * t)
    else:
        f0, f1 = rng.uniform(100.0, 1000.0), rng.uniform(1000.0, 6000.0)
        y = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds)))
    y = np.asarray(y, np.float64)
    return (y / np.max(np.abs(y)) * level).astype(np.float32)
