#!/usr/bin/env python3
"""Builds the GGUF fixtures (tests/fixtures/gguf/) from the dllm parity fixtures, with gguf-py
(the `gguf` package on PyPI, llama.cpp's own writer), by hand; CI never runs this.

Each file is what llama.cpp's `convert_hf_to_gguf.py` would write for the fixture's folder
(`LLaDAModel`, `DreamModel`, `Qwen3Model`, `Qwen2Model`): the same metadata keys, gguf-py's
tensor names, norms and biases in F32, LLaDA's q/k rows permuted for llama.cpp's interleaved
rotary (the converter's `permute(weights, n_head, n_head_kv)`: within each head, reshape to
(2, Dh/2) and swap, so that row 2i + j holds row j*Dh/2 + i), the matrices in the outtype, and the
vocabulary as a gpt2-model token list. The converter itself needs the checkpoint's torch
classes, so this script writes the same layout directly; the names and keys follow gguf-py
0.19.0 (`constants.py`, `tensor_mapping.py`) and llama.cpp's `conversion/llada.py`,
`conversion/dream.py`, `conversion/qwen.py`.

Files:
    <arch>.gguf                F32 matrices (llada, dream, a2d-qwen3, a2d-qwen2)
    a2d-qwen3.q8_0.gguf        Q8_0 matrices, gguf.quants.quantize
    llada.q4_0.gguf            Q4_0 matrices (permuted rows, quantized), the embedding Q4_0 too
    dream.f16.gguf             F16 matrices
    <name>.expected.safetensors   for the quantized ones: every matrix as gguf-py's own
                               `gguf.quants.dequantize` reads it back, un-permuted, under
                               transformers' key names (f32)
    bpe-vocab.gguf             no tensors: the vocabulary of www/models/default/bd3/tokenizer.json
                               (byte-level BPE, pre "gpt-2"), to rebuild its tokenizer.json from
    q6k.gguf                   two random Q6_K super-blocks and gguf-py's reading of them (F32)
    a2d-qwen3-q6k.gguf         a random a2d-qwen3 of width 256 in Q4_0 with a Q6_K head, as
                               llama-quantize writes a Q4_0 file

How to run (a few seconds, no torch):
    python3 -m venv /var/tmp/gguf-venv && /var/tmp/gguf-venv/bin/pip install gguf==0.19.0 numpy
    /var/tmp/gguf-venv/bin/python scripts/make_gguf_fixtures.py
"""
import json
import struct
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q

ROOT = Path(__file__).resolve().parent.parent
DLLM = ROOT / "tests/fixtures/dllm"
OUT = ROOT / "tests/fixtures/gguf"


def read_safetensors(path):
    """{key: float32 array} of a safetensors file (F32 only, as the dllm fixtures are)."""
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    out = {}
    for key, meta in header.items():
        if key == "__metadata__":
            continue
        assert meta["dtype"] == "F32", (key, meta["dtype"])
        start, end = meta["data_offsets"]
        out[key] = np.frombuffer(data[8 + n + start : 8 + n + end], dtype="<f4").reshape(meta["shape"])
    return out


def write_safetensors(path, tensors):
    """Writes {key: float32 array} as safetensors (sorted keys)."""
    header, blobs, offset = {}, [], 0
    for key in sorted(tensors):
        b = np.ascontiguousarray(tensors[key], dtype="<f4").tobytes()
        header[key] = {"dtype": "F32", "shape": list(tensors[key].shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def permute(w, n_head, n_head_kv=None):
    """llama.cpp's LLaMA q/k permutation (halves order -> interleaved pairs), written again."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


QWEN_NAMES = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
    "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
}
LLADA_NAMES = {
    "q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "attn_out": "attn_output",
    "attn_norm": "attn_norm", "ff_norm": "ffn_norm", "ff_proj": "ffn_gate", "up_proj": "ffn_up",
    "ff_out": "ffn_down",
}


def gguf_name(hf):
    """gguf-py's name of a transformers key."""
    top = {
        "model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
        "lm_head.weight": "output.weight", "model.transformer.wte.weight": "token_embd.weight",
        "model.transformer.ln_f.weight": "output_norm.weight", "model.transformer.ff_out.weight": "output.weight",
    }
    if hf in top:
        return top[hf]
    for prefix, names in (("model.layers.", QWEN_NAMES), ("model.transformer.blocks.", LLADA_NAMES)):
        if hf.startswith(prefix):
            layer, rest = hf[len(prefix):].split(".", 1)
            base, part = rest.rsplit(".", 1)
            return f"blk.{layer}.{names[base]}.{part}"
    raise KeyError(hf)


def vocabulary(w, folder):
    """The fixture's word-level vocabulary as a gpt2 token list (no merges: gguf-py writes no
    empty arrays), padded to the embedding's rows with [PAD{i}] as the converter does."""
    tok = json.loads((folder / "tokenizer.json").read_text())
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    vocab = dict(tok["model"]["vocab"])
    for added in tok["added_tokens"]:
        vocab[added["content"]] = added["id"]
    special = {a["content"] for a in tok["added_tokens"] if a["special"]}
    size = max(vocab.values()) + 1
    tokens = [f"[PAD{i}]" for i in range(size)]
    types = [gguf.TokenType.UNUSED] * size
    for text, i in vocab.items():
        tokens[i] = text
        types[i] = gguf.TokenType.CONTROL if text in special else gguf.TokenType.NORMAL
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    ids = {t: i for i, t in enumerate(tokens)}
    for name, add in (("eos_token", w.add_eos_token_id), ("pad_token", w.add_pad_token_id),
                      ("mask_token", w.add_mask_token_id)):
        if cfg.get(name) in ids:
            add(ids[cfg[name]])
    w.add_chat_template(cfg["chat_template"])


def write(name, arch_dir, outtype, expected=False):
    folder = DLLM / arch_dir
    config = json.loads((folder / "config.json").read_text())
    weights = read_safetensors(folder / "model.safetensors")
    llada = config["model_type"] == "llada"
    arch = {"llada": "llada", "Dream": "dream", "a2d-qwen3": "qwen3", "a2d-qwen2": "qwen2"}[config["model_type"]]
    w = gguf.GGUFWriter(str(OUT / name), arch)
    w.add_name(arch_dir)
    if llada:
        heads, kv = config["n_heads"], config["n_kv_heads"]
        w.add_block_count(config["n_layers"])
        w.add_context_length(config["max_sequence_length"])
        w.add_embedding_length(config["d_model"])
        w.add_feed_forward_length(config["mlp_hidden_size"])
        w.add_head_count(heads)
        w.add_head_count_kv(kv)
        w.add_rope_freq_base(config["rope_theta"])
        w.add_layer_norm_rms_eps(config["rms_norm_eps"])
        w.add_vocab_size(config["vocab_size"])
        w.add_rope_dimension_count(config["d_model"] // heads)
        w.add_causal_attention(False)
        w.add_bool("diffusion.shift_logits", False)
    else:
        heads, kv = config["num_attention_heads"], config["num_key_value_heads"]
        w.add_block_count(config["num_hidden_layers"])
        w.add_context_length(config["max_position_embeddings"])
        w.add_embedding_length(config["hidden_size"])
        w.add_feed_forward_length(config["intermediate_size"])
        w.add_head_count(heads)
        w.add_head_count_kv(kv)
        w.add_rope_freq_base(config["rope_theta"])
        w.add_layer_norm_rms_eps(config["rms_norm_eps"])
        if "head_dim" in config:
            w.add_key_length(config["head_dim"])
            w.add_value_length(config["head_dim"])
        if arch == "dream":
            w.add_causal_attention(False)
    w.add_file_type({"f32": 0, "f16": 1, "q8_0": 7, "q4_0": 2}[outtype])
    vocabulary(w, folder)
    dequantized = {}
    for key in sorted(weights):
        t = weights[key]
        if llada and key.endswith((".q_proj.weight", ".k_proj.weight")):
            t = permute(t, heads, kv if key.endswith(".k_proj.weight") else None)
        t = np.ascontiguousarray(t, dtype=np.float32)
        if t.ndim == 1 or outtype == "f32":
            w.add_tensor(gguf_name(key), t)
        elif outtype == "f16":
            w.add_tensor(gguf_name(key), t.astype(np.float16))
        else:
            qtype = {"q8_0": Q.Q8_0, "q4_0": Q.Q4_0}[outtype]
            q = gguf.quants.quantize(t, qtype)
            w.add_tensor(gguf_name(key), q, raw_dtype=qtype)
            back = gguf.quants.dequantize(q, qtype).reshape(t.shape)
            if llada and key.endswith((".q_proj.weight", ".k_proj.weight")):
                # Undo the permutation on the values gguf-py reads back.
                n = kv if key.endswith(".k_proj.weight") else heads
                rows = back.shape[0]
                back = back.reshape(n, rows // n // 2, 2, -1).swapaxes(1, 2).reshape(back.shape)
            dequantized[key] = back
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    if expected:
        write_safetensors(OUT / name.replace(".gguf", ".expected.safetensors"), dequantized)
    print("wrote", name, (OUT / name).stat().st_size, "bytes")


def bpe_vocabulary():
    tok = json.loads((ROOT / "www/models/default/bd3/tokenizer.json").read_text())
    assert tok["pre_tokenizer"]["type"] == "ByteLevel" and tok["pre_tokenizer"]["use_regex"]
    vocab = tok["model"]["vocab"]
    tokens = [None] * len(vocab)
    for text, i in vocab.items():
        tokens[i] = text
    special = {a["id"] for a in tok["added_tokens"] if a["special"]}
    types = [gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL for i in range(len(tokens))]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    w = gguf.GGUFWriter(str(OUT / "bpe-vocab.gguf"), "llada")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print("wrote bpe-vocab.gguf", (OUT / "bpe-vocab.gguf").stat().st_size, "bytes")


def q6k_tensor():
    """Random Q6_K super-blocks (gguf-py has no Q6_K quantizer) beside gguf-py's own reading of
    them as F32: `q6k` [2, 256] and `q6k.expected` [2, 256]."""
    rng = np.random.default_rng(6)
    blocks = rng.integers(0, 256, size=(2, 210), dtype=np.uint8)
    blocks[:, 208:210] = np.frombuffer(np.array([0.01, -0.02], dtype=np.float16).tobytes(), dtype=np.uint8).reshape(2, 2)
    expected = gguf.quants.dequantize(blocks, Q.Q6_K).reshape(2, 256).astype(np.float32)
    w = gguf.GGUFWriter(str(OUT / "q6k.gguf"), "none")
    w.add_tensor("q6k", blocks, raw_dtype=Q.Q6_K)
    w.add_tensor("q6k.expected", expected)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print("wrote q6k.gguf", (OUT / "q6k.gguf").stat().st_size, "bytes")


def q6k_model():
    """A random a2d-qwen3 of width 256 (one block, one head of 32, MLP 32, 64 tokens) in Q4_0,
    its untied head in random Q6_K super-blocks, as a llama-quantize Q4_0 file has it."""
    rng = np.random.default_rng(7)
    d, dh, m, v = 256, 32, 32, 64
    w = gguf.GGUFWriter(str(OUT / "a2d-qwen3-q6k.gguf"), "qwen3")
    for add, value in ((w.add_block_count, 1), (w.add_context_length, 64), (w.add_embedding_length, d),
                       (w.add_feed_forward_length, m), (w.add_head_count, 1), (w.add_head_count_kv, 1),
                       (w.add_key_length, dh), (w.add_value_length, dh)):
        add(value)
    w.add_rope_freq_base(1e6)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    tokens = [f"w{i}" for i in range(v - 1)] + ["<|mask|>"]
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.NORMAL] * (v - 1) + [gguf.TokenType.CONTROL])
    w.add_mask_token_id(v - 1)
    q4 = lambda name, rows, cols: w.add_tensor(
        name, gguf.quants.quantize(rng.normal(0, 0.2, (rows, cols)).astype(np.float32), Q.Q4_0), raw_dtype=Q.Q4_0)
    norm = lambda name, n: w.add_tensor(name, (1 + 0.1 * rng.normal(size=n)).astype(np.float32))
    q4("token_embd.weight", v, d)
    norm("blk.0.attn_norm.weight", d)
    q4("blk.0.attn_q.weight", dh, d)
    q4("blk.0.attn_k.weight", dh, d)
    q4("blk.0.attn_v.weight", dh, d)
    q4("blk.0.attn_output.weight", d, dh)
    norm("blk.0.attn_q_norm.weight", dh)
    norm("blk.0.attn_k_norm.weight", dh)
    norm("blk.0.ffn_norm.weight", d)
    q4("blk.0.ffn_gate.weight", m, d)
    q4("blk.0.ffn_up.weight", m, d)
    q4("blk.0.ffn_down.weight", d, m)
    norm("output_norm.weight", d)
    blocks = rng.integers(0, 256, size=(v, 210), dtype=np.uint8)
    blocks[:, 208:210] = np.frombuffer(np.full(v, 0.002, dtype=np.float16).tobytes(), dtype=np.uint8).reshape(v, 2)
    w.add_tensor("output.weight", blocks, raw_dtype=Q.Q6_K)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print("wrote a2d-qwen3-q6k.gguf", (OUT / "a2d-qwen3-q6k.gguf").stat().st_size, "bytes")


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    for arch_dir in ("llada", "dream", "a2d-qwen3", "a2d-qwen2"):
        write(f"{arch_dir}.gguf", arch_dir, "f32")
    write("a2d-qwen3.q8_0.gguf", "a2d-qwen3", "q8_0", expected=True)
    write("llada.q4_0.gguf", "llada", "q4_0", expected=True)
    write("dream.f16.gguf", "dream", "f16")
    bpe_vocabulary()
    q6k_tensor()
    q6k_model()
