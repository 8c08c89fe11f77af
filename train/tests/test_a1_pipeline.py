"""End to end on the tiny synthetic corpus: corpus -> teacher -> students (every loss, resume, DDP) -> eval ->
export with onnxruntime parity. No shared data needed (random mn04 weights)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from earshot_train import cli

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TEACHER = str(CONFIGS / "tiny-teacher.toml")
STUDENT = str(CONFIGS / "tiny-student.toml")


@pytest.fixture(scope="module")
def env(tmp_path_factory, tiny_corpus):
    root = tmp_path_factory.mktemp("pipeline")
    old = os.environ.get("EARSHOT_CACHE")
    os.environ["EARSHOT_CACHE"] = str(root / "cache")
    # The session's tiny corpus is the one tiny-teacher.toml names: `corpus` finds it complete.
    shutil.copytree(tiny_corpus, root / "cache" / "corpus" / "tiny")
    runs = root / "runs"
    sets = ["--set", f"experiment.runs_dir={runs}"]
    try:
        assert cli.main(["corpus", "--config", TEACHER, "--no-progress", *sets]) == 0
        assert cli.main(["teacher", "--config", TEACHER, *sets]) == 0
        yield {"root": root, "runs": runs, "sets": sets}
    finally:
        if old is None:
            os.environ.pop("EARSHOT_CACHE", None)
        else:
            os.environ["EARSHOT_CACHE"] = old


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _state(run: Path) -> dict:
    return torch.load(run / "ckpt" / "last.pt", weights_only=False)["model"]


def test_teacher_outputs(env):
    run = env["runs"] / "tiny-teacher"
    manifest = [
        json.loads(line)
        for line in (Path(os.environ["EARSHOT_CACHE"]) / "corpus" / "tiny" / "manifest.jsonl")
        .read_text()
        .splitlines()
    ]
    caps = [json.loads(line) for line in (run / "kd" / "captions.jsonl").read_text().splitlines()]
    assert [c["id"] for c in caps] == [r["id"] for r in manifest]  # every clip, audio-only included
    assert any(r["split"] == "audio_only" for r in manifest)
    assert all(isinstance(c["caption"], str) and c["ids"] for c in caps)
    with np.load(run / "kd" / "emb.npz") as z:
        assert z["emb"].shape == (len(manifest), 384)
    m = _metrics(run)
    assert {r["split"] for r in m} == {"train", "val"}
    assert all(np.isfinite(r["loss"]) for r in m)
    assert (run / "vocab.txt").read_text().startswith("<pad>\n<start>\n<end>\n<unk>\n")


def _student(env, name, extra, resume=False):
    args = ["student", "--config", STUDENT, *env["sets"], "--set", f"experiment.name={name}"]
    for e in extra:
        args += ["--set", e]
    if resume:
        args.append("--resume")
    assert cli.main(args) == 0
    return env["runs"] / name


@pytest.mark.parametrize("loss", ["ce", "seq_kd", "enc_mse", "enc_infonce"])
def test_each_loss_alone_trains(env, loss):
    weights = {k: (1.0 if k == loss else 0.0) for k in ("ce", "seq_kd", "enc_mse", "enc_infonce")}
    run = _student(env, f"only-{loss}", [f"loss.{k}={v}" for k, v in weights.items()] + ["optim.max_steps=3"])
    train = [r for r in _metrics(run) if r.get("split") == "train"]
    assert len(train) == 3
    assert all(loss in r and np.isfinite(r[loss]) for r in train)
    others = {"ce", "seq_kd", "enc_mse", "enc_infonce"} - {loss}
    assert not any(k in r for r in train for k in others)


def test_resume_continues_exactly(env):
    full = _student(env, "full", [])
    part = _student(env, "part", ["experiment.epochs_per_run=1"])
    ck = torch.load(part / "ckpt" / "last.pt", weights_only=False)
    assert ck["epoch"] == 0
    part = _student(env, "part", [], resume=True)
    a, b = _state(full), _state(part)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    assert any(r.get("event") == "resume" for r in _metrics(part))
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["student"])
    assert (
        cli.main(["student", "--config", STUDENT, *env["sets"], "--set", "experiment.name=none", "--resume"])
        == 2
    )


def test_ddp_world_size_one_gloo_matches_single_process(env):
    full = env["runs"] / "full"
    if not (full / "ckpt" / "last.pt").is_file():
        full = _student(env, "full", [])
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        # the rendezvous address by number: a host name that does not resolve (a chroot, a container
        # without /etc/hosts) must not hang the worker for 5 minutes
        "--local-addr=127.0.0.1",
        "--nproc_per_node=1",
        "-m",
        "earshot_train",
        "student",
        "--config",
        STUDENT,
        *env["sets"],
        "--set",
        "experiment.name=ddp",
        "--set",
        "experiment.device=cpu",
    ]
    pkg = str(Path(__file__).resolve().parents[1])
    run_env = {**os.environ, "PYTHONPATH": pkg + os.pathsep + os.environ.get("PYTHONPATH", "")}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=run_env)
    assert res.returncode == 0, res.stderr[-3000:]
    a, b = _state(full), _state(env["runs"] / "ddp")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def test_eval_writes_scores(env):
    if not (env["runs"] / "full" / "ckpt" / "best.pt").is_file():
        _student(env, "full", [])
    args = ["eval", "--config", STUDENT, *env["sets"], "--set", "experiment.name=full", "--split", "test_mix"]
    assert cli.main(args) == 0
    res = json.loads((env["runs"] / "full" / "eval_test_mix.json").read_text())
    for k in ("BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr-D", "source_accuracy"):
        assert isinstance(res["metrics"][k], float)
    assert str(res["metrics"]["SPICE"]).startswith("unavailable")
    assert res["n_clips"] == len(res["predictions"]) > 0
    assert cli.main(args[:-1] + ["nope"]) == 2  # unknown split: one clear error


def _check_bundle(bundle: Path, n_mels: int) -> None:
    import onnxruntime as ort

    man = json.loads((bundle / "manifest.json").read_text())
    assert man["format"] == "earshot-bundle" and man["version"] == 1
    assert man["encoder"]["input_shape"][1] == n_mels
    par = json.loads((bundle / "parity.json").read_text())
    assert par["ids_identical"] and par["encoder_max_abs_diff"] < 1e-4 and par["decoder_max_abs_diff"] < 1e-4
    enc = ort.InferenceSession(str(bundle / "encoder.onnx"), providers=["CPUExecutionProvider"])
    mem = enc.run(None, {"mel": np.zeros(man["encoder"]["input_shape"], np.float32)})[0]
    assert list(mem.shape) == man["encoder"]["output_shape"]
    dec = ort.InferenceSession(str(bundle / "decoder.onnx"), providers=["CPUExecutionProvider"])
    toks = np.array([[1, 4, 5]] * 3, np.int64)
    logits = dec.run(None, {"tokens": toks, "memory": np.repeat(mem, 3, 0)})[0]
    assert logits.shape == (3, man["decoder"]["vocab_size"])
    words = (bundle / "vocab.txt").read_text().splitlines()
    assert len(words) == man["decoder"]["vocab_size"] and words[:4] == ["<pad>", "<start>", "<end>", "<unk>"]


def test_export_student_and_teacher_bundles_with_parity(env):
    if not (env["runs"] / "full" / "ckpt" / "best.pt").is_file():
        _student(env, "full", [])
    out_s = env["root"] / "bundle-student"
    assert (
        cli.main(
            [
                "export",
                "--config",
                STUDENT,
                *env["sets"],
                "--set",
                "experiment.name=full",
                "--out",
                str(out_s),
            ]
        )
        == 0
    )
    _check_bundle(out_s, 64)
    out_t = env["root"] / "bundle-teacher"
    assert cli.main(["export", "--config", TEACHER, *env["sets"], "--out", str(out_t)]) == 0
    _check_bundle(out_t, 128)
    assert json.loads((out_t / "manifest.json").read_text())["frontend"]["mel_scale"] == "kaldi"


def test_mn04_tuned_student_trains_on_cached_maps_and_exports_what_it_trained(env):
    """A student fine-tuning mn04's last blocks: maps cached, every loss term logged (tag KD and encoder
    KD against the frozen mn04), only the tuned part moves, and the exported bundle (mn04 with the
    tuned weights, tags output) passes the onnxruntime parity check."""
    run = _student(
        env,
        "tuned",
        [
            "teacher.weights=random",  # the tiny teacher's mn04 (tiny-student.toml has the shared one)
            "model.encoder=mn04_tuned",
            "model.mn04_tuned.maps_at=12",
            "model.mn04_tuned.train_from=13",
            "loss.seq_kd=0",
            "loss.enc_infonce=0",
            "loss.enc_mse=1.0",
            "loss.tag_kd=1.0",
            "optim.encoder_lr_scale=0.5",
            "optim.max_steps=3",
            "export.tags=true",
        ],
    )
    train = [r for r in _metrics(run) if r.get("split") == "train"]
    assert len(train) == 3 and all(np.isfinite(r[k]) for r in train for k in ("ce", "enc_mse", "tag_kd"))
    ck = torch.load(run / "ckpt" / "last.pt", weights_only=False)
    lrs = [g["lr"] for g in ck["optim"]["param_groups"]]
    assert len(lrs) == 2 and lrs[1] == pytest.approx(0.5 * lrs[0])
    st = ck["model"]
    # the frozen base is untouched, the tuned copy of the same block moved
    from earshot_train.models.captioner import mn04_base

    base = mn04_base("random", 7).state_dict()
    torch.testing.assert_close(
        st["encoder.base.features.13.block.0.0.weight"], base["features.13.block.0.0.weight"]
    )
    assert not torch.equal(st["encoder.top.13.block.0.0.weight"], base["features.13.block.0.0.weight"])
    out = env["root"] / "bundle-tuned"
    args = ["export", "--config", STUDENT, *env["sets"], "--set", "experiment.name=tuned"]
    for e in (
        "teacher.weights=random",
        "model.encoder=mn04_tuned",
        "model.mn04_tuned.train_from=13",
        "export.tags=true",
    ):
        args += ["--set", e]
    assert cli.main([*args, "--out", str(out)]) == 0
    _check_bundle(out, 128)
    par = json.loads((out / "parity.json").read_text())
    assert par["tags_max_abs_diff"] < 1e-3
