"""
The GGUF -> HF conversion behind the offline default model (weights.py fetches the GGUF): it undoes
llama.cpp's converter: HF tensor names, the q_proj/k_proj rows back in HF's split-half RoPE order,
the tokenizer rebuilt from the GGUF metadata as a tokenizer.json. tests/plumbing/test_4_weights.py
checks it against transformers' own GGUF loader (`gguf_file=`): the same tensors and token ids.

    convert_gguf("SmolLM2-135M-Instruct.Q4_1.gguf", "out_dir")   # float32 safetensors, config, tokenizer
"""
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers


class GGUFError(ValueError):
    """A GGUF file we cannot read or convert; the message names the file."""


def log(msg, end="\n"):
    print(msg, end=end, file=sys.stderr, flush=True)  # stderr: stdout stays clean for the caller's output


def permute_qk(w, n_heads):
    """HF q/k rows -> llama.cpp's order (what its converter does); the tests use it to check the inverse.

    Within each head of hd rows, HF pairs dimension i with i + hd/2 for RoPE ("rotate_half"),
    llama.cpp pairs 2i with 2i+1, so HF row h*hd + j*hd/2 + i moves to GGUF row h*hd + 2*i + j.
    """
    rows = w.shape[0]
    return w.reshape(n_heads, 2, rows // n_heads // 2, -1).swapaxes(1, 2).reshape(w.shape)


def unpermute_qk(w, n_heads):
    """llama.cpp q/k rows -> HF's order (GGUF row h*hd + 2*i + j holds HF row h*hd + j*hd/2 + i), for
    numpy arrays and torch tensors of shape (n_heads * head_dim, in_features)."""
    rows = w.shape[0]
    if rows % (2 * n_heads):
        raise ValueError(f"{rows} rows do not split into {n_heads} heads of an even size")
    # view each head as (i, j) = (hd/2, 2), swap to (j, i): the split-half order
    return w.reshape(n_heads, rows // n_heads // 2, 2, -1).swapaxes(1, 2).reshape(w.shape)


GGUF_TO_HF = {  # per layer: blk.{i}.<gguf> -> model.layers.{i}.<hf>
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
}
GGUF_TO_HF_TOP = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}


def hf_name(gguf_name):
    """The HF name of a GGUF tensor name ("blk.0.attn_q.weight" -> "model.layers.0.self_attn.q_proj.weight")."""
    m = re.fullmatch(r"blk\.(\d+)\.(\w+)\.weight", gguf_name)
    if m and m.group(2) in GGUF_TO_HF:
        return f"model.layers.{m.group(1)}.{GGUF_TO_HF[m.group(2)]}.weight"
    base = gguf_name.removesuffix(".weight")
    if gguf_name.endswith(".weight") and base in GGUF_TO_HF_TOP:
        return f"{GGUF_TO_HF_TOP[base]}.weight"
    raise GGUFError(f"unknown GGUF tensor {gguf_name!r}: not part of a llama model we can convert")


def _f32(x):
    # GGUF stores floats as float32 (1e-5 comes back as 9.999999747e-06): write the shortest decimal of
    # that float32 (1e-05, as in HF's config.json), the same number to the model's float32 RMSNorm
    return float(np.format_float_scientific(np.float32(x), unique=True))


def convert_gguf(gguf_path, out_dir):
    """Write an HF-style directory (float32 safetensors, config, tokenizer) from a llama GGUF file."""
    # imported here: only the conversion reads GGUF; a model directory loads without the gguf package
    import gguf
    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    try:
        reader = gguf.GGUFReader(gguf_path)
        meta = {k: f.contents() for k, f in reader.fields.items()}
    except Exception as e:  # bad magic, truncated header or data: numpy/struct errors of all kinds
        raise GGUFError(f"{gguf_path}: not a readable GGUF file, truncated or corrupt? "
                        f"({type(e).__name__}: {e})") from e
    arch = meta.get("general.architecture")
    if arch != "llama":
        raise GGUFError(f"{gguf_path}: architecture {arch!r}, only 'llama' is supported")
    n_heads = meta["llama.attention.head_count"]
    n_kv = meta.get("llama.attention.head_count_kv", n_heads)
    tensors, t0 = {}, time.time()
    total, nbytes = len(reader.tensors), sum(int(t.n_bytes) for t in reader.tensors)
    done_bytes, shown = 0, t0
    for done, t in enumerate(reader.tensors, 1):
        name = hf_name(t.name)
        # quantized blocks -> float32 in nn.Linear's (out, in) layout; np.array copies the read-only memmap
        try:
            w = np.array(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
        except Exception as e:
            raise GGUFError(f"{gguf_path}: cannot read tensor {t.name} ({type(e).__name__}: {e})") from e
        if name.endswith(("q_proj.weight", "k_proj.weight")):
            w = unpermute_qk(w, n_heads if name.endswith("q_proj.weight") else n_kv)
        tensors[name] = w
        done_bytes += int(t.n_bytes)
        if time.time() - shown > 0.25 or done == total:  # a few updates a second, on one line
            shown, elapsed = time.time(), time.time() - t0
            eta = elapsed / done_bytes * (nbytes - done_bytes)  # by bytes: the tensors differ 100x in size
            log(f"\rconverting {total} tensors: {done}/{total} ({100 * done // total}%) eta {eta:.0f}s", end="")
    log(f"\rdequantized {total} tensors in {time.time() - t0:.1f}s" + " " * 20)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    config = gguf_config(meta, tensors)
    write_json(out_dir / "config.json", config)
    write_tokenizer(meta, out_dir, gguf_path)
    gen = {k: config[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id") if k in config}
    write_json(out_dir / "generation_config.json", gen)
    log(f"converted {gguf_path.name} in {time.time() - t0:.1f}s (dequantize, write safetensors, tokenizer)")
    return out_dir


def gguf_config(meta, tensors):
    """HF LlamaConfig fields from llama.cpp's metadata keys."""
    d, n_heads = meta["llama.embedding_length"], meta["llama.attention.head_count"]
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": d, "intermediate_size": meta["llama.feed_forward_length"],
        "num_hidden_layers": meta["llama.block_count"], "num_attention_heads": n_heads,
        "num_key_value_heads": meta.get("llama.attention.head_count_kv", n_heads),
        "head_dim": meta.get("llama.attention.key_length", d // n_heads),
        "rms_norm_eps": _f32(meta["llama.attention.layer_norm_rms_epsilon"]),
        "rope_theta": _f32(meta.get("llama.rope.freq_base", 10000.0)),
        "max_position_embeddings": meta["llama.context_length"],
        "vocab_size": tensors["model.embed_tokens.weight"].shape[0],
        # llama.cpp drops output.weight when the LM head is the token embedding
        "tie_word_embeddings": "lm_head.weight" not in tensors,
        "hidden_act": "silu", "attention_bias": False, "mlp_bias": False, "torch_dtype": "float32",
    }
    for hf_key, gguf_key in (("bos_token_id", "bos_token_id"), ("eos_token_id", "eos_token_id"),
                             ("pad_token_id", "padding_token_id")):
        if f"tokenizer.ggml.{gguf_key}" in meta:
            config[hf_key] = meta[f"tokenizer.ggml.{gguf_key}"]
    return config


def write_tokenizer(meta, out_dir, gguf_path):
    """tokenizer.json (byte-level BPE) and tokenizer_config.json (special tokens, chat template)."""
    if meta.get("tokenizer.ggml.model") != "gpt2":
        raise GGUFError(f"{gguf_path}: tokenizer {meta.get('tokenizer.ggml.model')!r}, only byte-level "
                        f"BPE ('gpt2') is supported")
    tokens, merges = meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.merges"]
    types = meta.get("tokenizer.ggml.token_type", [1] * len(tokens))
    # tokens and merges are already spelled in GPT-2's byte-to-unicode alphabet (' ' is 'Ġ'), so a merge
    # "a b" splits on its one real space; no None-valued BPE options, which tokenizers 0.23 rejects
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)},
                               merges=[tuple(m.split(" ")) for m in merges]))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    pre = meta.get("tokenizer.ggml.pre", "default")
    if pre == "smollm":  # llama.cpp's 'smollm': each numeric char (\p{N}) on its own, then GPT-2's regex
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    elif pre in ("default", "gpt2"):
        tok.pre_tokenizer = byte_level
    else:  # another split regex would tokenize differently without any error: refuse instead
        raise GGUFError(f"{gguf_path}: pre-tokenizer {pre!r} is not supported (only smollm, gpt2)")
    tok.decoder = decoders.ByteLevel()
    # token type 3 = CONTROL (<|im_start|> ...): matched whole before the pre-tokenizer, never split
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(tokens, types) if ty == 3])
    tok.add_tokens([AddedToken(t, special=False, normalized=False)  # 4 = USER_DEFINED: whole, not special
                    for t, ty in zip(tokens, types) if ty == 4])
    tok.save(str(out_dir / "tokenizer.json"))

    token = lambda key: None if (i := meta.get(f"tokenizer.ggml.{key}")) is None else tokens[i]  # a token id's text
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": token("bos_token_id"), "eos_token": token("eos_token_id"),
        "pad_token": token("padding_token_id"), "unk_token": token("unknown_token_id"),
        "add_bos_token": bool(meta.get("tokenizer.ggml.add_bos_token", False)),
        "add_eos_token": bool(meta.get("tokenizer.ggml.add_eos_token", False)),
        "clean_up_tokenization_spaces": False, "model_max_length": meta.get("llama.context_length"),
    }
    if "tokenizer.chat_template" in meta:
        config["chat_template"] = meta["tokenizer.chat_template"]
    write_json(out_dir / "tokenizer_config.json", config)


def write_json(path, obj):
    """obj as indented UTF-8 JSON, as HF writes its config files."""
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
