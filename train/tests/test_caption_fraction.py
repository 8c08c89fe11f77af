"""data.caption_fraction: the 25 %-of-labels experiments keep captions on a fixed subset of train clips."""

import pytest

from earshot_train.trainer import limit_captions


def _rows(n: int) -> list[dict]:
    rows = [{"id": f"train-{i:05d}", "split": "train", "captions": ["a dog barks"]} for i in range(n)]
    rows.append({"id": "val-0", "split": "val", "captions": ["rain falls"]})
    rows.append({"id": "test-0", "split": "test_single", "captions": ["a rooster crows"]})
    return rows


def test_full_fraction_is_identity():
    rows = _rows(10)
    assert limit_captions(rows, 1.0) == rows


def test_quarter_keeps_about_a_quarter_and_moves_the_rest_to_audio_only():
    out = limit_captions(_rows(4000), 0.25)
    kept = [r for r in out if r["split"] == "train"]
    moved = [r for r in out if r["split"] == "audio_only"]
    assert 0.22 < len(kept) / 4000 < 0.28
    assert len(kept) + len(moved) == 4000
    assert all(r["captions"] == [] for r in moved)
    assert all(r["captions"] == ["a dog barks"] for r in kept)
    # held-out splits are never touched
    assert [r for r in out if r["split"] in ("val", "test_single")] == _rows(0)


def test_subset_is_a_function_of_the_ids_only():
    a = {r["id"] for r in limit_captions(_rows(500), 0.25) if r["split"] == "train"}
    b = {r["id"] for r in limit_captions(list(reversed(_rows(500))), 0.25) if r["split"] == "train"}
    assert a == b
    # a smaller fraction picks a subset of a larger one
    c = {r["id"] for r in limit_captions(_rows(500), 0.1) if r["split"] == "train"}
    assert c <= a


@pytest.mark.parametrize("bad", [0.0, -0.5, 1.5])
def test_bad_fraction_is_an_error(bad):
    with pytest.raises(ValueError, match="caption_fraction"):
        limit_captions(_rows(3), bad)


def test_repeat_kinds_repeats_only_the_named_kinds():
    from earshot_train.trainer import repeat_by_kind

    rows = [{"id": "a", "kind": "single"}, {"id": "b", "kind": "overlap"}, {"id": "c"}]
    assert [r["id"] for r in repeat_by_kind(rows, {"overlap": 3})] == ["a", "b", "b", "b", "c"]
    assert repeat_by_kind(rows, {}) == rows


def test_repeat_kinds_config_is_checked(tmp_path):
    from earshot_train import config as C

    p = tmp_path / "x.toml"
    p.write_text('[experiment]\nname = "x"\n[corpus]\nname = "c"\n[data]\nrepeat_kinds = { overlap = 0 }\n')
    with pytest.raises(ValueError, match="repeat_kinds.overlap"):
        C.load_config(p)
    p.write_text('[experiment]\nname = "x"\n[corpus]\nname = "c"\n[data]\nrepeat_kinds = { overlap = 3 }\n')
    assert C.load_config(p)["data"]["repeat_kinds"] == {"overlap": 3}


def test_audio_only_clips_train_only_where_a_kd_term_can_use_them(tmp_path):
    from earshot_train import config as C
    from earshot_train.trainer import select_train_rows

    rows = limit_captions(_rows(400), 0.25)
    n_kept = sum(r["split"] == "train" for r in rows)

    def cfg(text: str) -> dict:
        p = tmp_path / "x.toml"
        p.write_text('[experiment]\nname = "x"\nkind = "student"\n[corpus]\nname = "c"\n' + text)
        return C.load_config(p)

    plain = cfg("[model]\nencoder = 'mn04_tuned'\n")
    assert len(select_train_rows(rows, plain, None, None)) == n_kept  # CE only: captioned clips
    enc_kd = cfg("[model]\nencoder = 'mn04_tuned'\n[loss]\nenc_infonce = 1.0\n")
    assert len(select_train_rows(rows, enc_kd, None, None)) == 400  # the frozen mn04 is every clip's target
    tag_only = cfg("[model]\nencoder = 'mn04_tuned'\n[loss]\ntag_kd = 1.0\n")
    assert len(select_train_rows(rows, tag_only, None, None)) == n_kept
