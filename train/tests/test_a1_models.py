"""Decoder, search, student encoder."""

import math

import numpy as np
import pytest
import torch

from earshot_train import search
from earshot_train.models.captioner import build_captioner
from earshot_train.models.decoder import CaptionDecoder, DecoderConfig
from earshot_train.models.student_cnn import StudentCNN, StudentCNNConfig
from earshot_train.shared import shared_path
from earshot_train.tokenizer import END, START


def small_decoder(**kw) -> CaptionDecoder:
    torch.manual_seed(0)
    cfg = dict(vocab_size=11, memory_dim=6, d_model=16, n_heads=2, n_layers=2, ffn_dim=32, dropout=0.0)
    cfg.update(kw)
    return CaptionDecoder(DecoderConfig(**cfg)).eval()


def test_decoder_is_causal_and_last_logits_is_last_position():
    dec = small_decoder()
    mem = torch.randn(2, 5, 6)
    a = torch.tensor([[START, 4, 5, 6], [START, 7, 8, 9]])
    b = a.clone()
    b[:, 3] = torch.tensor([10, 4])
    with torch.no_grad():
        la, lb = dec(a, mem), dec(b, mem)
        assert la.shape == (2, 4, 11)
        torch.testing.assert_close(la[:, :3], lb[:, :3])  # earlier positions ignore later tokens
        assert not torch.allclose(la[:, 3], lb[:, 3])
        torch.testing.assert_close(dec.last_logits(a, mem), la[:, -1])
        assert not torch.allclose(dec(a, mem + 1.0)[:, 0], la[:, 0])  # memory matters


def test_decoder_tied_embedding_and_config_errors():
    dec = small_decoder()
    assert dec.classifier.weight.data_ptr() == dec.word_embedding.weight.data_ptr()
    assert small_decoder(tie_weights=False).classifier.weight.data_ptr() != 0
    with pytest.raises(ValueError):
        small_decoder(n_heads=3)
    with pytest.raises(ValueError):
        dec(torch.ones(1, 200, dtype=torch.long), torch.zeros(1, 2, 6))


def test_decoder_names_match_released_checkpoint():
    tsv = shared_path("reference", "wsntxxn-effb2-trm", "state_dict_audiocaps.tsv")
    if tsv is None:
        pytest.skip("shared reference folder absent (set EARSHOT_SHARED)")
    want = {}
    for line in tsv.read_text().splitlines()[1:]:
        key, shape, _ = line.split("\t")
        if key.startswith("model.model.decoder."):
            want[key.removeprefix("model.model.decoder.")] = tuple(
                int(x) for x in shape.strip("()").split(",") if x
            )
    dec = CaptionDecoder(DecoderConfig(vocab_size=4981, memory_dim=1408))
    have = {k: tuple(v.shape) for k, v in dec.state_dict().items()}
    assert have == want


def _table_step(table):
    """Decoder stand-in: next-token probabilities from a {prefix tuple: {token: p}} table (V = 5)."""

    def step(tokens: np.ndarray, memory: np.ndarray) -> np.ndarray:
        out = np.full((tokens.shape[0], 5), -1e9, np.float32)
        for b, row in enumerate(tokens.tolist()):
            for tok, p in table.get(tuple(row[1:]), {END: 1.0}).items():
                out[b, tok] = math.log(p)
        return out

    return step


TABLE = {
    (): {3: 0.6, 4: 0.4},
    (3,): {3: 0.35, 4: 0.35, END: 0.3},
    (4,): {END: 0.9, 3: 0.1},
    (3, 3): {END: 1.0},
    (3, 4): {END: 0.5, 3: 0.5},
}


def test_greedy_and_beam_on_a_hand_worked_table():
    step = _table_step(TABLE)
    mem = np.zeros((1, 1, 1), np.float32)
    # greedy: 3 (.6), then the 3/4 tie goes to the lower id 3, then <end>
    assert search.greedy(step, mem, 10) == [3, 3, END]
    # beam 3: [4 <end>] scores ln .36 / 2 = -0.511 > [3 3 <end>] ln .21 / 3 = -0.520
    assert search.beam_search(step, mem, 3, 10, 1.0) == [4, END]
    # max_len 1 ends every hypothesis after one token: the most likely single token wins
    assert search.beam_search(step, mem, 3, 1, 1.0) == [3]
    assert search.greedy(step, mem, 1) == [3]
    # beam 1 equals greedy
    assert search.beam_search(step, mem, 1, 10, 1.0) == [3, 3, END]
    with pytest.raises(ValueError):
        search.beam_search(step, mem, 0, 10)


def test_student_cnn_shapes_and_errors():
    m = StudentCNN(StudentCNNConfig()).eval()
    with torch.no_grad():
        o = m(torch.randn(2, 64, 1001))
    assert o["memory"].shape == (2, 32, 256) and o["emb"].shape == (2, 256)
    assert m.n_out_frames(1001) == 32
    with pytest.raises(ValueError):
        m(torch.randn(2, 40, 100))
    with pytest.raises(ValueError):
        StudentCNN(StudentCNNConfig(channels=[]))


def test_default_student_is_smaller_and_cheaper_than_mn04_teacher():
    from earshot_train.results import count_macs
    from earshot_train.teacher.mn04 import MN04

    torch.manual_seed(0)
    student = StudentCNN(StudentCNNConfig()).eval()
    teacher = MN04().eval()
    n_s = sum(p.numel() for p in student.parameters())
    n_t = sum(p.numel() for p in teacher.features.parameters())
    assert 100_000 < n_s < n_t / 2, (n_s, n_t)
    macs_s = count_macs(student, torch.randn(1, 64, 1001))  # 10 s at the student front end
    macs_t = count_macs(teacher.features, torch.randn(1, 1, 128, 1000))  # 10 s at mn04's
    assert macs_s < macs_t / 2, (macs_s, macs_t)


def test_build_captioner_kinds():
    m = build_captioner(
        {"encoder": "teacher_frames", "teacher_dim": 8, "decoder": {"d_model": 16, "n_heads": 2}}, 9, 64
    )
    logits, enc = m(torch.randn(2, 3, 8), torch.tensor([[START, 4], [START, 5]]))
    assert logits.shape == (2, 2, 9) and enc["emb"].shape == (2, 8)
    with pytest.raises(ValueError):
        build_captioner({"encoder": "nope"}, 9, 64)


def test_tag_token_memory_is_the_same_in_training_and_in_the_bundle_encoder():
    """The cached-frames training encoder and the exported mn04 encoder append the same tag row."""
    from earshot_train.export import TeacherEncoder
    from earshot_train.models.captioner import FramesWithTags, mn04_tag_token
    from earshot_train.teacher.mn04 import MN04

    torch.manual_seed(3)
    mn04 = MN04().eval()
    token = mn04_tag_token(384, weights="random")
    token.head.load_state_dict(torch.nn.Sequential(*list(mn04.classifier)[2:]).state_dict())
    mel = torch.randn(2, 128, 200)
    with torch.no_grad():
        frames = mn04(mel)["frames"]
        train_out = FramesWithTags(384, token)(frames)
        bundle_out = TeacherEncoder(mn04, token)(mel)
    assert train_out["memory"].shape == (2, frames.shape[1] + 1, 384)
    torch.testing.assert_close(train_out["memory"], bundle_out["memory"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(train_out["tags"], mn04(mel)["logits"], rtol=1e-4, atol=1e-4)
    assert not any(p.requires_grad for p in token.head.parameters())
    assert all(p.requires_grad for p in token.proj.parameters())
