#!/usr/bin/env python3
"""A random-weight Dream or LLaDA folder at the shape of an A2D Qwen2 one, for benchmarks.

Dream and LLaDA publish only 7-8 B checkpoints, too large for this machine's memory; their
networks at the small A2D models' shape are what `unmask bench` can measure beside them
(BENCHMARKS.md). Dream has Qwen2.5's layout and names (its logits are shifted, which costs
nothing), so its folder is the input's with Dream's config; LLaDA's OLMo-style names are the
input's renamed (src/model/llada.rs `key`), without the q/k/v biases LLaDA does not have.

    unmask init --preset a2d-qwen2.5-coder-0.5b --out q2
    scripts/architecture-at-shape.py q2 dream dream-0.5b
    scripts/architecture-at-shape.py q2 llada llada-0.5b
    unmask bench --model llada-0.5b --backends cpu

Only the standard library: safetensors is an 8-byte header length, a JSON header and the data.
"""
import json
import os
import re
import shutil
import struct
import sys

# Qwen2's block tensors → LLaDA's (OLMo's names); None drops the tensor.
LLADA_BLOCK = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ff_norm.weight",
    "self_attn.q_proj.weight": "q_proj.weight",
    "self_attn.k_proj.weight": "k_proj.weight",
    "self_attn.v_proj.weight": "v_proj.weight",
    "self_attn.o_proj.weight": "attn_out.weight",
    "mlp.gate_proj.weight": "ff_proj.weight",
    "mlp.up_proj.weight": "up_proj.weight",
    "mlp.down_proj.weight": "ff_out.weight",
    "self_attn.q_proj.bias": None,
    "self_attn.k_proj.bias": None,
    "self_attn.v_proj.bias": None,
}
LLADA_TOP = {
    "model.embed_tokens.weight": "model.transformer.wte.weight",
    "model.norm.weight": "model.transformer.ln_f.weight",
    "lm_head.weight": "model.transformer.ff_out.weight",
}


def llada_name(name):
    if name in LLADA_TOP:
        return LLADA_TOP[name]
    m = re.fullmatch(r"model\.layers\.(\d+)\.(.+)", name)
    if not m or m.group(2) not in LLADA_BLOCK:
        sys.exit(f"no LLaDA name for {name}")
    rest = LLADA_BLOCK[m.group(2)]
    return rest and f"model.transformer.blocks.{m.group(1)}.{rest}"


def rewrite(src, dst, rename):
    """Copies the tensors of `src` to `dst` under `rename`'s names (None drops one)."""
    with open(src, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        start = 8 + length
        kept, offset = [], 0
        for name, meta in header.items():
            if name == "__metadata__":
                continue
            new = rename(name)
            if new is None:
                continue
            begin, end = meta["data_offsets"]
            kept.append((new, meta, begin, end, offset))
            offset += end - begin
        out = {
            new: {"dtype": m["dtype"], "shape": m["shape"], "data_offsets": [at, at + e - b]}
            for new, m, b, e, at in kept
        }
        text = json.dumps(out).encode()
        text += b" " * (-len(text) % 8)
        with open(dst, "wb") as g:
            g.write(struct.pack("<Q", len(text)))
            g.write(text)
            for _, _, b, e, _ in kept:
                f.seek(start + b)
                g.write(f.read(e - b))


def main():
    if len(sys.argv) != 4 or sys.argv[2] not in ("dream", "llada"):
        sys.exit(__doc__)
    src, kind, dst = sys.argv[1:]
    q = json.load(open(os.path.join(src, "config.json")))
    if q.get("model_type") != "a2d-qwen2":
        sys.exit(f"{src}: an a2d-qwen2 folder is the input")
    tokenizer = json.load(open(os.path.join(src, "tokenizer.json")))
    mask = max(t["id"] for t in tokenizer["added_tokens"])
    os.makedirs(dst)
    shutil.copy(os.path.join(src, "tokenizer.json"), dst)
    if kind == "dream":
        config = dict(q, architectures=["DreamModel"], model_type="Dream", mask_token_id=mask)
        shutil.copy(os.path.join(src, "model.safetensors"), dst)
    else:
        config = {
            "architectures": ["LLaDAModelLM"], "model_type": "llada", "block_type": "llama",
            "activation_type": "silu", "alibi": False, "rope": True,
            "rope_theta": q["rope_theta"], "layer_norm_type": "rms",
            "rms_norm_eps": q["rms_norm_eps"], "include_bias": False, "include_qkv_bias": False,
            "attention_layer_norm": False, "d_model": q["hidden_size"],
            "n_heads": q["num_attention_heads"], "n_kv_heads": q["num_key_value_heads"],
            "n_layers": q["num_hidden_layers"], "mlp_hidden_size": q["intermediate_size"],
            "vocab_size": q["vocab_size"], "embedding_size": q["vocab_size"],
            "weight_tying": q["tie_word_embeddings"], "mask_token_id": mask,
            "max_sequence_length": q["max_position_embeddings"],
        }
        rewrite(os.path.join(src, "model.safetensors"), os.path.join(dst, "model.safetensors"),
                llada_name)
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    print(f"wrote {dst} ({kind} at {src}'s shape)")


if __name__ == "__main__":
    main()
