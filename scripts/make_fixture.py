#!/usr/bin/env python3
"""Builds the tiny test model folder and its reference outputs, independently of the Rust code.

The forward pass below is a NumPy transcription of `kuleshov-group/bd3lms`
`models/hf/modeling_bd3lm.py` (DITBackbone / DDiTBlock / DDitFinalLayer, `Rotary`,
`rotate_half`, `TimestepEmbedder`, weight-only LayerNorm), computed in float64. The two
greedy samplers follow `ML-GSAI/LLaDA` `generate.py` (low-confidence remasking, temperature 0)
and BD3-LM's block-by-block sampling with block-causal attention.

The reference zero-initialises adaLN and output weights; here they are random, so that parity
actually tests them.

Writes tests/fixtures/tiny/{config.json, tokenizer.json, model.safetensors, reference.json}.
Usage: python3 scripts/make_fixture.py   (needs numpy; deterministic)
"""
import json
import math
import os
import struct

import numpy as np

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "tiny")

WORDS = """the a cat dog sat on mat and ran to house garden in big small red blue
was is saw bird tree under over quickly slowly happy old man woman child
played with ball . , she he it""".split()
SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
VOCAB = SPECIALS + WORDS + ["[MASK]"]
MASK = VOCAB.index("[MASK]")
BOS, EOS = VOCAB.index("<bos>"), VOCAB.index("<eos>")

CONFIG = {
    "model_type": "bd3lm",
    "architectures": ["BD3LM"],
    "block_size": 4,
    "vocab_size": len(VOCAB),
    "model_length": 32,
    "hidden_dim": 32,
    "cond_dim": 16,
    "n_blocks": 2,
    "n_heads": 4,
    "cross_attn": True,
    "adaln": True,
    "causal": False,
    "attn_backend": "sdpa",
    "dropout": 0.1,
    "time_conditioning": False,
    "var_min": True,
}


def tokenizer_json():
    added = [
        {"id": VOCAB.index(t), "content": t, "single_word": False, "lstrip": False,
         "rstrip": False, "normalized": False, "special": True}
        for t in SPECIALS + ["[MASK]"]
    ]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": None,
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": {t: i for i, t in enumerate(VOCAB)}, "unk_token": "<unk>"},
    }


def make_weights(rng):
    d, c, v = CONFIG["hidden_dim"], CONFIG["cond_dim"], CONFIG["vocab_size"]
    w = {}

    def lin(name, d_in, d_out, bias=True, scale=1.0):
        w[f"{name}.weight"] = rng.normal(0, scale / math.sqrt(d_in), (d_out, d_in))
        if bias:
            w[f"{name}.bias"] = rng.normal(0, 0.1, (d_out,))

    w["backbone.vocab_embed.embedding"] = rng.normal(0, 1.0, (v, d))
    lin("backbone.sigma_map.mlp.0", 256, c)
    lin("backbone.sigma_map.mlp.2", c, c)
    for i in range(CONFIG["n_blocks"]):
        p = f"backbone.blocks.{i}"
        w[f"{p}.norm1.weight"] = 1.0 + rng.normal(0, 0.1, (d,))
        w[f"{p}.norm2.weight"] = 1.0 + rng.normal(0, 0.1, (d,))
        lin(f"{p}.attn_qkv", d, 3 * d, bias=False, scale=3.0)
        lin(f"{p}.attn_out", d, d, bias=False)
        lin(f"{p}.mlp.0", d, 4 * d)
        lin(f"{p}.mlp.2", 4 * d, d)
        lin(f"{p}.adaLN_modulation", c, 6 * d, scale=3.0)
    w["backbone.output_layer.norm_final.weight"] = 1.0 + rng.normal(0, 0.1, (d,))
    lin("backbone.output_layer.adaLN_modulation", c, 2 * d, scale=0.5)
    lin("backbone.output_layer.linear", d, v, scale=3.0)
    # Stored as f32, like the published checkpoints; the reference computes with these values.
    return {k: a.astype(np.float32) for k, a in w.items()}


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        data = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# ----------------------------------------------------------------------------- reference forward
def layer_norm(x, weight, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * weight


def linear(x, w, name, bias=True):
    y = x @ w[f"{name}.weight"].astype(np.float64).T
    if bias:
        y = y + w[f"{name}.bias"]
    return y


def silu(x):
    return x / (1 + np.exp(-x))


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def timestep_embedding(t, dim=256, max_period=10000):
    half = dim // 2
    freqs = np.exp(-math.log(max_period) * np.arange(half) / half)
    args = t * freqs
    return np.concatenate([np.cos(args), np.sin(args)])


def rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], -1)


def allowed(mode, q, k):
    if mode == "bidirectional":
        return True
    if mode == "causal":
        return k <= q
    bs = CONFIG["block_size"]
    return k // bs <= q // bs


def forward(w, ids, mode, sigma=0.0):
    """Logits [L, V] for token ids `ids` at positions 0..L-1, float64. `sigma` is the noise level,
    which only a time-conditioned model reads (time_conditioning false means sigma = 0)."""
    w = {k: v.astype(np.float64) for k, v in w.items()}
    d, h = CONFIG["hidden_dim"], CONFIG["n_heads"]
    dh = d // h
    L = len(ids)
    x = w["backbone.vocab_embed.embedding"][ids]
    c = silu(linear(silu(linear(timestep_embedding(sigma), w, "backbone.sigma_map.mlp.0")), w, "backbone.sigma_map.mlp.2"))
    inv_freq = 1.0 / (10000 ** (np.arange(0, dh, 2) / dh))
    freqs = np.outer(np.arange(L), inv_freq)
    emb = np.concatenate([freqs, freqs], -1)
    cos, sin = np.cos(emb), np.sin(emb)
    bias = np.array([[0.0 if allowed(mode, q, k) else -np.inf for k in range(L)] for q in range(L)])
    for i in range(CONFIG["n_blocks"]):
        p = f"backbone.blocks.{i}"
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = np.split(linear(c, w, f"{p}.adaLN_modulation"), 6)
        skip = x
        y = layer_norm(x, w[f"{p}.norm1.weight"]) * (1 + scale_msa) + shift_msa
        qkv = linear(y, w, f"{p}.attn_qkv", bias=False).reshape(L, 3, h, dh)
        q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]  # [L, h, dh]
        q = q * cos[:, None] + rotate_half(q) * sin[:, None]
        k = k * cos[:, None] + rotate_half(k) * sin[:, None]
        scores = np.einsum("qhd,khd->hqk", q, k) / math.sqrt(dh) + bias
        scores = scores - scores.max(-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(-1, keepdims=True)
        att = np.einsum("hqk,khd->qhd", probs, v).reshape(L, d)
        x = skip + gate_msa * linear(att, w, f"{p}.attn_out", bias=False)
        y = layer_norm(x, w[f"{p}.norm2.weight"]) * (1 + scale_mlp) + shift_mlp
        x = x + gate_mlp * linear(gelu_tanh(linear(y, w, f"{p}.mlp.0")), w, f"{p}.mlp.2")
    shift, scale = np.split(linear(c, w, "backbone.output_layer.adaLN_modulation"), 2)
    y = layer_norm(x, w["backbone.output_layer.norm_final.weight"]) * (1 + scale) + shift
    return linear(y, w, "backbone.output_layer.linear")


def greedy_pick(logits_row):
    """SUBS: the mask can't be predicted. Returns (token, probability)."""
    l = logits_row.copy()
    l[MASK] = -np.inf
    p = np.exp(l - l.max())
    p /= p.sum()
    tok = int(np.argmax(l))
    return tok, float(p[tok])


def commit_most_confident(x, positions, rows):
    """One commit per step: the masked position whose argmax is most probable (earliest on ties)."""
    best = None
    for pos in positions:
        tok, conf = greedy_pick(rows[pos])
        if best is None or conf > best[2]:
            best = (pos, tok, conf)
    x[best[0]] = best[1]
    return [best[0], best[1]]


def llada_greedy(w, prompt, gen_length, block_length):
    """LLaDA generate.py at temperature 0, steps = gen_length (one token per step), bidirectional."""
    x = list(prompt) + [MASK] * gen_length
    steps = []
    for b in range(gen_length // block_length):
        lo = len(prompt) + b * block_length
        block = range(lo, lo + block_length)
        while any(x[i] == MASK for i in block):
            logits = forward(w, x, "bidirectional")
            steps.append(commit_most_confident(x, [i for i in block if x[i] == MASK], logits))
    return steps, x


def bd3_greedy(w, prompt, gen_length):
    """Block by block from position 0, block-causal attention, one token per step, stop at EOS."""
    bs = CONFIG["block_size"]
    x = list(prompt) + [MASK] * gen_length
    steps = []
    b = min(i for i, t in enumerate(x) if t == MASK) // bs
    while b * bs < len(x):
        block = range(b * bs, min((b + 1) * bs, len(x)))
        while any(x[i] == MASK for i in block):
            logits = forward(w, x[: block.stop], "block-causal")
            steps.append(commit_most_confident(x, [i for i in block if x[i] == MASK], logits))
        eos = [i for i in block if i >= len(prompt) and x[i] == EOS]
        if eos:
            x = x[: eos[0] + 1]
            break
        b += 1
    return steps, x


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20261127)
    w = make_weights(rng)
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
    with open(os.path.join(OUT, "tokenizer.json"), "w") as f:
        json.dump(tokenizer_json(), f, indent=1)
    write_safetensors(os.path.join(OUT, "model.safetensors"), w)

    tokens = [BOS] + [VOCAB.index(t) for t in "the cat sat on the".split()] + [MASK] * 3 + \
             [VOCAB.index(t) for t in "mat and the dog ran".split()] + [MASK] * 6
    prompt = [BOS] + [VOCAB.index(t) for t in "the old man saw a".split()]
    ref = {
        "tokens": tokens,
        "logits": {m: forward(w, tokens, m).astype(np.float32).tolist()
                   for m in ["bidirectional", "block-causal", "causal"]},
        # The same weights read as a time-conditioned model at sigma = 0.7.
        "time_conditioned": {"sigma": 0.7, "bidirectional": forward(w, tokens, "bidirectional", 0.7).astype(np.float32).tolist()},
        "golden": {
            "prompt": prompt,
            "gen_length": 12,
            "llada": dict(zip(["steps", "final"], llada_greedy(w, prompt, 12, 4)), block_length=4),
            "bd3": dict(zip(["steps", "final"], bd3_greedy(w, prompt, 12))),
        },
    }
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump(ref, f)
    print("wrote", os.path.abspath(OUT))


if __name__ == "__main__":
    main()
