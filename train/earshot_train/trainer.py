"""Training, decoding and evaluation for the teacher decoder and the students.

Inputs are cached once and reused every epoch:
- teacher: the mn04 frame sequences of ``earshot_train.teacher_cache`` (``<corpus>/teacher/mn04``);
- students: log-mel features of every clip (the student front end, float16 ``.npy`` per clip under
  ``<corpus>/features/<frontend digest>/``), computed with :func:`earshot_train.frontend.logmel`.

A run lives in ``<runs>/<experiment>/``: ``config.json``, ``vocab.txt``, ``metrics.jsonl`` (one JSON object
per log line), ``ckpt/last.pt`` (resumable: model, loss heads, optimiser, schedule, RNG states; written at
the end of every epoch) and ``ckpt/best.pt`` (lowest validation loss). The teacher run also writes
``kd/captions.jsonl`` (beam captions for every clip, audio-only ones included) and ``kd/emb.npz``
(teacher clip embeddings) for the students' KD losses.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from earshot_train import augment, dist, search
from earshot_train.config import corpus_table, dumps, encoder_kd_from_run, encoder_kd_from_self, run_dir
from earshot_train.frontend import STUDENT_SPEC, FrontendSpec, logmel
from earshot_train.losses import KDLoss, caption_ce
from earshot_train.models.captioner import Captioner, build_captioner, mn04_base
from earshot_train.tokenizer import PAD, Tokenizer

# ------------------------------------------------------------------------------------------ basics


def pick_device(cfg: dict[str, Any]) -> torch.device:
    want = cfg["experiment"]["device"]
    if want == "cuda" and not torch.cuda.is_available():
        raise ValueError("experiment.device = 'cuda' but no CUDA device is available")
    if want == "cuda" or (want == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (third-party code may use the global RNG)
    torch.manual_seed(seed)


def setup_threads(cfg: dict[str, Any]) -> None:
    n = int(cfg["experiment"]["threads"])
    if n > 0:
        torch.set_num_threads(n)


def _atomic_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _log(path: Path, rec: dict[str, Any]) -> None:
    if dist.is_main():
        with path.open("a") as f:
            f.write(json.dumps(rec) + "\n")


# ------------------------------------------------------------------------------------------ data


def corpus_info(cfg: dict[str, Any]) -> tuple[Path, list[dict[str, Any]]]:
    """(corpus dir, manifest rows); a clear error when the corpus has not been built."""
    from earshot_train.corpus import CorpusConfig, corpus_dir, read_manifest

    ccfg = CorpusConfig.from_dict(corpus_table(cfg))
    cdir = corpus_dir(ccfg)
    if not (cdir / "manifest.jsonl").is_file():
        raise FileNotFoundError(
            f"corpus {ccfg.name!r} not built at {cdir}; run: earshot-train corpus --config {cfg['_path']}"
        )
    return cdir, read_manifest(cdir)


def limit_captions(rows: list[dict[str, Any]], fraction: float) -> list[dict[str, Any]]:
    """Keep the captions of a fixed share of the captioned ``train`` clips; the others become audio-only.

    The subset depends only on the clip ids (a hash), so every run with the same fraction sees the same
    labelled clips; audio-only clips still serve the KD losses (sequence KD, encoder KD).
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"data.caption_fraction must be in (0, 1], got {fraction}")
    if fraction >= 1.0:
        return rows
    out = []
    for r in rows:
        if r["split"] == "train":
            h = int(hashlib.sha256(r["id"].encode()).hexdigest()[:8], 16) / 2**32
            if h >= fraction:
                r = {**r, "split": "audio_only", "captions": []}
        out.append(r)
    return out


def select_train_rows(
    rows: list[dict[str, Any]],
    cfg: dict[str, Any],
    kd_captions: dict[str, list[int]] | None,
    kd_emb: dict[str, np.ndarray] | None,
) -> list[dict[str, Any]]:
    """Training clips: captioned train clips, plus the KD splits (audio-only) when KD targets exist —
    teacher captions or embeddings from a teacher run, or (``mn04_tuned`` with encoder KD) the frozen
    mn04 inside the encoder, which gives every clip a target."""
    splits = list(cfg["data"]["train_splits"])
    lw = cfg["loss"]
    own_enc_kd = encoder_kd_from_self(cfg)
    if kd_captions is not None or kd_emb is not None or own_enc_kd:
        splits += [s for s in cfg["data"]["kd_splits"] if s not in splits]
    keep = []
    for r in rows:
        if r["split"] not in splits:
            continue
        if kd_emb is not None and r["id"] not in kd_emb:
            continue  # every item of a batch needs a teacher embedding
        has_ref = bool(r.get("captions")) and lw["ce"] > 0
        has_kd = kd_captions is not None and r["id"] in kd_captions
        if has_ref or has_kd or kd_emb is not None or own_enc_kd:
            keep.append(r)
    return repeat_by_kind(keep, cfg["data"]["repeat_kinds"])


def repeat_by_kind(rows: list[dict[str, Any]], repeats: dict[str, int]) -> list[dict[str, Any]]:
    """``data.repeat_kinds``: each row ``repeats[kind]`` times in a row (default once), order kept."""
    out: list[dict[str, Any]] = []
    for r in rows:
        out += [r] * int(repeats.get(r.get("kind", ""), 1))
    return out


def spec_digest(spec: FrontendSpec) -> str:
    return hashlib.sha256(json.dumps(spec.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


def feature_dir(cfg: dict[str, Any], cdir: Path, spec: FrontendSpec) -> Path:
    base = cfg["data"]["feature_cache"]
    root = Path(base) if base else cdir / "features"
    return root / spec_digest(spec)


def cache_features(
    cdir: Path, rows: list[dict[str, Any]], spec: FrontendSpec, out: Path, progress: bool = True
) -> Path:
    """Compute (once) the log-mel of every clip as float16 ``<out>/<id>.npy`` [n_mels, frames]."""
    from earshot_train.audio_io import load_audio

    out.mkdir(parents=True, exist_ok=True)
    (out / "frontend.json").write_text(json.dumps(spec.to_dict(), indent=1) + "\n")
    todo = [r for r in rows if not (out / f"{r['id']}.npy").is_file()]
    for r in tqdm(todo, desc="log-mel cache", disable=not progress or not todo):
        x = load_audio(cdir / r["audio"], spec.sample_rate)
        feats = logmel(x, spec)[0].numpy().astype(np.float16)
        tmp = out / f"{r['id']}.tmp{os.getpid()}.npy"
        np.save(tmp, feats)
        os.replace(tmp, out / f"{r['id']}.npy")
    return out


def ensure_teacher_cache(
    cfg: dict[str, Any], cdir: Path, rows: list[dict[str, Any]], maps_at: int | None = None
) -> Path:
    """The mn04 frame/embedding cache of every clip, with the maps at ``features[maps_at]`` when given
    (built when missing; random weights if configured)."""
    from earshot_train import teacher_cache

    out = teacher_cache.default_out_dir(cdir)
    weights = cfg["teacher"]["weights"]
    info = out / "teacher_info.json"
    if info.is_file():  # one cache per corpus: never mix clips of the pretrained and a random mn04
        cached = json.loads(info.read_text()).get("weights", "shared")
        if cached != weights:
            raise ValueError(
                f"the mn04 cache {out} was made with teacher.weights = {cached!r}, this run asks for"
                f" {weights!r}: use the same weights or remove that folder"
            )
    if all(
        teacher_cache.clip_path(out, r["id"]).is_file()
        and (maps_at is None or teacher_cache.maps_path(out, maps_at, r["id"]).is_file())
        for r in rows
    ):
        return out
    model = mn04_base("random", int(cfg["experiment"]["seed"])) if weights == "random" else None
    with torch.no_grad():
        teacher_cache.cache_teacher_features(
            cdir,
            out,
            model=model,
            labels=None,
            batch_size=int(cfg["teacher"]["batch_size"]),
            progress=bool(cfg["experiment"]["progress"]),
            maps_at=maps_at,
            weights=weights,
        )
    return out


class InputStore:
    """Loads the model input of a clip as float32: teacher frames (npz), or an npy per clip (student
    features, or mn04 maps for ``mn04_tuned``)."""

    def __init__(self, kind: str, root: Path):
        self.kind, self.root = kind, root

    def __call__(self, clip_id: str) -> np.ndarray:
        if self.kind == "teacher":
            with np.load(self.root / "clips" / f"{clip_id}.npz") as z:
                return z["frames"].astype(np.float32)
        return np.load(self.root / f"{clip_id}.npy").astype(np.float32)


class CaptionData(Dataset):
    """One item per clip: input, one reference caption (cycled by epoch), the teacher caption, emb."""

    def __init__(
        self,
        rows: list[dict[str, Any]],
        store: InputStore,
        tok: Tokenizer,
        max_len: int,
        kd_captions: dict[str, list[int]] | None = None,
        kd_emb: dict[str, np.ndarray] | None = None,
    ):
        self.rows, self.store, self.tok, self.max_len = rows, store, tok, max_len
        self.kd_captions, self.kd_emb = kd_captions, kd_emb
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        r = self.rows[i]
        caps = r.get("captions") or []
        item: dict[str, Any] = {"id": r["id"], "x": self.store(r["id"])}
        item["ref"] = self.tok.encode(caps[(self.epoch + i) % len(caps)], self.max_len) if caps else None
        if self.kd_captions is not None:
            item["kd"] = self.kd_captions.get(r["id"])
        if self.kd_emb is not None:
            item["t_emb"] = self.kd_emb[r["id"]]
        return item


def _pad(seqs: list[list[int] | None]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(inputs [B, L], targets [B, L], has [B]) from <start> ... <end> sequences; None -> all PAD."""
    n = max([len(s) - 1 for s in seqs if s] + [1])
    inp = torch.full((len(seqs), n), PAD, dtype=torch.long)
    out = torch.full((len(seqs), n), PAD, dtype=torch.long)
    has = torch.zeros(len(seqs), dtype=torch.bool)
    for b, s in enumerate(seqs):
        if s:
            inp[b, : len(s) - 1] = torch.tensor(s[:-1])
            out[b, : len(s) - 1] = torch.tensor(s[1:])
            has[b] = True
    return inp, out, has


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    batch: dict[str, Any] = {"ids": [it["id"] for it in items]}
    batch["x"] = torch.from_numpy(np.stack([it["x"] for it in items]))
    batch["ref_in"], batch["ref_out"], batch["has_ref"] = _pad([it["ref"] for it in items])
    if "kd" in items[0]:
        batch["kd_in"], batch["kd_out"], batch["has_kd"] = _pad([it["kd"] for it in items])
    if "t_emb" in items[0]:
        batch["t_emb"] = torch.from_numpy(np.stack([it["t_emb"] for it in items]).astype(np.float32))
    return batch


# ------------------------------------------------------------------------------------------ model


class TrainModule(nn.Module):
    """Captioner + loss heads behind one forward (what DDP wraps)."""

    def __init__(self, captioner: Captioner, loss: KDLoss, augment_cfg: dict[str, Any] | None = None):
        super().__init__()
        self.captioner, self.loss = captioner, loss
        self.augment_cfg = augment_cfg or {}
        augment.validate(self.augment_cfg)

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        x = batch["x"]
        if self.captioner.training:  # a no-op unless [augment] sets masks
            x = augment.spec_augment(x, self.augment_cfg)
        enc = self.captioner.encode(x)
        mem = enc["memory"]
        kw: dict[str, Any] = {}
        w = self.loss.w
        has = batch["has_ref"]
        if w["ce"] > 0 and bool(has.any()):
            kw["logits_ref"] = self.captioner.decoder(batch["ref_in"][has], mem[has])
            kw["targets_ref"] = batch["ref_out"][has]
        if w["seq_kd"] > 0 and "kd_in" in batch and bool(batch["has_kd"].any()):
            hk = batch["has_kd"]
            kw["logits_kd"] = self.captioner.decoder(batch["kd_in"][hk], mem[hk])
            kw["targets_kd"] = batch["kd_out"][hk]
        # the encoder-KD target: the teacher run's embedding, or (mn04_tuned) the frozen mn04's own
        t_emb = batch["t_emb"] if "t_emb" in batch else enc.get("teacher_emb")
        if t_emb is not None and (w["enc_mse"] > 0 or w["enc_infonce"] > 0):
            kw["student_emb"], kw["teacher_emb"] = enc["emb"], t_emb
        if w["tag_kd"] > 0 and "teacher_tags" in enc:
            kw["student_tags"], kw["teacher_tags"] = enc["tags"], enc["teacher_tags"]
        return self.loss(**kw)


def param_groups(module: TrainModule, optim_cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """Trainable parameters: the encoder's at ``lr * encoder_lr_scale``, the rest at ``lr``."""
    enc = [p for p in module.captioner.encoder.parameters() if p.requires_grad]
    enc_ids = {id(p) for p in enc}
    rest = [p for p in module.parameters() if p.requires_grad and id(p) not in enc_ids]
    groups = [{"params": rest}]
    if enc:
        groups.append({"params": enc, "lr": float(optim_cfg["lr"]) * float(optim_cfg["encoder_lr_scale"])})
    return groups


def _to(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


def input_spec(cfg: dict[str, Any]) -> FrontendSpec:
    """The student front end (the paper's: 16 kHz, 64 HTK mels, dB)."""
    return STUDENT_SPEC


def build_model(cfg: dict[str, Any], vocab_size: int) -> Captioner:
    model_cfg = dict(
        cfg["model"],
        tag_token_weights=cfg["teacher"]["weights"],
        mn04_weights=cfg["teacher"]["weights"],
        mn04_seed=int(cfg["experiment"]["seed"]),
        mn04_targets=bool(cfg["loss"]["tag_kd"]) or encoder_kd_from_self(cfg),
    )
    return build_captioner(model_cfg, vocab_size, input_spec(cfg).n_mels)


# ------------------------------------------------------------------------------------------ run setup


class Run:
    """Everything a command needs about an experiment: data, vocabulary, model, paths."""

    def __init__(self, cfg: dict[str, Any], need_kd: bool = True):
        self.cfg = cfg
        self.kind = cfg["experiment"]["kind"]
        self.dir = run_dir(cfg)
        self.progress = bool(cfg["experiment"]["progress"]) and dist.is_main()
        cdir, rows = corpus_info(cfg)
        self.cdir, self.rows = cdir, limit_captions(rows, float(cfg["data"]["caption_fraction"]))
        self.by_id = {r["id"]: r for r in self.rows}
        if cfg["model"]["encoder"] == "teacher_frames":  # teachers, and students on mn04's frames
            from earshot_train.teacher_cache import default_out_dir

            if dist.is_main():
                ensure_teacher_cache(cfg, self.cdir, self.rows)
            dist.barrier()
            self.store = InputStore("teacher", default_out_dir(self.cdir))
        elif cfg["model"]["encoder"] == "mn04_tuned":  # students fine-tuning mn04's last blocks
            from earshot_train.teacher_cache import default_out_dir, maps_dir

            maps_at = int(cfg["model"]["mn04_tuned"]["maps_at"])
            if dist.is_main():
                ensure_teacher_cache(cfg, self.cdir, self.rows, maps_at)
            dist.barrier()
            self.store = InputStore("maps", maps_dir(default_out_dir(self.cdir), maps_at))
        else:
            spec = input_spec(cfg)
            fdir = feature_dir(cfg, self.cdir, spec)
            if dist.is_main():
                cache_features(self.cdir, self.rows, spec, fdir, self.progress)
            dist.barrier()
            self.store = InputStore("student", fdir)
        self.teacher_dir = run_dir(cfg, cfg["data"]["teacher"]) if cfg["data"]["teacher"] else None
        self.tok = self._tokenizer()
        self.kd_captions: dict[str, list[int]] | None = None
        self.kd_emb: dict[str, np.ndarray] | None = None
        if self.kind == "student" and need_kd:
            self._load_kd()

    def _tokenizer(self) -> Tokenizer:
        own = self.dir / "vocab.txt"
        if own.is_file():
            return Tokenizer.load(own)
        if self.kind == "student" and self.teacher_dir is not None:
            tv = self.teacher_dir / "vocab.txt"
            if not tv.is_file():
                raise FileNotFoundError(f"teacher vocabulary {tv} missing: train the teacher first")
            tok = Tokenizer.load(tv)
        else:
            caps = [
                c for r in self.rows if r["split"] in self.cfg["data"]["train_splits"] for c in r["captions"]
            ]
            if not caps:
                raise ValueError("no training captions in the corpus")
            tok = Tokenizer.build(caps, int(self.cfg["data"]["min_count"]))
        if dist.is_main():
            self.dir.mkdir(parents=True, exist_ok=True)
            tok.save(own)
        return tok

    def _load_kd(self) -> None:
        lw = self.cfg["loss"]
        enc_from_run = encoder_kd_from_run(self.cfg)
        if not (lw["seq_kd"] or enc_from_run):
            return
        assert self.teacher_dir is not None
        kd = self.teacher_dir / "kd"
        if lw["seq_kd"]:
            p = kd / "captions.jsonl"
            if not p.is_file():
                raise FileNotFoundError(f"teacher captions {p} missing: run the teacher command first")
            self.kd_captions = {}
            for line in p.read_text().splitlines():
                rec = json.loads(line)
                self.kd_captions[rec["id"]] = self.tok.encode(rec["caption"], self.cfg["data"]["max_len"])
        if enc_from_run:
            p = kd / "emb.npz"
            if not p.is_file():
                raise FileNotFoundError(f"teacher embeddings {p} missing: run the teacher command first")
            with np.load(p) as z:
                self.kd_emb = {str(i): e for i, e in zip(z["ids"], z["emb"], strict=True)}

    def rows_for(self, splits: list[str]) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["split"] in splits]

    def train_rows(self) -> list[dict[str, Any]]:
        """Training clips (:func:`select_train_rows`)."""
        return select_train_rows(self.rows, self.cfg, self.kd_captions, self.kd_emb)

    def dataset(self, rows: list[dict[str, Any]]) -> CaptionData:
        return CaptionData(
            rows, self.store, self.tok, int(self.cfg["data"]["max_len"]), self.kd_captions, self.kd_emb
        )

    def teacher_dim(self) -> int:
        if self.kd_emb:
            return int(next(iter(self.kd_emb.values())).shape[0])
        return int(self.cfg["model"]["teacher_dim"])


# ------------------------------------------------------------------------------------------ training


def _lr_lambda(warmup: int, total: int):
    def f(step: int) -> float:
        if warmup > 0 and step < warmup:
            return (step + 1) / warmup
        if total <= warmup:
            return 1.0
        p = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * p))

    return f


def _rng_state() -> dict[str, Any]:
    st = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict[str, Any]) -> None:
    random.setstate(st["python"])
    np.random.set_state(st["numpy"])  # noqa: NPY002
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


@torch.no_grad()
def validation_loss(model: Captioner, data: CaptionData, device: torch.device, batch_size: int) -> float:
    """Mean token CE (no smoothing) on the reference captions (first caption of each clip)."""
    model.eval()
    data.epoch = 0
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, collate_fn=collate)
    tot, n = 0.0, 0
    for batch in loader:
        batch = _to(batch, device)
        has = batch["has_ref"]
        if not bool(has.any()):
            continue
        mem = model.encode(batch["x"])["memory"]
        logits = model.decoder(batch["ref_in"][has], mem[has])
        k = int((batch["ref_out"][has] != PAD).sum())
        tot += float(caption_ce(logits, batch["ref_out"][has])) * k
        n += k
    return tot / max(n, 1)


def train(cfg: dict[str, Any], resume: bool = False) -> dict[str, Any]:
    """Train the experiment's model; returns a summary (steps, best validation loss, paths)."""
    setup_threads(cfg)
    device = pick_device(cfg)
    rank, world = dist.setup(device)
    try:
        return _train(cfg, resume, device, rank, world)
    finally:
        dist.cleanup()


def _train(cfg: dict[str, Any], resume: bool, device: torch.device, rank: int, world: int) -> dict[str, Any]:
    seed = int(cfg["experiment"]["seed"])
    seed_everything(seed)
    run = Run(cfg)
    rdir = run.dir
    if rank == 0:
        rdir.mkdir(parents=True, exist_ok=True)
        (rdir / "config.json").write_text(dumps(cfg) + "\n")
    o = cfg["optim"]
    train_rows = run.train_rows()
    if not train_rows:
        raise ValueError("no training clips")
    val_rows = [r for r in run.rows_for([cfg["data"]["val_split"]]) if r.get("captions")]
    train_data = run.dataset(train_rows)

    seed_everything(seed)
    captioner = build_model(cfg, len(run.tok)).to(device)
    loss = KDLoss(cfg["loss"], captioner.encoder.out_dim, run.teacher_dim()).to(device)
    aug = cfg["augment"]
    if run.kind != "student" and augment.enabled(aug):
        raise ValueError("config: [augment] masks student log-mel inputs; the teacher run does not take it")
    module = TrainModule(captioner, loss, aug)
    wrapped: nn.Module = module
    if world > 1:
        wrapped = nn.parallel.DistributedDataParallel(
            module, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )
    optim = torch.optim.AdamW(param_groups(module, o), lr=o["lr"], weight_decay=o["weight_decay"])
    steps_per_epoch = math.ceil(len(train_rows) / world / o["batch_size"])
    total = steps_per_epoch * o["epochs"]
    if o["max_steps"]:
        total = min(total, int(o["max_steps"]))
    sched = torch.optim.lr_scheduler.LambdaLR(optim, _lr_lambda(int(o["warmup_steps"]), total))

    step, start_epoch, best = 0, 0, math.inf
    ckpt_last, ckpt_best = rdir / "ckpt" / "last.pt", rdir / "ckpt" / "best.pt"
    metrics = rdir / "metrics.jsonl"
    if resume:
        if not ckpt_last.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {ckpt_last}")
        ck = torch.load(ckpt_last, map_location=device, weights_only=False)
        captioner.load_state_dict(ck["model"])
        loss.load_state_dict(ck["loss"])
        optim.load_state_dict(ck["optim"])
        sched.load_state_dict(ck["sched"])
        step, start_epoch, best = ck["step"], ck["epoch"] + 1, ck["best_val"]
        _set_rng_state(ck["rng"])
        _log(metrics, {"event": "resume", "step": step, "epoch": start_epoch})
    elif rank == 0 and metrics.exists():
        metrics.unlink()

    t0 = time.time()
    done = step >= total
    for epoch in range(start_epoch, o["epochs"]):
        if done:
            break
        captioner.train()
        train_data.epoch = epoch
        g = torch.Generator().manual_seed(seed * 1000 + epoch)
        order = torch.randperm(len(train_data), generator=g).tolist()
        order = order[rank::world]
        loader = DataLoader(
            torch.utils.data.Subset(train_data, order),
            batch_size=o["batch_size"],
            shuffle=False,
            collate_fn=collate,
        )
        bar = tqdm(loader, desc=f"{cfg['experiment']['name']} epoch {epoch}", disable=not run.progress)
        for batch in bar:
            batch = _to(batch, device)
            total_loss, logs = wrapped(batch)
            optim.zero_grad(set_to_none=True)
            total_loss.backward()
            gn = (
                torch.nn.utils.clip_grad_norm_(module.parameters(), o["grad_clip"])
                if o["grad_clip"]
                else None
            )
            optim.step()
            sched.step()
            step += 1
            rec = {"split": "train", "step": step, "epoch": epoch, "loss": float(total_loss.detach()), **logs}
            rec["lr"] = sched.get_last_lr()[0]
            if gn is not None:
                rec["grad_norm"] = float(gn)
            rec["time_s"] = round(time.time() - t0, 3)
            _log(metrics, rec)
            bar.set_postfix(loss=f"{rec['loss']:.3f}")
            if step >= total:
                done = True
                break
        val_data = CaptionData(val_rows, run.store, run.tok, int(cfg["data"]["max_len"]))  # references only
        val = validation_loss(captioner, val_data, device, o["batch_size"]) if val_rows else math.nan
        val = dist.all_reduce_mean(val, device)
        _log(
            metrics,
            {"split": "val", "step": step, "epoch": epoch, "loss": val, "time_s": round(time.time() - t0, 3)},
        )
        if rank == 0:
            state = {
                "model": captioner.state_dict(),
                "config": {k: v for k, v in cfg.items()},
                "vocab": run.tok.words,
            }
            if not val_rows or val < best:
                best = val if val_rows else best
                _atomic_save({**state, "step": step, "epoch": epoch, "val_loss": val}, ckpt_best)
            _atomic_save(
                {
                    **state,
                    "loss": loss.state_dict(),
                    "optim": optim.state_dict(),
                    "sched": sched.state_dict(),
                    "step": step,
                    "epoch": epoch,
                    "best_val": best,
                    "rng": _rng_state(),
                },
                ckpt_last,
            )
        dist.barrier()
        per_run = int(cfg["experiment"]["epochs_per_run"])
        if per_run and epoch + 1 - start_epoch >= per_run and epoch + 1 < o["epochs"]:
            _log(metrics, {"event": "pause", "step": step, "epoch": epoch})
            break  # time-boxed invocation: continue later with --resume
    return {"steps": step, "best_val": best, "run_dir": str(rdir), "checkpoint": str(ckpt_best)}


# ------------------------------------------------------------------------------------------ inference


def load_trained(cfg: dict[str, Any], which: str = "best", device: torch.device | None = None):
    """(captioner in eval mode, tokenizer) from the run's checkpoint (``best`` or ``last``)."""
    if which not in ("best", "last"):
        raise ValueError("checkpoint must be 'best' or 'last'")
    path = run_dir(cfg) / "ckpt" / f"{which}.pt"
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: train the experiment first")
    ck = torch.load(path, map_location=device or "cpu", weights_only=False)
    tok = Tokenizer(ck["vocab"])
    model = build_model(cfg, len(tok))
    model.load_state_dict(ck["model"])
    return model.to(device or "cpu").eval(), tok


@torch.no_grad()
def decode_clips(
    model: Captioner,
    tok: Tokenizer,
    store: InputStore,
    ids: list[str],
    search_cfg: dict[str, Any],
    device: torch.device,
    progress: bool = True,
    desc: str = "decode",
) -> dict[str, dict[str, Any]]:
    """{id: {"caption", "ids"}} by beam search (greedy when beam == 1), exactly the bundle's search."""
    model.eval()

    def step(tokens: np.ndarray, memory: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(tokens).to(device)
        m = torch.from_numpy(memory).to(device)
        return model.decoder.last_logits(t, m).float().cpu().numpy()

    out = {}
    chunk = 16  # clips searched together: one decoder call per step for all their live hypotheses
    bar = tqdm(total=len(ids), desc=desc, disable=not progress)
    for i in range(0, len(ids), chunk):
        part = ids[i : i + chunk]
        mems = [model.encode(torch.from_numpy(store(c)).unsqueeze(0).to(device))["memory"] for c in part]
        mems = [m.float().cpu().numpy() for m in mems]
        if int(search_cfg["beam"]) <= 1:
            seqs = [search.greedy(step, m, int(search_cfg["max_len"])) for m in mems]
        else:
            seqs = search.beam_search_many(
                step,
                mems,
                int(search_cfg["beam"]),
                int(search_cfg["max_len"]),
                float(search_cfg["length_norm"]),
            )
        for cid, seq in zip(part, seqs, strict=True):
            out[cid] = {"caption": tok.decode(seq), "ids": seq}
        bar.update(len(part))
    bar.close()
    return out


def write_teacher_outputs(cfg: dict[str, Any], run: Run | None = None) -> Path:
    """Beam captions for every clip (all splits, audio-only included) + teacher embeddings -> ``kd/``."""
    run = run or Run(cfg, need_kd=False)
    device = pick_device(cfg)
    model, tok = load_trained(cfg, "best", device)
    kd = run.dir / "kd"
    kd.mkdir(parents=True, exist_ok=True)
    ids = [r["id"] for r in run.rows]
    caps = decode_clips(model, tok, run.store, ids, cfg["search"], device, run.progress, "teacher captions")
    tmp = kd / "captions.jsonl.tmp"
    with tmp.open("w") as f:
        for cid in ids:
            f.write(json.dumps({"id": cid, "caption": caps[cid]["caption"], "ids": caps[cid]["ids"]}) + "\n")
    os.replace(tmp, kd / "captions.jsonl")
    embs = []
    for cid in ids:
        with np.load(run.store.root / "clips" / f"{cid}.npz") as z:
            embs.append(z["emb"].astype(np.float32))
    np.savez(kd / "emb.npz", ids=np.array(ids), emb=np.stack(embs))
    return kd


def evaluate(cfg: dict[str, Any], split: str, which: str = "best", limit: int = 0) -> dict[str, Any]:
    """Decode ``split`` and score it; writes ``<run>/eval_<split>.json``."""
    from earshot_train.evaluate import score, source_rule

    setup_threads(cfg)
    run = Run(cfg, need_kd=False)
    rows = [r for r in run.rows_for([split]) if r.get("captions")]
    if not rows:
        raise ValueError(f"split {split!r} has no captioned clips")
    if limit:
        rows = rows[:limit]
    device = pick_device(cfg)
    model, tok = load_trained(cfg, which, device)
    dec = decode_clips(
        model, tok, run.store, [r["id"] for r in rows], cfg["search"], device, run.progress, split
    )
    preds = {cid: d["caption"] for cid, d in dec.items()}
    metrics = score(
        preds,
        {r["id"]: r["captions"] for r in rows},
        {r["id"]: r.get("sources", []) for r in rows},
        names_sources=source_rule(run.cdir),
    )
    res = {
        "experiment": cfg["experiment"]["name"],
        "split": split,
        "checkpoint": which,
        "n_clips": len(rows),
        "search": cfg["search"],
        "metrics": metrics,
        "predictions": preds,
    }
    (run.dir / f"eval_{split}.json").write_text(json.dumps(res, indent=1) + "\n")
    return res
