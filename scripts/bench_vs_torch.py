#!/usr/bin/env python3
"""The MDLM / BD3-LM DiT's forward pass in PyTorch eager, timed as `unmask bench` times Unmask's.

Written for Unmask from the published equations (Sahoo et al. 2024, arXiv:2406.07524, §4 and
Appendix; Arriola et al. 2025, arXiv:2503.09573, §3; Peebles & Xie 2023's adaLN-Zero blocks):
token embedding; a constant adaLN conditioning (the published checkpoints have
`time_conditioning: false`); per block LayerNorm without bias → modulate → packed q/k/v → rotary
(half-split, base 10,000) → attention under the block-causal mask → output projection, gated
residual; LayerNorm → modulate → GELU(tanh) MLP (4×) → gated residual; then the final modulated
LayerNorm and a linear head with bias over the whole vocabulary. Random weights, f32, batch 1:
speed only, no parity (tests/parity.rs holds that against the reference code).

Each measurement is one warm-up pass and then the mean of `--repeats` passes, like
`unmask bench`; a pass computes the logits of every position and reads the last row, as
`unmask bench` does (`predict(l - 1..l)` runs the whole head, then narrows).

Prints one JSON line per length: {"shape": ..., "length": L, "ms": ...}.
Used by scripts/bench-vs-torch.sh; not part of CI.
"""

import argparse
import json
import time

import torch
import torch.nn.functional as F

SHAPES = {
    # The published kuleshov-group OWT checkpoints (169.6M parameters).
    "owt170m": dict(vocab=50258, hidden=768, cond=128, blocks=12, heads=12, block_size=4),
    # Unmask's default text models (www/models/default/bd3).
    "default": dict(vocab=4096, hidden=128, cond=64, blocks=4, heads=4, block_size=4),
}
ROTARY_BASE = 10_000.0
LAYER_NORM_EPS = 1e-5


def rotary_tables(length, head_dim):
    inv_freq = 1.0 / ROTARY_BASE ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(length, dtype=torch.float32), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)  # frequencies repeated over both halves
    return angles.cos()[None, None], angles.sin()[None, None]


def rotate(x, cos, sin):
    half = x.shape[-1] // 2
    turned = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + turned * sin


def block_causal_bias(length, block_size):
    block = torch.arange(length) // block_size
    allowed = block[:, None] >= block[None, :]
    return torch.zeros(length, length).masked_fill(~allowed, float("-inf"))


class Dit(torch.nn.Module):
    def __init__(self, vocab, hidden, cond, blocks, heads, block_size):
        super().__init__()
        self.heads, self.block_size = heads, block_size
        self.embed = torch.nn.Parameter(torch.randn(vocab, hidden))
        self.cond = torch.nn.Parameter(torch.randn(1, cond))
        linear = lambda i, o, bias=False: torch.nn.Linear(i, o, bias=bias)
        self.layers = torch.nn.ModuleList()
        for _ in range(blocks):
            layer = torch.nn.Module()
            layer.norm1 = torch.nn.Parameter(torch.ones(hidden))
            layer.norm2 = torch.nn.Parameter(torch.ones(hidden))
            layer.qkv = linear(hidden, 3 * hidden)
            layer.out = linear(hidden, hidden)
            layer.mlp_in = linear(hidden, 4 * hidden, bias=True)
            layer.mlp_out = linear(4 * hidden, hidden, bias=True)
            layer.ada = linear(cond, 6 * hidden, bias=True)
            self.layers.append(layer)
        self.norm_final = torch.nn.Parameter(torch.ones(hidden))
        self.ada_final = linear(cond, 2 * hidden, bias=True)
        self.head = linear(hidden, vocab, bias=True)

    def forward(self, tokens):
        b, length = tokens.shape
        d = self.embed.shape[1]
        dh = d // self.heads
        cos, sin = rotary_tables(length, dh)
        bias = block_causal_bias(length, self.block_size)
        c = F.silu(self.cond)
        x = self.embed[tokens]
        for layer in self.layers:
            shift1, scale1, gate1, shift2, scale2, gate2 = layer.ada(c)[:, None].chunk(6, dim=-1)
            y = F.layer_norm(x, (d,), layer.norm1, None, LAYER_NORM_EPS) * (1 + scale1) + shift1
            q, k, v = layer.qkv(y).view(b, length, 3, self.heads, dh).unbind(2)
            q, k, v = (t.transpose(1, 2) for t in (q, k, v))
            q, k = rotate(q, cos, sin), rotate(k, cos, sin)
            attended = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
            x = x + gate1 * layer.out(attended.transpose(1, 2).reshape(b, length, d))
            y = F.layer_norm(x, (d,), layer.norm2, None, LAYER_NORM_EPS) * (1 + scale2) + shift2
            x = x + gate2 * layer.mlp_out(F.gelu(layer.mlp_in(y), approximate="tanh"))
        shift, scale = self.ada_final(c)[:, None].chunk(2, dim=-1)
        y = F.layer_norm(x, (d,), self.norm_final, None, LAYER_NORM_EPS) * (1 + scale) + shift
        return self.head(y)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="owt170m")
    parser.add_argument("--lengths", default="64,256,1024")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = Dit(**SHAPES[args.shape]).eval()
    vocab = SHAPES[args.shape]["vocab"]
    with torch.inference_mode():
        for length in (int(x) for x in args.lengths.split(",")):
            tokens = torch.randint(0, vocab - 1, (1, length))
            model(tokens)[:, -1].tolist()  # warm-up
            start = time.perf_counter()
            for _ in range(args.repeats):
                model(tokens)[:, -1].tolist()
            ms = (time.perf_counter() - start) / max(args.repeats, 1) * 1e3
            print(json.dumps({"shape": args.shape, "length": length, "ms": round(ms, 1),
                              "threads": torch.get_num_threads(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
