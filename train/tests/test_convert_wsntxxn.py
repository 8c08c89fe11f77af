"""The released effb2-trm student: converter, our PyTorch modules and the bundle vs the authors' outputs.

Tests that need ``$EARSHOT_SHARED/reference/wsntxxn-effb2-trm`` (the random-init checkpoint and
``reference_outputs.json``) skip with a message when it is absent. The conversion (about a minute on
two cores) runs once per session into a temporary directory.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from earshot_train import convert_wsntxxn as cw
from earshot_train import search
from earshot_train.models.effb2 import EfficientNetB2Encoder, memory_len_for_samples, round_filters
from earshot_train.shared import shared_path
from earshot_train.tokenizer import SPECIALS

REF_PARTS = ("reference", "wsntxxn-effb2-trm")


def _ref_dir():
    p = shared_path(*REF_PARTS)
    if p is None or not (p / "random-init-checkpoint" / "config.json").is_file():
        pytest.skip(
            "shared reference/wsntxxn-effb2-trm not found (set EARSHOT_SHARED): skipping effb2 parity"
        )
    return p


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    ref = _ref_dir()
    out = tmp_path_factory.mktemp("effb2_bundle")
    report = cw.convert(
        ref / "random-init-checkpoint",
        out,
        placeholder_vocab=True,
        reference=ref,
        cached_decoder=True,
        log=lambda *_: None,
    )
    return ref, out, report


@pytest.fixture(scope="module")
def captioner():
    ref = _ref_dir()
    config, state, _ = cw.load_checkpoint(ref / "random-init-checkpoint")
    return cw.build_captioner(config, state)


# ------------------------------------------------------------------------------ reference parity
def test_reference_parity_every_stage_torch_and_onnxruntime(converted):
    ref_dir, _, report = converted
    rep = report["reference"]
    assert rep["failed"] == [], rep
    assert rep["n_checks"] >= 40  # log-mel, encoder, mask length, 5 prefix positions, ids; x2 runtimes
    ref = json.loads((ref_dir / "reference_outputs.json").read_text())
    for runtime in ("torch", "ort"):
        assert rep["ids"][runtime]["greedy"] == ref["greedy_token_ids"]
        assert rep["ids"][runtime]["beam3"] == ref["beam3_token_ids"]


def test_bundle_graphs_match_pytorch_on_a_full_window(converted):
    _, _, report = converted
    w = report["window"]
    assert w["encoder_max_abs_diff"] < 1e-4
    assert w["decoder_max_abs_diff"] < 1e-4
    assert w["beam3_ids_torch"] == w["beam3_ids_ort"]
    assert report["ok"]
    # --cached-decoder: the key/value-cached graphs agree with the full-prefix decoder
    assert report["decoder_cached"]["torch_cached_max_abs_diff"] <= 1e-3
    assert report["decoder_cached"]["ort_cached_max_abs_diff"] <= 1e-3


def test_manifest_describes_this_model(converted):
    _, out, _ = converted
    m = json.loads((out / "manifest.json").read_text())
    assert m["format"] == "earshot-bundle" and m["version"] == 1
    assert m["frontend"] == cw.EFFB2_SPEC.to_dict()
    assert m["frontend"]["log"] == "db" and m["frontend"]["top_db"] == 120.0
    assert m["encoder"]["input_shape"] == [1, 64, 1001]
    assert m["encoder"]["output_shape"] == [1, 32, 1408]
    assert m["encoder"]["memory_len"] == "effb2"
    assert m["decoder"]["vocab_size"] == 4981
    assert m["search"] == {"beam": 3, "max_len": 20, "length_norm": 1.0, "beam_mode": "constant"}
    assert m["tokens"] == {"pad": 0, "start": 1, "end": 2, "unk": 3}
    words = (out / "vocab.txt").read_text().splitlines()
    assert len(words) == 4981 and words[:5] == SPECIALS + ["w4"] and words[-1] == "w4980"
    assert (out / "MODEL_CARD.md").read_text().startswith("# wsntxxn-effb2-trm-audiocaps")
    assert "sha256" in m["provenance"]["source"]
    assert m["decoder_cached"]["step_file"] == "decoder_step.onnx" and (out / "decoder_step.onnx").is_file()


def test_onnx_decoder_accepts_any_memory_length(converted, captioner):
    _, out, _ = converted
    sess = cw.ort_session(out / "decoder.onnx")
    rng = np.random.default_rng(1)
    for t in (1, 15, 31):
        mem = rng.standard_normal((2, t, 1408)).astype(np.float32) * 0.1
        toks = np.array([[1, 5, 6], [1, 7, 8]], dtype=np.int64)
        got = cw.ort_step(sess)(toks, mem)
        want = cw.torch_step(captioner)(toks, mem)
        assert got.shape == (2, 4981)
        assert np.abs(got - want).max() < 1e-4


# ------------------------------------------------------------------------------ our modules
def test_dynamic_same_padding_does_not_reproduce_the_reference(captioner):
    """The released model pads like efficientnet_pytorch built for 260x260 images (static);
    padding from each input's own size (dynamic) gives different numbers."""
    ref_dir = _ref_dir()
    ref = json.loads((ref_dir / "reference_outputs.json").read_text())
    x = cw.load_audio(ref_dir / "input_dog_16k.wav", 16000)
    mel = cw.clip_features(x)
    dyn = EfficientNetB2Encoder(padding="dynamic").eval()
    dyn.load_state_dict(captioner.encoder.state_dict())
    with torch.no_grad():
        got_dyn = dyn(mel)["memory"][0, 0, :5].numpy()
        got_static = captioner.encoder(mel)["memory"][0, 0, :5].numpy()
    want = np.array(ref["attn_emb_t0_first5"])
    assert np.abs(got_static - want).max() < 1e-5
    assert np.abs(got_dyn - want).max() > 1e-5


def test_block_layout_is_efficientnet_b2():
    enc = EfficientNetB2Encoder()
    net = enc.backbone.eff_net
    assert len(net._blocks) == 23
    assert [round_filters(c, 1.1) for c in (32, 16, 24, 40, 80, 112, 192, 320, 1280)] == [
        32, 16, 24, 48, 88, 120, 208, 352, 1408,
    ]  # fmt: skip
    assert enc.out_dim == 1408
    assert enc.n_out_frames(501) == 16 and enc.n_out_frames(1001) == 32


def test_short_clip_is_a_clear_error_not_nan(captioner):
    assert memory_len_for_samples(cw.MIN_SAMPLES) == 1
    assert memory_len_for_samples(cw.MIN_SAMPLES - 1) == 0
    with pytest.raises(ValueError, match="too short"):
        cw.encode_clip(captioner, np.zeros(cw.MIN_SAMPLES - 1, dtype=np.float32))
    with pytest.raises(ValueError, match="at least 32 frames"):
        captioner.encoder(torch.zeros(1, 64, 31))
    rng = np.random.default_rng(0)
    enc = cw.encode_clip(captioner, (0.1 * rng.standard_normal(cw.MIN_SAMPLES)).astype(np.float32))
    assert enc["memory_len"] == 1
    mem = np.ascontiguousarray(enc["memory"][:, :1])
    logits = cw.torch_step(captioner)(np.array([[1]], dtype=np.int64), mem)
    assert np.isfinite(mem).all() and np.isfinite(logits).all()


# ------------------------------------------------------------------------------ beam search
def _authors_beam(step, memory, beam, max_len):
    """Slot-based restatement of the authors' beam search (fixed ``beam`` slots; a finished slot's
    score drops by 1000 so its continuations lose; scores normalised by length when finished;
    stop once exactly ``beam`` hypotheses are done), written independently of search.py."""
    slots = None  # list of (ids, score)
    done = []
    for t in range(max_len):
        if slots is None:
            lp = search._log_softmax(np.asarray(step(np.array([[1]], dtype=np.int64), memory)))[0]
            order = np.argsort(-lp, kind="stable")[:beam]
            slots = [([1, int(v)], float(lp[v])) for v in order]
        else:
            toks = np.array([s[0] for s in slots], dtype=np.int64)
            lp = search._log_softmax(np.asarray(step(toks, np.repeat(memory, len(slots), axis=0))))
            total = (np.array([s[1] for s in slots], dtype=np.float32)[:, None] + lp).reshape(-1)
            order = np.argsort(-total, kind="stable")[:beam]
            v = lp.shape[1]
            slots = [(slots[i // v][0] + [i % v], float(total[i])) for i in order]
        for k, (ids, score) in enumerate(slots):
            if ids[-1] == 2 or t == max_len - 1:
                done.append((ids, score / (t + 1)))
                slots[k] = (ids, score - 1000.0)
        if len(done) == beam:
            break
    best = max(done, key=lambda d: d[1])  # max() keeps the first of equal scores
    return best[0][1:]


def _toy_step(seed: int, vocab: int = 7):
    rng = np.random.default_rng(seed)
    table: dict[tuple[int, ...], np.ndarray] = {}

    def step(tokens: np.ndarray, memory: np.ndarray) -> np.ndarray:
        rows = []
        for t in tokens:
            key = tuple(int(x) for x in t)
            if key not in table:
                row = rng.standard_normal(vocab).astype(np.float32) * 2.0
                row[2] += 0.3 * len(key)  # <end> gets likelier with length
                row[0] -= 20.0
                table[key] = row
            rows.append(table[key])
        return np.stack(rows)

    return step


def test_constant_beam_is_the_authors_search():
    mem = np.zeros((1, 1, 1), dtype=np.float32)
    differs = 0
    for seed in range(60):
        step = _toy_step(seed)
        want = _authors_beam(step, mem, 3, 8)
        assert search.beam_search(step, mem, 3, 8, 1.0, mode="constant") == want, seed
        differs += search.beam_search(step, mem, 3, 8, 1.0, mode="shrinking") != want
    assert differs > 0  # the two modes are really different searches


def test_beam_mode_is_validated():
    with pytest.raises(ValueError, match="beam mode"):
        search.beam_search(_toy_step(0), np.zeros((1, 1, 1), np.float32), 3, 5, mode="wide")


# ------------------------------------------------------------------------------ inputs
def test_vocabularies(tmp_path):
    words, src = cw.load_vocab(placeholder_size=8)
    assert words == SPECIALS + ["w4", "w5", "w6", "w7"] and "placeholder" in src

    tj = {"model": {"type": "WordLevel", "vocab": {"<pad>": 0, "<start>": 1, "<end>": 2, "<unk>": 3, "dog": 5,
                                                   "a": 4}}}  # fmt: skip
    (tmp_path / "tokenizer.json").write_text(json.dumps(tj))
    words, _ = cw.load_vocab(tokenizer=tmp_path / "tokenizer.json")
    assert words == SPECIALS + ["a", "dog"]

    tj["model"]["vocab"] = {"[PAD]": 0, "[BOS]": 1, "[EOS]": 2, "[UNK]": 3, "a": 4}
    (tmp_path / "renamed.json").write_text(json.dumps(tj))
    words, src = cw.load_vocab(tokenizer=tmp_path / "renamed.json")
    assert words == SPECIALS + ["a"] and "renamed" in src

    tj["model"]["vocab"] = {"<pad>": 0, "<start>": 1, "<end>": 2, "<unk>": 3, "a": 5}
    (tmp_path / "gap.json").write_text(json.dumps(tj))
    with pytest.raises(cw.ConversionError, match="contiguous"):
        cw.load_vocab(tokenizer=tmp_path / "gap.json")
    tj["model"] = {"type": "BPE", "vocab": {"<pad>": 0}}
    (tmp_path / "bpe.json").write_text(json.dumps(tj))
    with pytest.raises(cw.ConversionError, match="WordLevel"):
        cw.load_vocab(tokenizer=tmp_path / "bpe.json")

    (tmp_path / "vocab.txt").write_text("<pad>\n<start>\n<end>\n<unk>\ndog\n")
    assert cw.load_vocab(vocab=tmp_path / "vocab.txt")[0][-1] == "dog"
    (tmp_path / "bad.txt").write_text("dog\ncat\nbird\nfish\n")
    with pytest.raises(cw.ConversionError, match="special token"):
        cw.load_vocab(vocab=tmp_path / "bad.txt")
    with pytest.raises(cw.ConversionError, match="exactly one"):
        cw.load_vocab(vocab=tmp_path / "vocab.txt", placeholder_size=5)


def test_bad_checkpoints(tmp_path):
    with pytest.raises(cw.ConversionError, match="not found"):
        cw.load_checkpoint(tmp_path / "missing")
    with pytest.raises(cw.ConversionError, match="config.json"):
        cw.load_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    with pytest.raises(cw.ConversionError, match="Effb2TrmCaptioningModel"):
        cw.load_checkpoint(tmp_path)
    cfg = {"architectures": [cw.ARCHITECTURE], "vocab_size": 10, "attn_emb_dim": 1408, "decoder_emb_dim": 256,
           "decoder_n_layers": 2}  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(cw.ConversionError, match="neither"):
        cw.load_checkpoint(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(cw.ConversionError, match="cannot read"):
        cw.load_checkpoint(tmp_path)
    with pytest.raises(cw.ConversionError, match="unexpected checkpoint keys"):
        cw.build_captioner(cfg, {"model.other.weight": torch.zeros(1)})


def test_window_argument_is_validated(tmp_path):
    with pytest.raises(cw.ConversionError, match="shorter than the model's minimum"):
        cw.convert(tmp_path / "none", tmp_path / "out", placeholder_vocab=True, window_seconds=0.2)
    with pytest.raises(cw.ConversionError, match="positive"):
        cw.convert(tmp_path / "none", tmp_path / "out", placeholder_vocab=True, window_seconds=float("nan"))


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    rc = cw.main(
        ["--checkpoint", str(tmp_path / "none"), "--placeholder-vocab", "--out", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith("error: checkpoint directory not found") and "\n" not in err
    with pytest.raises(SystemExit):  # exactly one vocabulary source is required
        cw.main(["--checkpoint", str(tmp_path), "--out", str(tmp_path / "o")])


def test_convert_is_a_subcommand_of_the_package_cli(tmp_path, capsys):
    from earshot_train.cli import main as cli_main

    rc = cli_main(
        ["convert", "--checkpoint", str(tmp_path / "none"), "--vocab", "v.txt", "--out", str(tmp_path)]
    )
    assert rc == 2
    assert "checkpoint directory not found" in capsys.readouterr().err
