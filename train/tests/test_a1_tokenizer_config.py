"""Tokenizer and experiment-config behaviour."""

import pytest

from earshot_train.config import apply_overrides, load_config
from earshot_train.tokenizer import END, PAD, SPECIALS, START, UNK, Tokenizer


def test_tokenizer_specials_min_count_roundtrip(tmp_path):
    tok = Tokenizer.build(["A dog barks.", "a dog runs", "a cat"], min_count=2)
    assert tok.words[:4] == SPECIALS and (PAD, START, END, UNK) == (0, 1, 2, 3)
    assert tok.words[4:] == ["a", "dog"]  # by count, then alphabetically; 'barks' etc. below min_count
    ids = tok.encode("a dog barks")
    assert ids == [START, 4, 5, UNK, END]
    assert tok.decode(ids) == "a dog <unk>"
    assert tok.decode([4, 5, END, 4]) == "a dog"  # stops at <end>
    assert tok.encode("a dog a dog a", max_len=3) == [START, 4, 5, END]
    tok.save(tmp_path / "vocab.txt")
    assert (tmp_path / "vocab.txt").read_text().splitlines()[:5] == [
        "<pad>",
        "<start>",
        "<end>",
        "<unk>",
        "a",
    ]
    assert Tokenizer.load(tmp_path / "vocab.txt").words == tok.words


def test_tokenizer_errors(tmp_path):
    with pytest.raises(ValueError):
        Tokenizer(["a", "b"])
    with pytest.raises(ValueError):
        Tokenizer.build(["x"], min_count=0)
    with pytest.raises(ValueError):
        Tokenizer.build(["x"]).decode([99])


def test_config_file_and_overrides(tmp_path):
    p = tmp_path / "exp.toml"
    p.write_text('[experiment]\nkind = "student"\n[optim]\nlr = 0.01\n[model.cnn]\nout_dim = 64\n')
    cfg = load_config(p, ["optim.batch_size=4", "model.decoder.d_model=64", "export.name=x"])
    assert cfg["experiment"]["name"] == "exp"
    assert cfg["optim"]["lr"] == 0.01 and cfg["optim"]["batch_size"] == 4
    assert cfg["model"]["decoder"]["d_model"] == 64 and cfg["model"]["decoder"]["n_heads"] == 4
    assert cfg["model"]["cnn"] == {"out_dim": 64}
    assert cfg["export"]["name"] == "x"


@pytest.mark.parametrize(
    "text, sets, msg",
    [
        ("[optim]\nlrr = 1\n", [], "unknown key"),
        ("[optim]\nlr = -1\n", [], "optim.lr"),
        ("[experiment]\nkind = 'x'\n", [], "experiment.kind"),
        ("", ["optim.lr"], "key=value"),
        ("[loss]\nseq_kd = 1.0\n", [], "data.teacher"),
        ("[experiment]\nkind = 'teacher'\n", [], "teacher_frames"),
        ("[optim\n", [], "exp.toml"),
        ("[loss]\ntag_kd = 1.0\n", [], "mn04_tuned"),
        ("[model]\nencoder = 'mn04_tuned'\n", ["model.mn04_tuned.train_from=11"], "maps_at <= train_from"),
        ("[model]\nencoder = 'mn04_tuned'\n", ["model.mn04_tuned.maps_at=0"], "maps_at <= train_from"),
        ("[model]\nencoder = 'mn04_tuned'\n", ["model.mn04_tuned.input_dropout=1.0"], "input_dropout"),
        ("[optim]\nencoder_lr_scale = 0\n", [], "encoder_lr_scale"),
    ],
)
def test_config_errors(tmp_path, text, sets, msg):
    p = tmp_path / "exp.toml"
    p.write_text(text)
    with pytest.raises(ValueError, match=msg):
        load_config(p, sets)


def test_tuned_mn04_encoder_kd_needs_no_teacher_run(tmp_path):
    p = tmp_path / "exp.toml"
    p.write_text("[experiment]\nkind = 'student'\n[model]\nencoder = 'mn04_tuned'\n[loss]\nenc_mse = 1.0\n")
    assert load_config(p)["loss"]["enc_mse"] == 1.0  # the target is the frozen mn04 beside the tuned one
    p.write_text("[experiment]\nkind = 'student'\n[loss]\nenc_mse = 1.0\n")
    with pytest.raises(ValueError, match="data.teacher"):
        load_config(p)


def test_config_missing_file():
    with pytest.raises(ValueError, match="not found"):
        load_config("/nonexistent/x.toml")


def test_override_parses_toml_values():
    cfg = apply_overrides({"a": {"b": 1, "c": "s", "d": [1]}}, ["a.b=2.5", "a.c=hello", "a.d=[1, 2]"])
    assert cfg["a"] == {"b": 2.5, "c": "hello", "d": [1, 2]}
