"""Corpus v2 (issue 14 item 1): taxonomy, curation rules, splits, caption grammar, rendering spec.

Tests that read ../shared skip with a message when it is absent (``EARSHOT_SHARED`` overrides the path);
the rest run on generated inputs only.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict

import numpy as np
import pytest

from earshot_train.corpus_v2 import curate as cur
from earshot_train.corpus_v2.grammar import REPEAT_WORDS, SEQUENTIAL, SIMULTANEOUS, Grammar
from earshot_train.corpus_v2.render import (
    RESAMPLERS,
    RenderSpec,
    generate_nothing,
    mix_events,
    nothing_recipes,
    render_clip,
    resample_with,
)
from earshot_train.corpus_v2.sources import Source
from earshot_train.corpus_v2.taxonomy import load_taxonomy, noun_pattern, repeated_nouns
from earshot_train.shared import shared_path

CLASSES = load_taxonomy()
BY_ID = {c.id: c for c in CLASSES}
# A stand-in AudioSet label list for decide(): every tag the taxonomy names, plus generic ones.
LABELS = sorted({t for c in CLASSES for t in c.audioset} | cur.GENERIC_TAGS | cur.TONE_TAGS)
INDEX = {t: i for i, t in enumerate(LABELS)}
ALL_NOUNS = noun_pattern(sorted({n for c in CLASSES for n in c.nouns}))


def _probs(**tags: float) -> np.ndarray:
    p = np.full(len(LABELS), 0.001, np.float32)
    for name, v in tags.items():
        p[INDEX[name.replace("_", " ")]] = v
    return p


def _src(label: str, collection: str = "lugaru-sfx", path: str | None = None) -> Source:
    return Source(path or f"data/sounds/{collection}/audio/{label}.opus", collection, label, "", "", 1.0)


# ------------------------------------------------------------------------------------- taxonomy
def test_taxonomy_has_100_classes_groups_and_nothing():
    assert len(CLASSES) >= 100
    groups = {c.group for c in CLASSES}
    for g in ("animal", "bird", "vehicle", "household", "speech", "music", "weather", "tool", "nothing"):
        assert g in groups
    assert BY_ID["nothing"].group == "nothing"


def test_every_phrase_names_its_own_source_once():
    for c in CLASSES:
        if c.id == "nothing":
            continue
        pat = noun_pattern(c.nouns)
        for ph in c.clauses + c.nominals + ((c.repeated,) if c.repeated else ()):
            assert pat.search(ph), f"{c.id}: {ph!r} does not name its source"
        assert len(c.clauses) >= 2, c.id


def test_taxonomy_audioset_names_are_mn04_labels():
    if shared_path("teachers", "efficientat-mn04", "class_labels_indices.csv") is None:
        pytest.skip("shared teachers/efficientat-mn04 absent (set EARSHOT_SHARED)")
    from earshot_train.teacher.mn04 import mn04_labels

    assert len(load_taxonomy(audioset_labels=mn04_labels())) == len(CLASSES)


def test_taxonomy_rejects_a_phrase_naming_its_source_twice(tmp_path):
    bad = tmp_path / "t.toml"
    bad.write_text(
        '[[class]]\nid = "chainsaw"\ngroup = "tool"\nnouns = ["chainsaw"]\n'
        'clauses = ["a chainsaw runs while a chainsaw revs"]\nnominals = ["a chainsaw"]\n'
        'match = ["chainsaw"]\naudioset = ["Chainsaw"]\n'
    )
    with pytest.raises(ValueError, match="names its source twice"):
        load_taxonomy(bad)


# ------------------------------------------------------------------------------------- grammar
def test_captions_never_name_a_source_twice_unless_they_say_so():
    g = Grammar(CLASSES)
    rng = random.Random(7)
    relations = set()
    for _ in range(20000):
        cap = g.sample(rng)
        relations.add(cap.relation)
        twice = repeated_nouns(cap.text, ALL_NOUNS)  # checked here, independent of the grammar's own check
        if twice:
            assert cap.relation == "repeated" and any(w in cap.text for w in REPEAT_WORDS), cap.text
        if len(cap.classes) == 2:
            a, b = cap.classes
            assert a != b
            assert noun_pattern(BY_ID[a].nouns).search(cap.text), cap.text
            assert noun_pattern(BY_ID[b].nouns).search(cap.text), cap.text
    assert relations >= {"single", "repeated"} | set(SIMULTANEOUS) | set(SEQUENTIAL)


def test_grammar_refuses_pairs_sharing_a_source():
    g = Grammar(CLASSES)
    with pytest.raises(ValueError):
        g.two("chainsaw", "chainsaw", random.Random(0))
    assert not g.can_pair("stream", "splash")  # both name "water"
    assert not g.can_pair("nothing", "dog_bark")
    assert g.can_pair("dog_bark", "rain")


def test_repeated_caption_says_it_repeats_and_beds_do_not_repeat():
    g = Grammar(CLASSES)
    cap = g.one("dog_bark", random.Random(0), repeated=True)
    assert cap.text == "a dog barks repeatedly"
    with pytest.raises(ValueError):
        g.one("rain", random.Random(0), repeated=True)


# ------------------------------------------------------------------------------------- rendering
def test_render_pads_short_clips_with_exact_zeros():
    spec = RenderSpec(p_no_noise=1.0, p_resample=0.0)
    clip = np.sin(np.linspace(0, 300, 8000)).astype(np.float32)
    out, info = render_clip(clip, spec, np.random.default_rng(0))
    assert len(out) == 160000 and info["noise"] is None
    a, n = info["offset"], info["length"]
    assert np.all(out[:a] == 0.0) and np.all(out[a + n :] == 0.0)
    assert np.count_nonzero(out) > 7000


def test_render_gain_and_noise_spread():
    spec = RenderSpec(p_resample=0.0, p_no_noise=0.3)
    clip = np.random.default_rng(1).standard_normal(16000).astype(np.float32)
    rng = np.random.default_rng(2)
    gains, noises, clean = [], [], 0
    for _ in range(200):
        out, info = render_clip(clip, spec, rng)
        gains.append(info["gain_dbfs"])
        if info["noise"] is None:
            clean += 1
            assert np.all(out[info["offset"] + info["length"] :] == 0.0)
        else:
            kind, level = info["noise"]
            noises.append(level)
            tail = out[info["offset"] + info["length"] :]
            if len(tail) > 16000:
                rms = 20 * np.log10(np.sqrt(np.mean(tail.astype(np.float64) ** 2)))
                assert abs(rms - level) < 1.5
    assert -40.0 <= min(gains) < -30.0 and -10.0 < max(gains) <= 0.0
    assert 30 < clean < 90
    assert min(noises) < -80.0 and max(noises) > -50.0


def test_render_resamples_through_44k_48k_with_varied_methods():
    spec = RenderSpec(p_no_noise=1.0, p_resample=1.0)
    rng = np.random.default_rng(3)
    seen = set()
    for _ in range(30):
        _, info = render_clip(np.ones(4000, np.float32), spec, rng)
        seen.add(info["resample"][0])
        seen.update(info["resample"][1:])
    assert {44100, 48000} <= seen and set(RESAMPLERS) <= seen
    t = np.arange(16000) / 16000
    x = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    for m in RESAMPLERS:
        y = resample_with(resample_with(x, 16000, 44100, m), 44100, 16000, m)
        assert len(y) == len(x)
        assert np.max(np.abs(y[200:-200] - x[200:-200])) < 0.05, m


def test_render_rejects_bad_spec_and_input():
    with pytest.raises(ValueError):
        render_clip(np.ones(10, np.float32), RenderSpec(gain_dbfs=(-10.0, 5.0)), np.random.default_rng(0))
    with pytest.raises(ValueError):
        render_clip(np.zeros(0, np.float32), RenderSpec(), np.random.default_rng(0))


def test_mix_events_modes():
    rng = np.random.default_rng(0)
    a, b = np.ones(1000, np.float32), np.ones(500, np.float32)
    assert len(mix_events(a, b, "then", rng, window=10_000)) >= 1500
    assert len(mix_events(a, b, "while", rng, window=10_000)) == 1000
    with pytest.raises(ValueError):
        mix_events(a, b, "after", rng, window=10_000)


@pytest.mark.parametrize("mode", ["then", "while"])
def test_mix_events_keep_both_long_events_inside_the_window(mode):
    """Recordings longer than the window are cut before mixing, so neither event falls outside it
    (corpus v2 builder 2 mixed whole recordings and cut afterwards)."""
    window = 1000
    for seed in range(20):
        rng = np.random.default_rng(seed)
        a = np.zeros(5000, np.float32)
        a[3000:3100] = 1.0  # the event of a sparse recording
        b = np.full(7000, 0.5, np.float32)
        y = mix_events(a, b, mode, rng, window=window)
        assert len(y) <= window
        b_level = 0.5 * 10 ** (-6 / 20)  # b's peak is scaled to within -6..+6 dB of a's
        assert np.max(np.abs(y)) >= 1.0 - 1e-6, "a's event was cut away"
        assert np.count_nonzero(np.abs(y) >= b_level * 0.99) >= 100, "b is missing"


def test_nothing_recipes_generate_silence_noise_hum_and_tones():
    names = nothing_recipes(14)
    kinds = {n.split("/")[0] for n in names}
    assert kinds == {"silence", "white", "pink", "hum50", "hum60", "tone", "sweep"}
    assert np.all(generate_nothing("silence/0") == 0.0)
    hum = generate_nothing("hum50/0", seconds=2.0)
    spec = np.abs(np.fft.rfft(hum))
    assert abs(np.argmax(spec) / 2.0 - 50.0) < 1.0
    for n in names:
        y = generate_nothing(n, seconds=1.0)
        assert len(y) == 16000 and np.max(np.abs(y)) <= 0.51
        assert np.array_equal(y, generate_nothing(n, seconds=1.0))


# ------------------------------------------------------------------------------------- curation rules
def test_label_rule_longest_match_wins():
    assert cur.rule_class(_src("drum kit sample: agogo high"), CLASSES) == "shaker"
    assert cur.rule_class(_src("bass drum: bd boom"), CLASSES) == "drums"
    assert cur.rule_class(_src("doors door open"), CLASSES) == "door"
    assert cur.rule_class(_src("xyzzy"), CLASSES) == ""


def test_decide_keeps_agreeing_drops_disagreeing_and_relabels_in_group():
    keep = cur.decide(_src("bark growl"), _probs(Dog=0.8, Bark=0.7), CLASSES, LABELS, 1.0)
    assert (keep.cls, keep.action, keep.agree) == ("dog_bark", "keep", True)
    drop = cur.decide(_src("bark growl"), _probs(Music=0.9), CLASSES, LABELS, 1.0)
    assert (
        drop.cls == "" and drop.action == "drop" and "mn04 disagrees" in drop.reason and drop.agree is False
    )
    rel = cur.decide(_src("bark growl"), _probs(Cat=0.9, Meow=0.8), CLASSES, LABELS, 1.0)
    assert (rel.cls, rel.action) == ("cat", "relabel") and "dog_bark -> cat" in rel.reason


def test_decide_drops_ui_sounds_and_tones():
    ui = cur.decide(_src("menu item selected sound"), _probs(Music=0.3), CLASSES, LABELS, 0.5)
    assert ui.cls == "" and "UI" in ui.reason
    tone = cur.decide(_src("bark"), _probs(**{"Beep, bleep": 0.9, "Dog": 0.15}), CLASSES, LABELS, 0.5)
    assert tone.cls == "" and "tone/beep" in tone.reason
    short = cur.decide(_src("bark"), _probs(Dog=0.9), CLASSES, LABELS, 0.05)
    assert short.cls == "" and "shorter" in short.reason


def test_decide_drops_digital_silence_under_any_label_but_silence():
    quiet = cur.decide(_src("bark"), _probs(Dog=0.9), CLASSES, LABELS, 3.0, peak_dbfs=-80.0)
    assert quiet.cls == "" and "digital silence" in quiet.reason
    said = cur.decide(_src("silence"), _probs(Silence=0.9), CLASSES, LABELS, 3.0, peak_dbfs=-240.0)
    assert said.cls == "nothing"  # labelled silence stays "nothing recognisable"
    faint = cur.decide(_src("bark"), _probs(Dog=0.9), CLASSES, LABELS, 3.0, peak_dbfs=-45.0)
    assert faint.cls == "dog_bark"  # quiet but audible


def test_decide_speech_gender_from_label_then_mn04():
    s = _src("speech; italian woman speaking", "asterisk-voices")
    assert cur.decide(s, _probs(Speech=0.9), CLASSES, LABELS, 2.0).cls == "speech_woman"
    s = _src("speech; single word spoken in language fr, volunteer voice", "ktuberling-spoken-words")
    man = cur.decide(s, _probs(Speech=0.9, **{"Male speech, man speaking": 0.7}), CLASSES, LABELS, 1.0)
    assert man.cls == "speech_man" and "mn04" in man.reason
    both = {"Male speech, man speaking": 0.4, "Female speech, woman speaking": 0.35}
    assert cur.decide(s, _probs(Speech=0.9, **both), CLASSES, LABELS, 1.0).cls == "speech_person"
    assert cur.decide(s, _probs(Music=0.9), CLASSES, LABELS, 1.0).cls == ""


def test_trusted_labels_are_kept_even_when_mn04_disagrees():
    s = Source("data/esc10/001 - Dog bark/1-100032-A.ogg", "esc10", "dog bark", "esc10", "", 5.0)
    d = cur.decide(s, _probs(Music=0.9), CLASSES, LABELS, 5.0)
    assert d.cls == "dog_bark" and d.agree is False and "trusted" in d.reason


def test_recording_ids_group_takes():
    a = cur.recording_id(_src("foot step grass 1"))
    b = cur.recording_id(_src("foot step grass 2"))
    assert a == b != cur.recording_id(_src("foot step snow 1"))
    esc = Source("data/esc10/001 - Dog bark/2-1234-B.ogg", "esc10", "dog bark", "", "", 5.0)
    assert cur.recording_id(esc) == "esc10:1234"
    spk = _src('speech; english spoken digit "two" by speaker george', "fsdd-spoken-digits")
    assert cur.recording_id(spk) == "fsdd-spoken-digits:voice:george"


def test_splits_hold_out_whole_recordings_per_class():
    rows = []
    for r in range(40):
        for take in range(3):
            rows.append(
                cur.Decision(
                    f"f{r}-{take}", "c", "l", "dog_bark", "keep", "", "dog_bark", True, 1.0, f"rec{r}"
                )
            )
    for fold in (1, 2, 3, 4):
        p = f"data/esc10/001 - Dog bark/{fold}-{100 + fold}-A.ogg"
        rows.append(
            cur.Decision(p, "esc10", "dog bark", "dog_bark", "keep", "", "", True, 5.0, f"esc10:{100 + fold}")
        )
    out = cur.assign_splits(rows)
    where = defaultdict(set)
    for r in out:
        where[r.recording].add(r.split)
    assert all(len(s) == 1 for s in where.values())
    splits = [r.split for r in out if r.collection == "c"]
    assert splits.count("val") >= 3 and splits.count("test") >= 3 and splits.count("train") > 90
    esc = {r.path.split("/")[-1][0]: r.split for r in out if r.collection == "esc10"}
    assert esc["1"] == esc["2"] == esc["3"] == "train" and esc["4"] in ("val", "test")


# ------------------------------------------------------------------------------------- the committed manifest
def test_committed_manifest_is_consistent():
    path = cur.manifest_path()
    if not path.is_file():
        pytest.skip("train/data/corpus-v2.tsv not generated yet")
    rows = cur.read_manifest(path)
    kept = [r for r in rows if r["class"]]
    assert all(r["class"] in BY_ID for r in kept)
    assert all(r["reason"] for r in rows), "every decision records why"
    assert all(r["split"] in ("train", "val", "test") for r in kept)
    assert all(not r["split"] for r in rows if not r["class"])
    where = defaultdict(set)
    for r in kept:
        where[(r["class"], r["recording"])].add(r["split"])
    assert all(len(s) == 1 for s in where.values())
    for r in kept:
        if r["collection"] == "esc10":
            fold = r["file"].split("/")[-1].split("-")[0]
            assert fold != "5"
            assert (r["split"] == "train") == (fold in ("1", "2", "3"))
    assert len({r["class"] for r in kept}) >= 100
    assert any(r["class"] == "nothing" and r["split"] == "test" for r in kept)
    assert not any(
        re.search(r"\.(ogg|opus|wav|flac)$", r["file"]) and not r["file"].startswith("data/") for r in rows
    )


def test_manifest_files_exist_in_shared():
    path = cur.manifest_path()
    if shared_path("data", "sounds") is None or not path.is_file():
        pytest.skip("shared data/sounds absent (set EARSHOT_SHARED) or manifest not generated")
    from earshot_train.shared import shared_dir

    rows = [r for r in cur.read_manifest(path) if not r["file"].startswith("gen:")]
    for r in random.Random(0).sample(rows, 200):
        assert (shared_dir() / r["file"]).is_file(), r["file"]


def test_write_report_regenerates_the_counts_and_keeps_the_hand_written_sections(tmp_path):
    p = tmp_path / "CORPUS.md"
    p.write_text("# old\n\n- kept: 1 files\n\n## Rendering\n\nhow clips are made\n")
    cur.write_report([], p)
    text = p.read_text()
    assert "- kept: 1 files" not in text and "# Corpus v2" in text
    assert text.endswith("## Rendering\n\nhow clips are made\n") and text.count("## Rendering") == 1
