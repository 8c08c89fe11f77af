"""Front end: checked against an independent direct-DFT formulation, the shared references and goldens."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from earshot_train.audio_io import load_audio, resample, write_wav
from earshot_train.frontend import (
    MN04_FRONTEND,
    STUDENT_SPEC,
    FrontendSpec,
    golden_cases,
    logmel,
    mel_filterbank,
    n_frames,
    write_frontend_goldens,
)
from earshot_train.shared import REPO_ROOT, shared_path


# ----------------------------------------------------------------------------- independent formulation
def _mel(f, scale):
    if scale == "htk":
        return 2595.0 * math.log10(1.0 + f / 700.0)
    if scale == "kaldi":
        return 1127.0 * math.log(1.0 + f / 700.0)
    return f / (200.0 / 3.0) if f < 1000.0 else 15.0 + math.log(f / 1000.0) * 27.0 / math.log(6.4)


def _inv_mel(m, scale):
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    if scale == "kaldi":
        return 700.0 * (math.exp(m / 1127.0) - 1.0)
    return m * (200.0 / 3.0) if m < 15.0 else 1000.0 * math.exp((m - 15.0) * math.log(6.4) / 27.0)


def _tri(x, lo, c, hi):
    if lo <= x <= c:
        return (x - lo) / (c - lo)
    if c < x <= hi:
        return (hi - x) / (hi - c)
    return 0.0


def slow_filterbank(spec: FrontendSpec) -> np.ndarray:
    n_bins = spec.n_fft // 2 + 1
    fb = np.zeros((spec.n_mels, n_bins))
    lo, hi = _mel(spec.f_min, spec.mel_scale), _mel(spec.f_max, spec.mel_scale)
    step = (hi - lo) / (spec.n_mels + 1)
    for m in range(spec.n_mels):
        edges_mel = [lo + m * step, lo + (m + 1) * step, lo + (m + 2) * step]
        edges_hz = [_inv_mel(e, spec.mel_scale) for e in edges_mel]
        for k in range(n_bins):
            f = k * spec.sample_rate / spec.n_fft
            if spec.mel_scale == "kaldi":
                fb[m, k] = 0.0 if k == n_bins - 1 else _tri(_mel(f, "kaldi"), *edges_mel)
            else:
                fb[m, k] = _tri(f, *edges_hz)
        if spec.mel_norm == "slaney":
            fb[m] *= 2.0 / (edges_hz[2] - edges_hz[0])
    return fb


def slow_logmel(x: np.ndarray, spec: FrontendSpec) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if spec.preemphasis > 0:
        x = np.array([x[n + 1] - spec.preemphasis * x[n] for n in range(len(x) - 1)])
    N = len(x)
    p = spec.n_fft // 2

    def sample(i):
        if 0 <= i < N:
            return x[i]
        if spec.pad_mode == "constant":
            return 0.0
        return x[-i] if i < 0 else x[2 * (N - 1) - i]

    win = np.zeros(spec.n_fft)
    left = (spec.n_fft - spec.win_length) // 2
    denom = spec.win_length if spec.window == "hann_periodic" else spec.win_length - 1
    for n in range(spec.win_length):
        win[left + n] = 0.5 - 0.5 * math.cos(2 * math.pi * n / denom)
    T = 1 + N // spec.hop_length
    k = np.arange(spec.n_fft // 2 + 1)[:, None]
    n = np.arange(spec.n_fft)[None, :]
    dft = np.exp(-2j * math.pi * k * n / spec.n_fft)
    fb = slow_filterbank(spec)
    out = np.zeros((spec.n_mels, T))
    for t in range(T):
        frame = np.array([sample(t * spec.hop_length - p + i) for i in range(spec.n_fft)])
        power = np.abs(dft @ (frame * win)) ** spec.power
        out[:, t] = fb @ power
    if spec.log == "ln":
        out = np.log(out + spec.log_offset)
    else:
        out = 10 * np.log10(np.maximum(out, spec.amin)) - 10 * math.log10(max(spec.amin, spec.db_ref))
        if spec.top_db is not None:
            out = np.maximum(out, out.max() - spec.top_db)
    return (out + spec.norm_add) / spec.norm_div


def _signal(n, sr, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    return (0.3 * np.sin(2 * math.pi * 700 * t) + 0.05 * rng.standard_normal(n)).astype(np.float32)


SMALL_SPECS = {
    "student": STUDENT_SPEC,
    "mn04": MN04_FRONTEND,
    "slaney": FrontendSpec(
        sample_rate=8000,
        preemphasis=0.5,
        n_fft=256,
        win_length=200,
        hop_length=80,
        window="hann_symmetric",
        pad_mode="constant",
        power=1.0,
        n_mels=20,
        f_min=100.0,
        f_max=3500.0,
        mel_scale="slaney",
        mel_norm="slaney",
        log="db",
        db_ref=3.0,
        top_db=30.0,
        norm_add=5.0,
        norm_div=7.0,
    ),
    "htk_slaneynorm_ln": STUDENT_SPEC.replace(mel_norm="slaney", log="ln", top_db=None, n_mels=32),
}


@pytest.mark.parametrize("name", sorted(SMALL_SPECS))
def test_filterbank_matches_slow_definition(name):
    spec = SMALL_SPECS[name]
    fb = mel_filterbank(spec)
    assert fb.shape == (spec.n_mels, spec.n_fft // 2 + 1)
    np.testing.assert_allclose(fb, slow_filterbank(spec), atol=1e-12)
    assert (fb.sum(axis=1) > 0).all(), "every mel filter must cover at least one bin"


@pytest.mark.parametrize("name", sorted(SMALL_SPECS))
def test_logmel_matches_direct_dft(name):
    spec = SMALL_SPECS[name]
    n = 3 * spec.hop_length * 4 + 37  # not a multiple of the hop
    x = _signal(n, spec.sample_rate)
    got = logmel(x, spec)
    assert got.dtype == torch.float32
    assert got.shape == (1, spec.n_mels, n_frames(n, spec))
    want = slow_logmel(x, spec)
    scale = 1.0 / spec.norm_div
    # f32 STFT vs f64 direct DFT: dB values agree to ~1e-3 dB, ln values to ~1e-4
    tol = (2e-3 if spec.log == "db" else 2e-4) * max(scale, 1.0)
    np.testing.assert_allclose(got[0].numpy(), want, atol=tol)
    got64 = logmel(x, spec, dtype=torch.float64)[0].numpy()
    np.testing.assert_allclose(got64, want, atol=1e-8)


def test_top_db_clamps_to_peak_minus_top_db():
    spec = STUDENT_SPEC.replace(top_db=40.0)
    x = _signal(8000, 16000)
    x[4000:] = 0.0  # silence: unclamped it would sit at 10*log10(amin) = -100 dB
    m = logmel(x, spec)[0]
    assert math.isclose(m.min().item(), m.max().item() - 40.0, abs_tol=1e-4)
    assert (m == m.min()).sum() > 10
    unclamped = logmel(x, spec.replace(top_db=None))[0]
    assert unclamped.min().item() < m.min().item() - 20


def test_batch_equals_single_and_top_db_is_per_item():
    x = np.stack([_signal(4000, 16000, 1), 0.01 * _signal(4000, 16000, 2)])
    batch = logmel(x, STUDENT_SPEC)
    for i in range(2):
        torch.testing.assert_close(batch[i], logmel(x[i], STUDENT_SPEC)[0])
    torch.testing.assert_close(logmel(torch.from_numpy(x), STUDENT_SPEC), batch)


@pytest.mark.parametrize("n", [257, 1000, 16000, 16159, 16160, 16161])
@pytest.mark.parametrize("spec", [STUDENT_SPEC, MN04_FRONTEND, STUDENT_SPEC.replace(center=False)])
def test_n_frames_matches_output(n, spec):
    if spec.preemphasis > 0 and n < 600:
        n += 600
    if not spec.center and n < spec.n_fft:
        n += spec.n_fft
    assert logmel(np.zeros(n, np.float32), spec).shape[-1] == n_frames(n, spec)


def test_n_frames_known_values():
    assert n_frames(160000, STUDENT_SPEC) == 1001  # 10 s at 16 kHz: the bundle's [1, 64, 1001]
    assert n_frames(160033, MN04_FRONTEND) == 501  # ESC-10 5 s clip resampled 44.1k -> 32k
    assert n_frames(320000, MN04_FRONTEND) == 1000


def test_spec_dict_roundtrip_and_manifest_keys():
    doc = (REPO_ROOT / "docs" / "bundle-format.md").read_text()
    block = doc.split("```json", 1)[1].split("```", 1)[0]
    manifest_frontend = json.loads(block.replace('"...": ', '"x": '))["frontend"]
    assert set(STUDENT_SPEC.to_dict()) == set(manifest_frontend)
    assert FrontendSpec.from_dict(manifest_frontend) == STUDENT_SPEC
    for spec in (STUDENT_SPEC, MN04_FRONTEND, *SMALL_SPECS.values()):
        d = json.loads(json.dumps(spec.to_dict()))
        assert FrontendSpec.from_dict(d) == spec
    d = STUDENT_SPEC.to_dict()
    d["some_future_key"] = 1
    assert FrontendSpec.from_dict(d) == STUDENT_SPEC


@pytest.mark.parametrize(
    "key,value",
    [
        ("window", "hamming"),
        ("mel_scale", "bark"),
        ("mel_norm", "l2"),
        ("log", "log2"),
        ("pad_mode", "edge"),
        ("n_fft", 511),
        ("n_fft", 0),
        ("win_length", 1024),
        ("hop_length", -1),
        ("f_max", 9000.0),
        ("f_min", 8000.0),
        ("top_db", -1.0),
        ("norm_div", 0.0),
        ("preemphasis", 1.5),
        ("sample_rate", "16k"),
        ("center", "yes"),
    ],
)
def test_from_dict_rejects_bad_values_naming_the_key(key, value):
    d = STUDENT_SPEC.to_dict()
    d[key] = value
    with pytest.raises(ValueError, match=rf"frontend\.{key}"):
        FrontendSpec.from_dict(d)


def test_from_dict_missing_key():
    d = STUDENT_SPEC.to_dict()
    del d["hop_length"]
    with pytest.raises(ValueError, match=r"frontend\.hop_length: missing"):
        FrontendSpec.from_dict(d)


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="too short"):
        logmel(np.zeros(100, np.float32), STUDENT_SPEC)
    with pytest.raises(ValueError, match="NaN"):
        logmel(np.full(1000, np.nan, np.float32), STUDENT_SPEC)
    with pytest.raises(ValueError, match="shape"):
        logmel(np.zeros((1, 2, 1000), np.float32), STUDENT_SPEC)
    with pytest.raises(ValueError, match="numeric"):
        logmel(np.array(["a"] * 1000), STUDENT_SPEC)


# ----------------------------------------------------------------------------- audio i/o
def test_wav_roundtrip_and_resample(tmp_path):
    x = 0.5 * np.sin(2 * math.pi * 1000 * np.arange(32000) / 32000).astype(np.float32)
    write_wav(tmp_path / "a.wav", x, 32000)
    y = load_audio(tmp_path / "a.wav", 32000)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert np.abs(y - x).max() < 1.0 / 32767 + 1e-6  # 16-bit quantisation only
    z = load_audio(tmp_path / "a.wav", 16000)
    assert z.shape == (16000,)
    # the 1 kHz tone survives resampling: its spectrum peaks at 1 kHz
    spec = np.abs(np.fft.rfft(z))
    assert abs(np.argmax(spec) * 16000 / len(z) - 1000) < 2
    np.testing.assert_allclose(resample(x, 32000, 32000), x)


def test_load_audio_stereo_is_mixed(tmp_path):
    import soundfile as sf

    st = np.stack([np.full(1000, 0.5), np.full(1000, -0.1)], axis=1)
    sf.write(tmp_path / "s.wav", st, 8000, subtype="FLOAT")
    y = load_audio(tmp_path / "s.wav", 8000)
    np.testing.assert_allclose(y, 0.2, atol=1e-6)


def test_load_audio_errors(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        load_audio(tmp_path / "missing.wav", 16000)
    (tmp_path / "junk.wav").write_bytes(b"not audio at all")
    with pytest.raises(ValueError, match="cannot decode"):
        load_audio(tmp_path / "junk.wav", 16000)
    with pytest.raises(ValueError, match="shape"):
        write_wav(tmp_path / "x.wav", np.zeros((2, 10)), 16000)


# ----------------------------------------------------------------------------- shared references
def test_student_spec_reproduces_effb2_reference():
    d = shared_path("reference", "wsntxxn-effb2-trm")
    if d is None:
        pytest.skip("shared reference/wsntxxn-effb2-trm absent (set EARSHOT_SHARED)")
    ref = json.loads((d / "reference_outputs.json").read_text())
    x = load_audio(d / "input_dog_16k.wav", 16000)
    m = logmel(x, STUDENT_SPEC)
    assert list(m.shape) == ref["logmel_db_shape"]
    assert abs(m.mean().item() - ref["logmel_db_mean"]) < 1e-3
    assert abs(m.max().item() - ref["logmel_db_max"]) < 1e-3
    assert abs(m.min().item() - ref["logmel_db_min"]) < 1e-3
    np.testing.assert_allclose(m[0, :5, 0].numpy(), ref["logmel_db_frame0_first5"], atol=1e-3)


# ----------------------------------------------------------------------------- golden files
GOLDEN_DIR = REPO_ROOT / "tests" / "golden" / "frontend"


def _check_golden(path: Path, spec_expected: FrontendSpec | None = None):
    g = json.loads(path.read_text())
    spec = FrontendSpec.from_dict(g["spec"])
    if spec_expected is not None:
        assert spec == spec_expected
    x = np.asarray(g["samples"], dtype=np.float32)
    feats = np.asarray(g["features"], dtype=np.float32)
    assert feats.shape == (spec.n_mels, n_frames(len(x), spec)) and g["n_frames"] == feats.shape[1]
    got = logmel(x, spec)[0].numpy()
    tol = 2e-3 if spec.log == "db" else 2e-4
    np.testing.assert_allclose(got, feats, atol=tol / min(abs(spec.norm_div), 1.0))
    return spec, x, feats


def test_write_frontend_goldens(tmp_path):
    paths = write_frontend_goldens(tmp_path)
    names = {p.stem for p in paths}
    assert names == {c[0] for c in golden_cases()}
    for (_name, spec, n, _), p in zip(golden_cases(), paths, strict=True):
        s, x, feats = _check_golden(p, spec)
        assert len(x) == n
    # the top_db case really clamps
    g = json.loads((tmp_path / "effb2_topdb.json").read_text())
    f = np.asarray(g["features"])
    assert math.isclose(f.min(), f.max() - g["spec"]["top_db"], abs_tol=1e-3)
    assert (f == f.min()).mean() > 0.2


def test_committed_goldens_are_current(tmp_path):
    if not GOLDEN_DIR.is_dir():
        pytest.skip("tests/golden/frontend not generated yet")
    fresh = {p.name: p for p in write_frontend_goldens(tmp_path)}
    committed = sorted(p.name for p in GOLDEN_DIR.glob("*.json"))
    assert committed == sorted(fresh), "regenerate with python -m earshot_train.golden"
    for name, p in fresh.items():
        a, b = json.loads(p.read_text()), json.loads((GOLDEN_DIR / name).read_text())
        assert a["spec"] == b["spec"] and a["samples"] == b["samples"]
        np.testing.assert_allclose(np.asarray(a["features"]), np.asarray(b["features"]), atol=1e-4)
