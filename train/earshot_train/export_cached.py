"""Key/value-cached decoder graphs for a bundle (optional manifest section ``decoder_cached``).

The bundle's ``decoder.onnx`` re-runs the whole prefix and re-projects the memory at every step. This
module adds two graphs that compute the same logits incrementally (docs/bundle-format.md):

- ``decoder_init.onnx``: ``memory`` f32 [1, T, D] -> ``cross_k``, ``cross_v`` f32
  [layers, 1, heads, T, head_dim] (memory projection + cross-attention keys/values, once per clip);
- ``decoder_step.onnx``: ``token`` int64 [B, 1], ``position`` int64 [1] (= P, the number of earlier
  tokens), ``cross_k``, ``cross_v`` (batch 1, broadcast over B), ``past_k``, ``past_v`` f32
  [layers, B, heads, P, head_dim] (P = 0 at ``<start>``) -> ``logits`` [B, V], ``present_k``,
  ``present_v`` [layers, B, heads, P + 1, head_dim].

Old bundles keep working: a runtime that does not know ``decoder_cached`` uses ``decoder.onnx``.

    python -m earshot_train.export_cached BUNDLE --tiny            # the seeded golden tiny model
    python -m earshot_train.export_cached BUNDLE --effb2 CKPT_DIR  # the paper's student
    python -m earshot_train.export_cached BUNDLE --run CONFIG      # a trained teacher or student
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from earshot_train.export import _export
from earshot_train.integrity import write_file_hashes
from earshot_train.models.decoder import Attention, CaptionDecoder


def _heads(att: Attention, x: torch.Tensor, part: int) -> torch.Tensor:
    d = att.d_model
    y = (
        torch.matmul(x, att.in_proj_weight[part * d : (part + 1) * d].t())
        + att.in_proj_bias[part * d : (part + 1) * d]
    )
    return att._split(y)  # [B, H, N, dh]


class DecoderInit(nn.Module):
    def __init__(self, decoder: CaptionDecoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mem = self.decoder.project_memory(memory)
        ks = [_heads(layer.multihead_attn, mem, 1) for layer in self.decoder.model.layers]
        vs = [_heads(layer.multihead_attn, mem, 2) for layer in self.decoder.model.layers]
        return torch.stack(ks), torch.stack(vs)


class DecoderStep(nn.Module):
    def __init__(self, decoder: CaptionDecoder):
        super().__init__()
        self.decoder = decoder

    @staticmethod
    def _attend(att: Attention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(att.head_dim))
        out = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2)
        return att.out_proj(out.reshape(out.shape[0], out.shape[1], att.d_model))

    def forward(self, token, position, cross_k, cross_v, past_k, past_v):
        dec = self.decoder
        x = dec.word_embedding(token) * math.sqrt(dec.cfg.d_model)  # [B, 1, d]
        x = x + torch.index_select(dec.pos_encoder.pe[:, 0, :], 0, position).unsqueeze(0)
        new_k, new_v = [], []
        for i, layer in enumerate(dec.model.layers):
            sa = layer.self_attn
            q = _heads(sa, x, 0)
            k = torch.cat([past_k[i], _heads(sa, x, 1)], dim=2)
            v = torch.cat([past_v[i], _heads(sa, x, 2)], dim=2)
            new_k.append(k)
            new_v.append(v)
            x = layer.norm1(x + self._attend(sa, q, k, v))
            ca = layer.multihead_attn
            x = layer.norm2(x + self._attend(ca, _heads(ca, x, 0), cross_k[i], cross_v[i]))
            x = layer.norm3(x + layer.linear2(torch.relu(layer.linear1(x))))
        logits = dec.classifier(x)[:, 0, :]
        return logits, torch.stack(new_k), torch.stack(new_v)


def cached_search_logits(decoder: CaptionDecoder, memory: torch.Tensor, tokens: list[int]) -> torch.Tensor:
    """Logits after each prefix of ``tokens`` via the cached modules (for parity checks), [len, V]."""
    init, step = DecoderInit(decoder).eval(), DecoderStep(decoder).eval()
    with torch.no_grad():
        ck, cv = init(memory)
        cfg = decoder.cfg
        shape = (cfg.n_layers, 1, cfg.n_heads, 0, cfg.d_model // cfg.n_heads)
        pk, pv = torch.zeros(shape), torch.zeros(shape)
        out = []
        for p, t in enumerate(tokens):
            logits, pk, pv = step(torch.tensor([[t]]), torch.tensor([p]), ck, cv, pk, pv)
            out.append(logits[0])
    return torch.stack(out)


def add_to_bundle(decoder: CaptionDecoder, bundle: str | Path, tol: float = 1e-3) -> dict:
    """Writes decoder_init.onnx, decoder_step.onnx and the manifest section into ``bundle``; checks parity."""
    bundle = Path(bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    decoder = decoder.eval()
    cfg = decoder.cfg
    t_len = int(manifest["encoder"]["output_shape"][1])
    mem = torch.randn(1, t_len, cfg.memory_dim, generator=torch.Generator().manual_seed(0))
    dh = cfg.d_model // cfg.n_heads
    # eval() on the wrappers: torch.onnx.export restores the wrapper's mode recursively afterwards
    _export(
        DecoderInit(decoder).eval(),
        (mem,),
        bundle / "decoder_init.onnx",
        ["memory"],
        ["cross_k", "cross_v"],
        {"memory": {1: "frames"}, "cross_k": {3: "frames"}, "cross_v": {3: "frames"}},
    )
    with torch.no_grad():
        ck, cv = DecoderInit(decoder)(mem)
    b, p = 2, 3
    past = torch.randn(cfg.n_layers, b, cfg.n_heads, p, dh)
    _export(
        DecoderStep(decoder).eval(),
        (torch.ones(b, 1, dtype=torch.long), torch.tensor([p]), ck, cv, past, past),
        bundle / "decoder_step.onnx",
        ["token", "position", "cross_k", "cross_v", "past_k", "past_v"],
        ["logits", "present_k", "present_v"],
        {
            "token": {0: "batch"},
            "cross_k": {3: "frames"},
            "cross_v": {3: "frames"},
            "past_k": {1: "batch", 3: "past"},
            "past_v": {1: "batch", 3: "past"},
            "logits": {0: "batch"},
            "present_k": {1: "batch", 3: "next"},
            "present_v": {1: "batch", 3: "next"},
        },
    )
    decoder.eval()
    # parity: cached logits (PyTorch and onnxruntime) vs the full-prefix decoder, 8 tokens
    tokens = [1] + [
        int(t) for t in torch.randint(4, cfg.vocab_size, (7,), generator=torch.Generator().manual_seed(1))
    ]
    with torch.no_grad():
        full = torch.stack(
            [decoder.last_logits(torch.tensor([tokens[: i + 1]]), mem)[0] for i in range(len(tokens))]
        )
    cached = cached_search_logits(decoder, mem, tokens)
    import onnxruntime as ort

    init_s = ort.InferenceSession(str(bundle / "decoder_init.onnx"), providers=["CPUExecutionProvider"])
    step_s = ort.InferenceSession(str(bundle / "decoder_step.onnx"), providers=["CPUExecutionProvider"])
    ck_o, cv_o = init_s.run(None, {"memory": mem.numpy()})
    pk = np.zeros((cfg.n_layers, 1, cfg.n_heads, 0, dh), np.float32)
    pv = pk
    ort_logits = []
    for i, t in enumerate(tokens):
        feeds = {
            "token": np.array([[t]], np.int64),
            "position": np.array([i], np.int64),
            "cross_k": ck_o,
            "cross_v": cv_o,
            "past_k": pk,
            "past_v": pv,
        }
        lg, pk, pv = step_s.run(None, feeds)
        ort_logits.append(lg[0])
    rep = {
        "torch_cached_max_abs_diff": float((cached - full).abs().max()),
        "ort_cached_max_abs_diff": float(np.abs(np.stack(ort_logits) - full.numpy()).max()),
    }
    if max(rep.values()) > tol:
        raise RuntimeError(f"cached decoder disagrees with the full-prefix decoder: {rep}")
    manifest["decoder_cached"] = {
        "init_file": "decoder_init.onnx",
        "step_file": "decoder_step.onnx",
        "layers": cfg.n_layers,
        "heads": cfg.n_heads,
        "head_dim": dh,
        "max_positions": cfg.max_positions,
    }
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    write_file_hashes(bundle)
    return rep


def _tiny_decoder(bundle: Path) -> CaptionDecoder:
    from earshot_train.golden import _randomise
    from earshot_train.models.captioner import build_captioner

    m = json.loads((bundle / "manifest.json").read_text())
    seed, cfg = int(m["provenance"]["seed"]), m["provenance"]["model"]
    torch.manual_seed(seed)
    model = build_captioner(cfg, m["decoder"]["vocab_size"], m["frontend"]["n_mels"]).eval()
    _randomise(model, torch.Generator().manual_seed(seed))
    return model.decoder


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bundle", type=Path)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--tiny", action="store_true", help="the seeded golden tiny model (from its provenance)")
    g.add_argument("--effb2", type=Path, metavar="CKPT_DIR", help="the paper's student checkpoint")
    g.add_argument("--run", type=Path, metavar="CONFIG", help="a trained experiment (its best checkpoint)")
    args = ap.parse_args(argv)
    if args.tiny:
        decoder = _tiny_decoder(args.bundle)
    elif args.run:
        from earshot_train import trainer
        from earshot_train.config import load_config

        decoder = trainer.load_trained(load_config(args.run), "best")[0].decoder
    else:
        from earshot_train import convert_wsntxxn as cw

        config, state, _ = cw.load_checkpoint(args.effb2)
        decoder = cw.build_captioner(config, state).decoder
    print(add_to_bundle(decoder, args.bundle))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
