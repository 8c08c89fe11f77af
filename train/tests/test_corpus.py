"""Corpus builder (synthetic tiny config; a very small real build when shared data exists) and captions."""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from pathlib import Path

import pytest
import soundfile as sf
from conftest import TINY_CORPUS_CONFIG as TINY

from earshot_train.captions import (
    CLASSES,
    SYNONYMS,
    make_captions,
    names_all_sources,
    names_source,
    source_accuracy,
)
from earshot_train.corpus import (
    SPLITS,
    CorpusConfig,
    build_corpus,
    discover_real_sources,
    main,
    read_manifest,
)
from earshot_train.shared import shared_path


@pytest.fixture
def tiny(tiny_corpus) -> Path:
    return tiny_corpus


def _digest(d: Path) -> str:
    h = hashlib.sha256((d / "manifest.jsonl").read_bytes())
    for p in sorted((d / "audio").rglob("*.wav")):
        h.update(p.read_bytes())
    return h.hexdigest()


def test_tiny_manifest_is_complete_and_valid(tiny):
    cfg = CorpusConfig.load(TINY)
    rows = read_manifest(tiny)
    info = json.loads((tiny / "corpus_info.json").read_text())
    assert info["n_clips"] == len(rows) and info["complete"]
    assert {r["split"] for r in rows} == set(SPLITS)
    assert len({r["id"] for r in rows}) == len(rows)
    n = int(cfg.clip_seconds * cfg.sample_rate)
    for r in rows:
        assert set(r) >= {"id", "split", "audio", "captions", "sources", "kind"}
        assert r["kind"] in ("single", "bed", "overlap", "sequence")
        snd = sf.info(str(tiny / r["audio"]))
        assert (snd.samplerate, snd.channels, snd.frames, snd.subtype) == (32000, 1, n, "PCM_16")
        assert r["sources"] and all(s in SYNONYMS for s in r["sources"])
        if r["split"] == "audio_only":
            assert r["captions"] == []
            continue
        assert len(r["captions"]) == cfg.n_captions and len(set(r["captions"])) >= 2
        for c in r["captions"]:
            assert c == c.lower() and c.strip() == c and 2 <= len(c.split()) <= 20
            # every reference names every source of its clip (captions and synonym table agree)
            assert names_all_sources(c, r["sources"]), (c, r["sources"])
        want = 1 if r["kind"] == "single" else 2
        assert len(r["classes"]) == want and len(r["sources"]) == want
    counts = {s: sum(r["split"] == s for r in rows) for s in SPLITS}
    assert (
        counts["train"] == cfg.n_train_single + cfg.n_train_bed + cfg.n_train_overlap + cfg.n_train_sequence
    )
    assert counts["test_mix"] == cfg.n_test_bed + cfg.n_test_overlap + cfg.n_test_sequence


def test_tiny_held_out_sources_never_leak(tiny):
    info = json.loads((tiny / "corpus_info.json").read_text())
    test_files = set(info["source_files"]["test"])
    val_files = set(info["source_files"]["val"])
    for r in read_manifest(tiny):
        files = {e["file"] for e in r["events"]}
        if r["split"] in ("test_single", "test_mix"):
            assert files <= test_files, r["id"]
        else:
            assert not files & test_files, r["id"]
        if r["split"] in ("train", "audio_only"):
            assert not files & val_files, r["id"]
    # test_single covers every held-out event file once
    singles = [r for r in read_manifest(tiny, ["test_single"])]
    held_events = {f for f in test_files if "_bed/" not in f}
    assert sorted(e["file"] for r in singles for e in r["events"]) == sorted(held_events)


def test_tiny_is_deterministic_and_rebuild_skips(tiny, tmp_path):
    cfg = CorpusConfig.load(TINY)
    again = build_corpus(cfg, tmp_path / "again", progress=False)
    assert _digest(again) == _digest(tiny)
    # an identical complete build is kept; --force rebuilds to the same bytes
    stamp = (again / "manifest.jsonl").stat().st_mtime_ns
    build_corpus(cfg, again, progress=False)
    assert (again / "manifest.jsonl").stat().st_mtime_ns == stamp
    build_corpus(cfg, again, force=True, progress=False)
    assert _digest(again) == _digest(tiny)
    # another seed gives another corpus
    other = build_corpus(CorpusConfig.from_dict({**vars(cfg), "seed": 8}), tmp_path / "other", progress=False)
    assert _digest(other) != _digest(tiny)


def test_cli_main(tmp_path, capsys):
    cfg_path = tmp_path / "c.toml"
    cfg_path.write_text(
        '[corpus]\nname = "cli"\nsynthetic = true\nn_train_single = 2\nn_train_bed = 1\nn_train_overlap = 1\n'
        "n_train_sequence = 1\nn_val_single = 1\nn_val_bed = 0\nn_val_overlap = 0\nn_val_sequence = 0\n"
        "n_test_bed = 1\nn_test_overlap = 1\nn_test_sequence = 0\nn_audio_only = 1\n"
    )
    assert main(["--config", str(cfg_path), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    assert "clips in" in capsys.readouterr().out
    assert len(read_manifest(tmp_path / "out")) == 2 + 1 + 1 + 1 + 1 + 4 + 1 + 1 + 1


def test_config_errors(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown key"):
        CorpusConfig.from_dict({"n_train_singel": 3})
    with pytest.raises(ValueError, match="n_train_bed"):
        CorpusConfig.from_dict({"n_train_bed": -1})
    with pytest.raises(ValueError, match="snr_bed_db"):
        CorpusConfig.from_dict({"snr_bed_db": [10, 0]})
    bad = tmp_path / "bad.toml"
    bad.write_text("[corpus\nname=")
    assert main(["--config", str(bad)]) == 2
    assert "error:" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "missing.toml")]) == 2
    # refuses to wipe a directory that is not a corpus
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "precious.txt").write_text("x")
    with pytest.raises(ValueError, match="refusing"):
        build_corpus(CorpusConfig.load(TINY), junk, progress=False)
    assert (junk / "precious.txt").exists()
    (tmp_path / "manifest.jsonl").write_text("")
    with pytest.raises(ValueError, match="unknown split"):
        read_manifest(tmp_path, ["nope"])
    with pytest.raises(FileNotFoundError, match="build the corpus"):
        read_manifest(junk)


# ------------------------------------------------------------------------------ real data (skips)
def _shared_data():
    d = shared_path("data")
    if d is None or not (d / "esc10").is_dir():
        pytest.skip("shared data absent (set EARSHOT_SHARED)")
    return d.parent


def test_real_source_splits():
    root = _shared_data()
    cfg = CorpusConfig()
    src = discover_real_sources(cfg, root)
    esc = [s for s in src if s.group == "esc"]
    assert len(esc) == 320  # folds 1-4, 10 classes x 32
    for s in esc:
        fold = s.uid.rsplit("/", 1)[1][0]
        assert (s.split == "test") == (fold == "4")
        assert fold != "5"
    assert sum(s.split == "val" for s in esc) == 10 * cfg.val_per_class
    others = [s for s in src if s.group != "esc"]
    by_cls: dict[str, set[str]] = {}
    for s in others:
        by_cls.setdefault(s.cls, set()).add(s.split)
    for cls, splits in by_cls.items():
        assert "train" in splits, cls
        if CLASSES[cls].bed:
            assert "test" in splits, f"bed class {cls} has no held-out file"
    assert {s.cls for s in others if CLASSES[s.cls].bed} >= {"rain_bed", "wind_bed", "music", "birds_bed"}
    assert any(s.cls == "speech" for s in others)


def test_real_small_build(tmp_path):
    root = _shared_data()
    small = {f"n_{s}_{k}": 2 for s in ("train", "val") for k in ("single", "bed", "overlap", "sequence")}
    small |= {
        "n_test_single": 4,
        "n_test_bed": 2,
        "n_test_overlap": 2,
        "n_test_sequence": 2,
        "n_audio_only": 2,
    }
    cfg = CorpusConfig.from_dict({"name": "real-small", "shared_dir": str(root), **small})
    out = build_corpus(cfg, tmp_path / "rs", progress=False)
    rows = read_manifest(out)
    assert len(rows) == 8 + 8 + 4 + 6 + 2
    info = json.loads((out / "corpus_info.json").read_text())
    test_files = set(info["source_files"]["test"])
    for r in rows:
        files = {e["file"] for e in r["events"]}
        assert (files <= test_files) if r["split"].startswith("test") else not (files & test_files)
        if r["split"] == "test_mix":
            # events are ESC-10 fold 4 only; beds are held-out 0 A.D. files
            for e in r["events"]:
                assert e["file"].startswith("esc10/") or CLASSES[e["class"]].bed
        for c in r["captions"]:
            assert names_all_sources(c, r["sources"])
    esc_attr = info["attribution"]["esc10"]["clips"]
    assert esc_attr and all("derived from" in v for v in esc_attr.values())


# ------------------------------------------------------------------------------ captions
def test_make_captions_for_every_pair_names_both_sources():
    rng = random.Random(0)
    events = [c for c in CLASSES.values() if not c.bed]
    beds = [c for c in CLASSES.values() if c.bed]
    for a in CLASSES.values():
        for cap in make_captions(rng, "single", [a.name], 5):
            assert names_source(cap, a.source), cap
    for a, b in itertools.product(events, events):
        if a.source == b.source:
            continue
        for kind in ("overlap", "sequence"):
            for cap in make_captions(rng, kind, [a.name, b.name], 3):
                assert names_all_sources(cap, [a.source, b.source]), cap
    for a, b in itertools.product(events, beds):
        if a.source != b.source:
            for cap in make_captions(rng, "bed", [a.name, b.name], 3):
                assert names_all_sources(cap, [a.source, b.source]), cap


def test_make_captions_style():
    caps = make_captions(random.Random(3), "sequence", ["rooster", "baby_cry"], 5)
    assert len(set(caps)) == 5
    assert all(c == c.lower() and not c.endswith(".") for c in caps)
    assert any("then" in c or "followed" in c or "before" in c or "afterwards" in c for c in caps)
    with pytest.raises(ValueError, match="needs 2"):
        make_captions(random.Random(0), "overlap", ["rooster"])
    with pytest.raises(ValueError, match="kind"):
        make_captions(random.Random(0), "chorus", ["rooster"])


def test_names_source_whole_words():
    assert names_source("a dog barks while rain falls", "dog")
    assert names_source("A DOG barks", "dog")
    assert not names_source("a woman speaks", "man")
    assert names_source("a man and a woman speak", "man")
    assert not names_source("hotdog stand noises", "dog")
    assert names_source("a chain saw runs", "chainsaw")
    with pytest.raises(ValueError, match="unknown source"):
        names_source("x", "unicorn")


def test_source_accuracy():
    sources = {"a": ["dog"], "b": ["dog", "rain"], "c": ["rooster", "baby"]}
    assert source_accuracy({"a": "a dog barks"}, sources) == 1.0
    assert source_accuracy({"a": "a cat meows"}, sources) == 0.0
    # a two-event clip needs both sources
    assert source_accuracy({"b": "a dog barks"}, sources) == 0.0
    assert source_accuracy({"b": "rain falls as a dog barks"}, sources) == 1.0
    assert source_accuracy(
        {"a": "dog", "b": "dog", "c": "a rooster crows then an infant cries"}, sources
    ) == (pytest.approx(2 / 3))
    with pytest.raises(ValueError):
        source_accuracy({"x": "a dog"}, sources)


def test_tiny_mixing_follows_the_recorded_layout(tiny):
    import numpy as np

    for r in read_manifest(tiny):
        ev = r["events"]
        x, sr = sf.read(str(tiny / r["audio"]), dtype="float32")
        assert 0.0 < np.abs(x).max() <= 0.96
        if r["kind"] == "single":
            (e,) = ev
            a, b = int(e["onset_s"] * sr), int((e["onset_s"] + e["dur_s"]) * sr)
            inside = np.sqrt(np.mean(x[a:b] ** 2))
            outside = np.concatenate([x[:a], x[b:]])
            if len(outside) > sr // 10:
                # outside the event there is only the -75 dB noise floor
                assert inside > 100 * np.sqrt(np.mean(outside**2)), r["id"]
        elif r["kind"] == "bed":
            bed, event = ev
            assert bed["onset_s"] == 0.0 and bed["dur_s"] == pytest.approx(10.0)
            assert CLASSES[bed["class"]].bed and not CLASSES[event["class"]].bed
        elif r["kind"] == "sequence":
            first, second = ev
            assert second["onset_s"] >= first["onset_s"] + first["dur_s"] - 1e-3, r["id"]
        elif r["kind"] == "overlap":
            first, second = ev
            assert second["onset_s"] < first["onset_s"] + first["dur_s"], r["id"]
            assert first["onset_s"] < second["onset_s"] + second["dur_s"], r["id"]
