#!/usr/bin/env python3
"""Builds the dllm parity fixtures (tests/fixtures/dllm/<name>/) by running the *reference*
PyTorch modeling code once, by hand. CI never runs this; the Rust tests compare against the
committed outputs.

For each architecture it builds a tiny random-weight model (hidden 32, 2 layers, intermediate 64,
config vocab 64, 48-token word-level tokenizer), runs one forward pass on a 12-token sequence
(with mask tokens) in float32 on the CPU, and writes

    config.json            the reference's own config fields
    model.safetensors      f32 weights, key names exactly as `save_pretrained` writes them
    tokenizer.json         WordLevel + Whitespace, 44 words + <|endoftext|> <|im_start|> <|im_end|> <|mask|>
    tokenizer_config.json  chat_template (Qwen style), eos/pad/mask tokens
    reference.json         tokens, raw logits [L][V], attention, shift_logits, keys, note

Fixtures and reference code
---------------------------
  a2d-qwen3        transformers 4.57 `Qwen3ForCausalLM`, given an explicit all-zero additive 4D mask
                   [1,1,L,L] (so no causal mask is built), eager attention. Cross-checked against
                   dllm `dllm/pipelines/a2d/models/qwen3/modeling_qwen3.py` (A2DQwen3LMHeadModel,
                   which replaces the causal mask by a padding-only one); that class also writes the
                   config (model_type "a2d-qwen3") and is what `from_pretrained` reloads.
  a2d-qwen3-bd3lm  same architecture; logits under the block-causal mask of dllm
                   `dllm/core/samplers/bd3lm.py::_prepare_for_sampling` (i attends j iff
                   j // 4 <= i // 4), given as an additive 0/-inf float mask (eager), cross-checked
                   against the sampler's own bool mask under SDPA.
  a2d-qwen2        transformers 4.57 `Qwen2ForCausalLM` + zero 4D mask; dllm
                   `dllm/pipelines/a2d/models/qwen2/modeling_qwen2.py` as above.
  llada            dllm `dllm/pipelines/llada/models/modeling_llada.py` + `configuration_llada.py`
                   (LLaDAModelLM, bidirectional, no attention bias).
  dream            dllm `dllm/pipelines/dream/models/modeling_dream.py` + `configuration_dream.py`
                   (+ `generation_utils.py`, imported by the modeling file). RAW logits; the
                   sampler right-shifts them (`shift_logits: true`).

dllm commit read: ZHZisZZ/dllm @ ca176752fbceec49c6b4777a2c18ae88e4eb10ed (2026-04-14).

The only patch applied to the reference code is done in memory at import time:
`LLaDAModelLM.__init__` hard-codes `model_config.init_device = "cuda"`; it is replaced by "cpu"
(exactly one occurrence, asserted). The LLaDA file has no flash-attn import at module level
(only a guarded one behind `config.flash_attention`, which is false here). Nothing else changes.

Verification done by the script (it aborts if any fails):
  * bidirectional: changing the LAST token changes the FIRST position's logits; for the A2D
    models, transformers' class + zero 4D mask == dllm's A2D class with no mask, and both differ
    from the plain causal forward; eager == SDPA.
  * block-causal: changing a token in the last block leaves earlier blocks' logits bit-identical
    and changes its own block; changing a token in block 0 changes every position.
  * the tokenizer's <|mask|> id equals the config's mask id (`mask_token_id`, LLaDA and Dream;
    the A2D configs have no mask field - dllm takes `tokenizer.mask_token_id`, "<|mask|>").
  * every parameter is non-default (weights random: matrices N(0, 0.2^2), embedding tables
    N(0, 0.5^2), norm weights 1 + 0.1 N(0,1), biases 0.1 N(0,1)).
  * each folder is reloaded from disk (config.json + model.safetensors, strict state-dict load
    into a fresh reference model; plus `from_pretrained` of the folder) and the logits reproduce
    (max abs diff < 1e-6, in practice 0), the JSON logits parse back to the same f32 values, and
    `transformers.AutoTokenizer` loads the folder and applies the chat template.

How to run (CPU only, a few seconds):
    git clone https://github.com/ZHZisZZ/dllm /var/tmp/dllm-ref
    git -C /var/tmp/dllm-ref checkout ca176752fbceec49c6b4777a2c18ae88e4eb10ed
      (only the dllm/ directory is needed: `git checkout ca17675 -- dllm` also works)
    python -m venv /var/tmp/torch-venv
    /var/tmp/torch-venv/bin/pip install torch transformers==4.57.* safetensors numpy
    DLLM_REF=/var/tmp/dllm-ref /var/tmp/torch-venv/bin/python scripts/make_dllm_fixtures.py
The dllm checkout can also be given as the first argument. The dllm package itself is never
imported (its __init__ pulls in training dependencies): the few modeling files are loaded by path.
Deterministic: torch.manual_seed per fixture, deterministic algorithms, one thread.
Made with torch 2.15.0 (CPU), transformers 4.57.6, tokenizers 0.22.2, safetensors 0.8.0.
"""
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import types

import numpy as np
import torch
import transformers
from safetensors import safe_open
from safetensors.torch import load_file
from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers

DLLM_REPO = "ZHZisZZ/dllm"
DLLM_COMMIT = "ca176752fbceec49c6b4777a2c18ae88e4eb10ed"
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "dllm")

WORDS = """the a cat dog sat on mat and ran to house garden in big small red blue was is
saw bird tree under over happy old man child played with ball she he it what where hello good
user assistant system . , ?""".split()
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|mask|>"]
VOCAB = WORDS + SPECIALS  # specials after the words, as in Qwen's vocabulary
assert len(VOCAB) == len(set(VOCAB)) == 48, len(VOCAB)
TOK = {t: i for i, t in enumerate(VOCAB)}
EOT, IM_START, IM_END, MASK = (TOK[t] for t in SPECIALS)
CONFIG_VOCAB = 64  # embedding rows > tokenizer size, like the published (padded) models

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def words(s):
    return [TOK[w] for w in s.split()]


# 12 tokens: a chat-ish prompt followed by masks (and one mask inside the prompt).
TOKENS = [IM_START] + words("user the cat") + [MASK] + words("on the mat ?") + [IM_END, MASK, MASK]
assert len(TOKENS) == 12


# ----------------------------------------------------------------------------- reference loading
def file_sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


REF_FILES = {}  # path in dllm -> sha256


def load_ref_package(root, alias, rel_dir, names, patches=None):
    """Loads dllm modeling files from `root/rel_dir` as the package `alias` (relative imports
    between them work), without importing the dllm package. `patches`: {name: [(old, new)]}."""
    d = os.path.join(root, rel_dir)
    if not os.path.isdir(d):
        sys.exit(f"missing {d}: set DLLM_REF to a dllm checkout at {DLLM_COMMIT}")
    pkg = types.ModuleType(alias)
    pkg.__path__ = [d]
    pkg.__package__ = alias
    sys.modules[alias] = pkg
    mods = {}
    for name in names:
        path = os.path.join(d, name + ".py")
        REF_FILES[f"{rel_dir}/{name}.py"] = file_sha256(path)
        spec = importlib.util.spec_from_file_location(f"{alias}.{name}", path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        src = open(path).read()
        for old, new in (patches or {}).get(name, []):
            assert src.count(old) == 1, (path, old)
            src = src.replace(old, new)
        exec(compile(src, path, "exec"), mod.__dict__)
        setattr(pkg, name, mod)
        mods[name] = mod
    return mods


def load_references(root):
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        if head != DLLM_COMMIT:
            print(f"warning: {root} is at {head}, fixtures were made from {DLLM_COMMIT}")
    except (OSError, subprocess.CalledProcessError):
        print(f"warning: {root} is not a git checkout; cannot check the commit")
    a2d3 = load_ref_package(root, "dllm_ref_a2d_qwen3", "dllm/pipelines/a2d/models/qwen3",
                            ["modeling_qwen3"])["modeling_qwen3"]
    a2d2 = load_ref_package(root, "dllm_ref_a2d_qwen2", "dllm/pipelines/a2d/models/qwen2",
                            ["modeling_qwen2"])["modeling_qwen2"]
    llada = load_ref_package(
        root, "dllm_ref_llada", "dllm/pipelines/llada/models",
        ["configuration_llada", "modeling_llada"],
        patches={"modeling_llada": [('model_config.init_device = "cuda"',
                                     'model_config.init_device = "cpu"')]},
    )
    dream = load_ref_package(root, "dllm_ref_dream", "dllm/pipelines/dream/models",
                             ["configuration_dream", "generation_utils", "modeling_dream"])
    return a2d3, a2d2, llada, dream


# ----------------------------------------------------------------------------- helpers
def randomize(model):
    """Every parameter random and far from its default init, so every parameter matters."""
    with torch.no_grad():
        for name, p in model.named_parameters():  # tied parameters appear once
            if p.ndim == 1 and name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            elif p.ndim == 1:  # RMSNorm weights (incl. q_norm / k_norm)
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif any(k in name for k in ("embed_tokens", "wte")):
                p.copy_(0.5 * torch.randn_like(p))
            else:
                p.copy_(0.2 * torch.randn_like(p))
        for name, p in model.named_parameters():
            assert p.std().item() > 0.02 and (p - 1).abs().max() > 0.05 and p.abs().max() > 0.05, name


def block_causal_bool(n, block):
    i = torch.arange(n)
    return (i[None, :] // block <= i[:, None] // block)[None, None]  # [1,1,q,k], True = attend


def additive(mask_bool):
    return torch.zeros(mask_bool.shape).masked_fill(~mask_bool, float("-inf"))


def zeros_4d(n):
    return torch.zeros(1, 1, n, n)


def ids(tokens):
    return torch.tensor([tokens], dtype=torch.long)


def max_diff(a, b):
    return (a - b).abs().max().item()


def check(cond, msg):
    if not cond:
        sys.exit("CHECK FAILED: " + msg)
    print("  ok:", msg)


def write_json(path, obj, indent=2):
    with open(path, "w") as f:
        json.dump(obj, f, indent=indent)
        f.write("\n")


def write_tokenizer(folder):
    tok = Tokenizer(models.WordLevel(vocab=TOK, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIALS])
    tok.save(os.path.join(folder, "tokenizer.json"))
    check(tok.token_to_id("<|mask|>") == MASK and tok.get_vocab_size() == len(VOCAB),
          f"tokenizer: {tok.get_vocab_size()} tokens, <|mask|> = {MASK}")
    write_json(os.path.join(folder, "tokenizer_config.json"), {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "mask_token": "<|mask|>",
        "model_max_length": 64,
        "chat_template": CHAT_TEMPLATE,
    })


def check_tokenizer_folder(folder):
    t = transformers.AutoTokenizer.from_pretrained(folder)
    text = t.apply_chat_template([{"role": "user", "content": "the cat sat on the mat ."}],
                                 tokenize=False, add_generation_prompt=True)
    enc = t(text, add_special_tokens=False)["input_ids"]
    want = [IM_START] + words("user the cat sat on the mat .") + [IM_END, IM_START, TOK["assistant"]]
    check(enc == want and t.mask_token_id == MASK and t.eos_token_id == IM_END,
          "AutoTokenizer loads the folder; chat template + encode as expected")


def save_weights(model, folder, tied):
    """Writes model.safetensors via save_pretrained (so the key names are exactly HF's)."""
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        shutil.copyfile(os.path.join(tmp, "model.safetensors"), os.path.join(folder, "model.safetensors"))
    keys = []
    with safe_open(os.path.join(folder, "model.safetensors"), "pt") as f:
        for k in sorted(f.keys()):
            t = f.get_tensor(k)
            assert t.dtype == torch.float32, (k, t.dtype)
            keys.append([k, list(t.shape)])
    names = [k for k, _ in keys]
    if tied is not None:
        check(("lm_head.weight" in names) == (not tied),
              f"lm_head.weight {'absent (tied)' if tied else 'present (untied)'}")
    return keys


def check_bidirectional(forward, tokens):
    base = forward(tokens)
    t2 = list(tokens)
    t2[-1] = TOK["dog"]
    other = forward(t2)
    check(max_diff(base[0], other[0]) > 1e-3,
          f"bidirectional: last token changes position 0 (max |d| = {max_diff(base[0], other[0]):.3g})")


def reference_json(folder, logits, attention, shift, keys, note, extra=None):
    obj = {
        "tokens": TOKENS,
        "attention": attention,
        "shift_logits": shift,
        "note": note,
        "reference": {"repo": DLLM_REPO, "commit": DLLM_COMMIT,
                      "torch": torch.__version__, "transformers": transformers.__version__},
        "keys": keys,
        "logits": logits.tolist(),  # f32 -> Python float: exact, shortest repr round-trips
    }
    obj.update(extra or {})
    path = os.path.join(folder, "reference.json")
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
        f.write("\n")
    back = json.load(open(path))
    for k in ["logits"] + [k for k in (extra or {}) if k.startswith("logits")]:
        arr = np.asarray(back[k], dtype=np.float32)
        src = np.asarray(obj[k], dtype=np.float32)
        check(arr.shape == src.shape and np.array_equal(arr, src), f"reference.json {k} round-trips exactly")


def folder_size(folder):
    total = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
    check(total < 200 * 1024, f"{os.path.basename(folder)} is {total / 1024:.0f} KB")


def fresh_folder(name):
    folder = os.path.join(OUT, name)
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    print(f"== {name}")
    return folder


# ----------------------------------------------------------------------------- A2D (Qwen3 / Qwen2)
def qwen3_config(block_size=None):
    c = {
        "model_type": "a2d-qwen3",
        "architectures": ["A2DQwen3LMHeadModel"],
        "vocab_size": CONFIG_VOCAB,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,  # != hidden_size / num_attention_heads (8), as in Qwen3-0.6B (128 vs 64)
        "hidden_act": "silu",
        "max_position_embeddings": 64,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "rope_scaling": None,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "use_sliding_window": False,
        "sliding_window": None,
        "tie_word_embeddings": True,
        "bos_token_id": EOT,
        "eos_token_id": IM_END,
        "pad_token_id": EOT,
        "torch_dtype": "float32",
        "use_cache": False,
    }
    if block_size is not None:
        c["block_size"] = block_size
    return c


def qwen2_config():
    return {
        "model_type": "a2d-qwen2",
        "architectures": ["A2DQwen2LMHeadModel"],
        "vocab_size": CONFIG_VOCAB,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "hidden_act": "silu",
        "max_position_embeddings": 64,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "rope_scaling": None,
        "attention_dropout": 0.0,
        "use_sliding_window": False,
        "sliding_window": None,
        "max_window_layers": 2,
        "tie_word_embeddings": False,
        "bos_token_id": EOT,
        "eos_token_id": IM_END,
        "pad_token_id": EOT,
        "torch_dtype": "float32",
        "use_cache": False,
    }


def make_a2d(name, seed, cfg_dict, a2d_mod, a2d_cfg_cls, a2d_lm_cls, hf_cfg_cls, hf_lm_cls,
             block=None):
    folder = fresh_folder(name)
    write_json(os.path.join(folder, "config.json"), cfg_dict)
    write_tokenizer(folder)
    config = a2d_cfg_cls.from_pretrained(folder, attn_implementation="eager")
    check(config.model_type == cfg_dict["model_type"], f"config model_type {config.model_type}")
    if block is not None:
        check(getattr(config, "block_size", None) == block, "block_size survives the config round trip")
    torch.manual_seed(seed)
    model = a2d_lm_cls(config).eval()  # dllm's A2D class (ties lm_head to embed_tokens if tied)
    randomize(model)
    sd = model.state_dict()

    # The reference per the brief: transformers' own Qwen*ForCausalLM with an explicit 4D mask.
    hf_cfg = hf_cfg_cls(**{k: v for k, v in config.to_dict().items() if k != "model_type"})
    hf_cfg._attn_implementation = "eager"
    hf = hf_lm_cls(hf_cfg).eval()
    hf.load_state_dict(sd, strict=True)
    hf_sdpa_cfg = hf_cfg_cls(**{k: v for k, v in config.to_dict().items() if k != "model_type"})
    hf_sdpa_cfg._attn_implementation = "sdpa"
    hf_sdpa = hf_lm_cls(hf_sdpa_cfg).eval()
    hf_sdpa.load_state_dict(sd, strict=True)

    n = len(TOKENS)
    with torch.no_grad():
        def fwd_bidir(toks, m=hf):
            return m(input_ids=ids(toks), attention_mask=zeros_4d(len(toks))).logits[0]

        logits = fwd_bidir(TOKENS)
        a2d_nomask = model(input_ids=ids(TOKENS)).logits[0]
        a2d_ones = model(input_ids=ids(TOKENS), attention_mask=torch.ones(1, n, dtype=torch.long)).logits[0]
        causal = hf(input_ids=ids(TOKENS)).logits[0]
        sdpa = fwd_bidir(TOKENS, hf_sdpa)
        check(max_diff(logits, a2d_nomask) < 1e-6 and max_diff(logits, a2d_ones) < 1e-6,
              f"transformers + zero 4D mask == dllm A2D forward (no mask / all-ones mask): "
              f"{max_diff(logits, a2d_nomask):.2g}")
        check(max_diff(logits, causal) > 1e-3, "and differs from the plain causal forward")
        check(max_diff(logits, sdpa) < 1e-5, f"eager == sdpa ({max_diff(logits, sdpa):.2g})")
        check_bidirectional(fwd_bidir, TOKENS)
        check(logits.shape == (n, CONFIG_VOCAB), f"logits shape {tuple(logits.shape)}")

        extra = None
        attention = "bidirectional"
        if block is not None:
            bmask = block_causal_bool(n, block)

            def fwd_block(toks, m=hf, mask=None):
                return m(input_ids=ids(toks), attention_mask=additive(bmask) if mask is None else mask).logits[0]

            lb = fwd_block(TOKENS)
            lb_sdpa_bool = fwd_block(TOKENS, hf_sdpa, bmask)  # the sampler's own bool mask, SDPA
            lb_a2d = model(input_ids=ids(TOKENS), attention_mask=additive(bmask)).logits[0]
            check(max_diff(lb, lb_sdpa_bool) < 1e-5 and max_diff(lb, lb_a2d) < 1e-6,
                  f"block-causal: eager additive == sdpa bool mask ({max_diff(lb, lb_sdpa_bool):.2g}) == dllm A2D")
            t2 = list(TOKENS)
            t2[n - 2] = TOK["dog"]  # last block
            lb2 = fwd_block(t2)
            last0 = (n - 1) // block * block
            check(torch.equal(lb[:last0], lb2[:last0]) and max_diff(lb[last0:], lb2[last0:]) > 1e-3,
                  "block-causal: a last-block change leaves earlier blocks identical, changes its own")
            t3 = list(TOKENS)
            t3[1] = TOK["dog"]  # block 0
            lb3 = fwd_block(t3)
            check(all(max_diff(lb[i], lb3[i]) > 1e-4 for i in range(n)),
                  "block-causal: a block-0 change reaches every position")
            check(max_diff(lb, logits) > 1e-3, "block-causal logits differ from bidirectional ones")
            attention = {"block_causal": block}
            extra = {"logits_block_causal": lb.tolist(), "logits_bidirectional": logits.tolist()}
            stored = lb
        else:
            stored = logits

    tied = cfg_dict["tie_word_embeddings"]
    keys = save_weights(model, folder, tied)

    # Reload from disk, two ways.
    cfg2 = a2d_cfg_cls.from_pretrained(folder)
    fresh = hf_lm_cls(hf_cfg).eval()
    sd_disk = load_file(os.path.join(folder, "model.safetensors"))
    res = fresh.load_state_dict(sd_disk, strict=False)
    check(not res.unexpected_keys and set(res.missing_keys) <= ({"lm_head.weight"} if tied else set()),
          f"strict load of model.safetensors (missing {res.missing_keys})")
    if tied:
        fresh.tie_weights()
    reloaded = transformers.AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    check(type(reloaded).__name__ == cfg_dict["architectures"][0] and cfg2.model_type == cfg_dict["model_type"],
          f"AutoModel.from_pretrained(folder) -> {type(reloaded).__name__}")
    mask = zeros_4d(n) if block is None else additive(block_causal_bool(n, block))
    with torch.no_grad():
        r1 = fresh(input_ids=ids(TOKENS), attention_mask=mask).logits[0]
        r2 = reloaded(input_ids=ids(TOKENS), attention_mask=mask).logits[0]
    check(max_diff(r1, stored) < 1e-6 and max_diff(r2, stored) < 1e-6,
          f"reloaded folder reproduces the logits ({max_diff(r1, stored):.2g}, {max_diff(r2, stored):.2g})")

    if block is None:
        note = (f"Raw logits of transformers {transformers.__version__} {hf_lm_cls.__name__} given an "
                f"all-zero additive 4D attention mask [1,1,L,L] (bidirectional), eager attention, f32, "
                f"batch of one; equal to dllm's {a2d_lm_cls.__name__} forward with no mask. Positions 0..L-1. "
                f"Tokenizer has {len(VOCAB)} tokens, config vocab_size {CONFIG_VOCAB} (padded rows random). "
                f"Mask token <|mask|> = {MASK} (dllm A2D: tokenizer.mask_token_id; no config field).")
    else:
        note = (f"'logits' == 'logits_block_causal': raw logits under the BD3LM sampler's block-causal "
                f"mask (dllm core/samplers/bd3lm.py _prepare_for_sampling: query i attends key j iff "
                f"j // {block} <= i // {block}), given to {hf_lm_cls.__name__} as an additive 0/-inf 4D "
                f"mask, eager, f32. 'logits_bidirectional': the same weights with the all-zero mask. "
                f"config.json 'block_size' mirrors dllm's BD3LMSamplerConfig/BD3LMConfig.block_size; the "
                f"model code never reads it. Mask token <|mask|> = {MASK} (tokenizer.mask_token_id).")
    reference_json(folder, stored, attention, False, keys, note, extra)
    check_tokenizer_folder(folder)
    folder_size(folder)


# ----------------------------------------------------------------------------- LLaDA
def llada_config():
    return {
        "model_type": "llada",
        "architectures": ["LLaDAModelLM"],
        "d_model": 32,
        "n_heads": 4,
        "n_kv_heads": 2,
        "n_layers": 2,
        "mlp_ratio": 2,
        "mlp_hidden_size": 64,
        "activation_type": "silu",
        "block_type": "llama",
        "block_group_size": 1,
        "alibi": False,
        "alibi_bias_max": 8.0,
        "rope": True,
        "rope_full_precision": True,
        "rope_theta": 500000.0,
        "flash_attention": False,
        "attention_dropout": 0.0,
        "multi_query_attention": None,
        "attention_layer_norm": False,
        "attention_layer_norm_with_affine": True,
        "residual_dropout": 0.0,
        "embedding_dropout": 0.0,
        "input_emb_norm": False,
        "layer_norm_type": "rms",
        "layer_norm_with_affine": True,
        "rms_norm_eps": 1e-5,
        "bias_for_layer_norm": False,
        "max_sequence_length": 64,
        "include_qkv_bias": False,
        "include_bias": False,
        "scale_logits": False,
        "vocab_size": 60,
        "embedding_size": CONFIG_VOCAB,
        "weight_tying": False,
        "eos_token_id": IM_END,
        "pad_token_id": EOT,
        "mask_token_id": MASK,
        "init_device": None,
        "init_fn": "mitchell",
        "init_std": 0.02,
        "init_cutoff_factor": None,
        "precision": None,
        "use_cache": False,
    }


def make_llada(llada, seed=4):
    ml, cl = llada["modeling_llada"], llada["configuration_llada"]
    folder = fresh_folder("llada")
    cfg_dict = llada_config()
    write_json(os.path.join(folder, "config.json"), cfg_dict)
    write_tokenizer(folder)
    config = cl.LLaDAConfig.from_pretrained(folder)
    check(config.mask_token_id == MASK, f"config mask_token_id == tokenizer <|mask|> ({MASK})")
    check(len(VOCAB) < config.vocab_size <= config.embedding_size, "tokenizer < vocab_size <= embedding_size")
    torch.manual_seed(seed)
    model = ml.LLaDAModelLM(config).eval()
    randomize(model)
    n = len(TOKENS)
    with torch.no_grad():
        def fwd(toks):
            return model(input_ids=ids(toks)).logits[0]

        logits = fwd(TOKENS)
        ones = model(input_ids=ids(TOKENS), attention_mask=torch.ones(1, n)).logits[0]
        zero_bias = model(input_ids=ids(TOKENS), attention_bias=zeros_4d(n)).logits[0]
        check(max_diff(logits, ones) < 1e-6 and max_diff(logits, zero_bias) < 1e-6,
              "no mask == all-ones attention_mask == zero attention_bias")
        check_bidirectional(fwd, TOKENS)
    check(logits.shape == (n, CONFIG_VOCAB), f"logits have embedding_size ({CONFIG_VOCAB}) columns")
    keys = save_weights(model, folder, None)
    check("model.transformer.ff_out.weight" in [k for k, _ in keys], "untied: model.transformer.ff_out.weight present")

    config2 = cl.LLaDAConfig.from_pretrained(folder)
    fresh = ml.LLaDAModelLM(config2).eval()
    fresh.load_state_dict(load_file(os.path.join(folder, "model.safetensors")), strict=True)
    reloaded = ml.LLaDAModelLM.from_pretrained(folder).eval()
    with torch.no_grad():
        r1 = fresh(input_ids=ids(TOKENS)).logits[0]
        r2 = reloaded(input_ids=ids(TOKENS)).logits[0]
    check(max_diff(r1, logits) < 1e-6 and max_diff(r2, logits) < 1e-6,
          f"reloaded folder reproduces the logits ({max_diff(r1, logits):.2g}, {max_diff(r2, logits):.2g})")
    note = (f"Raw logits of dllm LLaDAModelLM (modeling_llada.py) forward with no attention mask or bias "
            f"(bidirectional: F.scaled_dot_product_attention, is_causal=False), f32. Logits have "
            f"embedding_size = {CONFIG_VOCAB} columns (config vocab_size 60, tokenizer {len(VOCAB)}). "
            f"GQA (n_kv_heads 2) is supported by the reference via repeat_interleave. mask_token_id "
            f"= <|mask|> = {MASK} (real LLaDA: 126336, token <|mdm_mask|>).")
    reference_json(folder, logits, "bidirectional", False, keys, note)
    check_tokenizer_folder(folder)
    folder_size(folder)


# ----------------------------------------------------------------------------- Dream
def dream_config():
    return {
        "model_type": "Dream",
        "architectures": ["DreamModel"],
        "vocab_size": CONFIG_VOCAB,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "hidden_act": "silu",
        "max_position_embeddings": 64,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "rope_scaling": None,
        "attention_dropout": 0.0,
        "use_sliding_window": False,
        "sliding_window": None,
        "max_window_layers": 2,
        "tie_word_embeddings": False,
        "bos_token_id": EOT,
        "eos_token_id": IM_END,
        "pad_token_id": EOT,
        "mask_token_id": MASK,
        "torch_dtype": "float32",
        "use_cache": False,
    }


def make_dream(dream, seed=5):
    md, cd = dream["modeling_dream"], dream["configuration_dream"]
    folder = fresh_folder("dream")
    cfg_dict = dream_config()
    write_json(os.path.join(folder, "config.json"), cfg_dict)
    write_tokenizer(folder)
    config = cd.DreamConfig.from_pretrained(folder)
    check(config.mask_token_id == MASK, f"config mask_token_id == tokenizer <|mask|> ({MASK})")
    torch.manual_seed(seed)
    model = md.DreamModel(config).eval()
    randomize(model)
    n = len(TOKENS)
    with torch.no_grad():
        def fwd(toks):
            return model(input_ids=ids(toks)).logits[0]

        logits = fwd(TOKENS)
        ones = model(input_ids=ids(TOKENS), attention_mask=torch.ones(1, n, dtype=torch.long)).logits[0]
        full = model(input_ids=ids(TOKENS), attention_mask="full").logits[0]
        check(max_diff(logits, ones) < 1e-6 and max_diff(logits, full) < 1e-6,
              "no mask == all-ones mask == 'full'")
        check_bidirectional(fwd, TOKENS)
    keys = save_weights(model, folder, False)

    config2 = cd.DreamConfig.from_pretrained(folder)
    fresh = md.DreamModel(config2).eval()
    fresh.load_state_dict(load_file(os.path.join(folder, "model.safetensors")), strict=True)
    with torch.no_grad():
        r1 = fresh(input_ids=ids(TOKENS)).logits[0]
    check(max_diff(r1, logits) < 1e-6, f"reloaded folder reproduces the logits ({max_diff(r1, logits):.2g})")
    # DreamModel.from_pretrained also wants a generation_config.json; the base class loader is enough.
    reloaded = transformers.PreTrainedModel.from_pretrained.__func__(md.DreamModel, folder).eval()
    with torch.no_grad():
        r2 = reloaded(input_ids=ids(TOKENS)).logits[0]
    check(max_diff(r2, logits) < 1e-6, f"PreTrainedModel.from_pretrained(folder) reproduces ({max_diff(r2, logits):.2g})")
    note = (f"RAW logits of dllm DreamModel (modeling_dream.py) forward with no attention mask "
            f"(bidirectional: SDPA, is_causal=False hard-coded), f32, NOT shifted. Dream predicts token i "
            f"from position i-1: the sampler uses cat([logits[:, :1], logits[:, :-1]], dim=1) "
            f"(right_shift_logits=True), hence shift_logits true. mask_token_id = <|mask|> = {MASK}.")
    reference_json(folder, logits, "bidirectional", True, keys, note)
    check_tokenizer_folder(folder)
    folder_size(folder)


# ----------------------------------------------------------------------------- main
def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("DLLM_REF")
    if not root:
        sys.exit("usage: DLLM_REF=/path/to/dllm-checkout python scripts/make_dllm_fixtures.py")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)
    a2d3, a2d2, llada, dream = load_references(os.path.abspath(root))
    os.makedirs(OUT, exist_ok=True)

    make_a2d("a2d-qwen3", 1, qwen3_config(), a2d3, a2d3.A2DQwen3Config, a2d3.A2DQwen3LMHeadModel,
             transformers.Qwen3Config, transformers.Qwen3ForCausalLM)
    make_a2d("a2d-qwen3-bd3lm", 2, qwen3_config(block_size=4), a2d3, a2d3.A2DQwen3Config,
             a2d3.A2DQwen3LMHeadModel, transformers.Qwen3Config, transformers.Qwen3ForCausalLM, block=4)
    make_a2d("a2d-qwen2", 3, qwen2_config(), a2d2, a2d2.A2DQwen2Config, a2d2.A2DQwen2LMHeadModel,
             transformers.Qwen2Config, transformers.Qwen2ForCausalLM)
    make_llada(llada)
    make_dream(dream)
    print("reference files read (sha256):")
    for k, v in sorted(REF_FILES.items()):
        print(f"  {k} {v}")


if __name__ == "__main__":
    main()
