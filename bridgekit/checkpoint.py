"""
Files on disk: the Bridge checkpoint format (only the new blocks, a few MB), and the checkpoints
of a training run (replaced atomically, so a stopped run never leaves half of one).

    save_bridge(model, "blocks.safetensors")        # the new parameters + what they were made for
    load_model(..., bridge="blocks.safetensors")    # model.py rebuilds the blocks with load_bridge
    convert_bridge(src, dst, "bf16")                # the same checkpoint in half the bytes

A Bridge checkpoint is one safetensors file holding the tensors of the blocks (HF-style names,
`model.layers.{i}.bridge.qkv_proj.weight`, ...) and string metadata:

    format            "bridge-ref/1"
    kind, n_heads, head_dim                      the blocks (Bridge or P-Match) and their shape
    base_model_type, base_hidden_size, base_num_layers, base_fingerprint
                                                 the base model they were trained on

Loading one onto another base model is a one-line error: blocks trained on one model's hidden
states mean nothing on another's. A run directory (train_sft.py / train_grpo.py --out OUT) holds
OUT/args.json, OUT/log.jsonl and OUT/checkpoint/: state.pt (step, optimizer, RNG state, arguments),
bridge.safetensors (loadable by sample.py --bridge) and, when every weight trains, the whole model
as an HF-style directory that load_model reads. state.pt is read as plain data only (read_state).
The rest of the run directory (who made it, OUT/run.lock, args.json, the checks before a resume)
is run_dir.py's.
"""
import hashlib
import json
import os
import pickle
import re
import shutil
import zipfile
from pathlib import Path

import torch


BRIDGE_FORMAT = "bridge-ref/1"
BLOCK_KINDS = ("bridge", "pmatch")  # the kinds of bridge.BLOCKS (a test checks they agree)
BRIDGE_KEYS = ("kind", "n_heads", "head_dim", "base_model_type", "base_hidden_size", "base_num_layers", "base_fingerprint")


def read_safetensors(path):
    """All tensors of one .safetensors file; a corrupt file is a clear error naming it."""
    from safetensors.torch import load_file
    try:
        state = load_file(str(path))
    except Exception as e:  # safetensors raises its own error type for bad headers/truncation
        raise ValueError(f"{path}: not a readable safetensors file ({e})") from None
    for name, t in state.items():  # a NaN or inf weight would sample garbage without a word
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise ValueError(f"{path}: tensor {name} holds non-finite values (NaN or inf); refusing to load it")
    return state


def read_checkpoint(model_dir):
    """The state dict stored in model_dir: one model.safetensors, or shards listed in an index."""
    model_dir = Path(model_dir)
    index = model_dir / "model.safetensors.index.json"
    if index.exists():
        files = [model_dir / s for s in sorted(set(json.loads(index.read_text())["weight_map"].values()))]
    else:  # HF's names (model.safetensors, model-0000k-of-0000n...); bridge.safetensors is no weight file
        files = sorted(model_dir.glob("model*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{model_dir}: no model*.safetensors weights found")
    state = {}
    for f in files:
        if not f.exists():
            raise FileNotFoundError(f"{f}: shard listed in {index.name} is missing")
        state.update(read_safetensors(f))
    return state


def load_state_strict(model, state, where):
    """Fill every parameter of model from state, using every tensor in state (HF key names)."""
    config = model.config
    state = dict(state)
    if config.tie_word_embeddings:  # tied: lm_head is the embedding; a stored copy is redundant
        state.pop("lm_head.weight", None)
        if "model.embed_tokens.weight" in state:
            state["lm_head.weight"] = state["model.embed_tokens.weight"]
    expected = {k: v.shape for k, v in model.state_dict().items() if ".bridge." not in k}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(state[k].shape) != tuple(expected[k]))
    if missing or unexpected or wrong:
        few = lambda keys: ", ".join(keys[:4]) + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")  # noqa: E731
        problems = "; ".join(f"{name}: {few(keys)}" for name, keys in
                             (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys)
        raise ValueError(f"{where}: weights do not match the {config.model_type} config: {problems}")
    model.load_state_dict(state, strict=False, assign=True)  # strictness checked above
    model.tie_weights()

def fingerprint(model, per_tensor=1024):
    """A short hash of the base weights, the same for any dtype and device the model was loaded in.

    It covers every tensor of the base model: its name, its shape, and `per_tensor` elements spread
    evenly over it (all of them for a small tensor), rounded to bf16 first, where fp32 and bf16
    loads of one checkpoint agree. Two models that differ in any layer's weights differ in these
    samples unless the change spares every sampled element; it is an identity, not a checksum.
    Reading 1,024 elements per tensor costs milliseconds, even for a 7B model.
    """
    h = hashlib.sha256()
    c = model.config
    h.update(f"{c.model_type}/{c.hidden_size}/{c.num_hidden_layers}/{c.vocab_size}".encode())
    for name, t in model.state_dict().items():
        if ".bridge." in name:
            continue
        flat = t.detach().reshape(-1)
        k = min(per_tensor, flat.numel())
        idx = torch.arange(k, device=flat.device) * (flat.numel() - 1) // max(k - 1, 1)  # exact integers
        h.update(f"{name}{tuple(t.shape)}".encode())
        h.update(flat[idx].to("cpu", torch.bfloat16).view(torch.int16).numpy().tobytes())
    return h.hexdigest()[:16]


def new_state(model):
    """The new blocks' tensors (fp32, on the CPU), under their HF-style names."""
    return {k: v.detach().to("cpu", torch.float32).contiguous()
            for k, v in model.state_dict().items() if ".bridge." in k}


def save_bridge(model, path):
    """Write the new parameters (safetensors) with metadata naming the base model and the blocks."""
    from safetensors.torch import save_file
    if model.bridge_config is None:
        raise ValueError("this model has no Bridge/P-Match blocks to save (call add_bridge first)")
    c = model.config
    meta = dict(format=BRIDGE_FORMAT, **{k: str(v) for k, v in model.bridge_config.items()},
                base_model_type=c.model_type, base_hidden_size=str(c.hidden_size),
                base_num_layers=str(c.num_hidden_layers), base_fingerprint=fingerprint(model))
    save_file(new_state(model), str(path), metadata=meta)


def bridge_metadata(path):
    """The metadata of a Bridge checkpoint; anything else is a one-line error."""
    from safetensors import safe_open
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such Bridge checkpoint")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:
        raise ValueError(f"{path}: not a readable safetensors file ({e})") from None
    if meta.get("format") != BRIDGE_FORMAT:
        raise ValueError(f"{path}: not a Bridge checkpoint (no '{BRIDGE_FORMAT}' metadata)")
    missing = [k for k in BRIDGE_KEYS if k not in meta]
    if missing:
        raise ValueError(f"{path}: a damaged Bridge checkpoint (no {', '.join(missing)} in its metadata)")
    if meta["kind"] not in BLOCK_KINDS:
        raise ValueError(f"{path}: a damaged Bridge checkpoint (kind {meta['kind']!r} is none of {', '.join(BLOCK_KINDS)})")
    for key in ("n_heads", "head_dim", "base_hidden_size", "base_num_layers"):
        if not (meta[key].isdigit() and int(meta[key]) >= 1):
            raise ValueError(f"{path}: a damaged Bridge checkpoint ({key} {meta[key]!r} is not a positive integer)")
    return meta


def check_bridge_file(path, flag):
    """The checks of a --bridge / --init file that need no model, made before it loads: a file (not a
    directory), a safetensors header, Bridge metadata (bridge_metadata). None passes."""
    from bridgekit.cli import check_in_file
    if path is not None:
        check_in_file(path, flag, "Bridge checkpoint")
        bridge_metadata(path)


def convert_bridge(src, dst, dtype="bf16"):
    """Copy a save_bridge checkpoint with its tensors stored in `dtype` ("bf16" halves the file).

    The metadata (base model, blocks) is kept; load_bridge casts back to the model's dtype.
    """
    from safetensors.torch import save_file
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    if dtype not in dtypes:
        raise ValueError(f"dtype must be one of {', '.join(dtypes)}, got {dtype!r}")
    meta = bridge_metadata(src)
    state = {k: v.to(dtypes[dtype]).contiguous() for k, v in read_safetensors(src).items()}
    tmp = Path(str(dst) + ".tmp")
    save_file(state, str(tmp), metadata=meta)
    os.replace(tmp, dst)  # atomic: dst is the old file or the whole new one


def load_bridge(model, path):
    """Rebuild the blocks described in a save_bridge checkpoint and load them; checks the base model."""
    meta = bridge_metadata(path)
    c = model.config
    base = (c.model_type, str(c.hidden_size), str(c.num_hidden_layers), fingerprint(model))
    made_for = (meta["base_model_type"], meta["base_hidden_size"], meta["base_num_layers"],
                meta["base_fingerprint"])
    if made_for != base:
        committed = Path(path).resolve().parent == Path(__file__).resolve().parents[1] / "bridges"
        hint = "; the committed Bridges need the default model (leave out --model)" if committed else ""
        raise ValueError(f"{path}: Bridge checkpoint was made for another base model "
                         f"({'/'.join(made_for)}), not this one ({'/'.join(base)}){hint}")
    model.add_bridge(meta["kind"], int(meta["n_heads"]), int(meta["head_dim"]), verbose=False)
    state = read_safetensors(path)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items() if ".bridge." in k}
    if set(state) != set(expected):
        raise ValueError(f"{path}: tensors do not match a {meta['kind']} of {meta['n_heads']} x "
                         f"{meta['head_dim']} (e.g. {sorted(set(state) ^ set(expected))[:2]})")
    for name, t in state.items():
        if tuple(t.shape) != expected[name]:
            raise ValueError(f"{path}: tensor {name} has shape {tuple(t.shape)}, but a {meta['kind']} of "
                             f"{meta['n_heads']} x {meta['head_dim']} heads on this model needs {expected[name]}")
    ref = model.lm_head.weight
    model.load_state_dict({k: v.to(ref.device, ref.dtype) for k, v in state.items()}, strict=False)

# -----------------------------------------------------------------------------
# a training run's checkpoint: OUT/checkpoint/ is replaced atomically


def checkpoint_dir(out):
    """The complete checkpoint in out, or None. checkpoint.old is the previous one during a swap."""
    for name in ("checkpoint", "checkpoint.old"):
        if (Path(out) / name / "state.pt").exists():
            return Path(out) / name
    return None


def write_checkpoint(out, model, optimizer, step, args, train, *, optimizer_state=None):
    """Write OUT/checkpoint/: state.pt (step, optimizer, RNG state, arguments), the new blocks
    (bridge.safetensors) and, with train == "all", the whole model as an HF-style directory.
    Written to checkpoint.tmp, then swapped in: a stop at any moment leaves a whole checkpoint.
    A write that fails (a full disk) removes checkpoint.tmp and raises an OSError naming the file;
    the previous checkpoint stays as it was."""
    from safetensors.torch import save_file
    out = Path(out)
    tmp, final, old = out / "checkpoint.tmp", out / "checkpoint", out / "checkpoint.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if model.bridge_config is not None:
            written(tmp / "bridge.safetensors", lambda path: save_bridge(model, path))
        if train == "all":
            tied = model.config.tie_word_embeddings
            state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()
                     if ".bridge." not in k and not (k == "lm_head.weight" and tied)}
            written(tmp / "model.safetensors", lambda path: save_file(state, str(path), metadata={"format": "pt"}))
            for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"):
                if (Path(model.source) / name).exists():
                    written(tmp / name, lambda path: shutil.copy(Path(model.source) / name, path))
        # optimizer_state: given whole by name for a sharded model (parallel.whole)
        layout = "torch" if optimizer_state is None else "by name"
        written(tmp / "state.pt", lambda path: torch.save(
            dict(step=step, optimizer=optimizer.state_dict() if optimizer_state is None else optimizer_state,
                 optimizer_layout=layout, args=vars(args), train=train, torch_rng=torch.get_rng_state()), path))
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)  # (frees the space the partial files took)
        raise OSError(f"{e}; the previous checkpoint is unchanged") from None
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def written(path, write):
    """write(path), its failure an OSError naming the file: on a full disk safetensors raises its own
    SafetensorError and torch.save a RuntimeError, neither of them an OSError."""
    try:
        write(path)
    except Exception as e:
        raise OSError(f"{path}: not written ({getattr(e, 'strerror', None) or e})") from None


def read_state(path, mmap=False):
    """The plain data of a state.pt (torch.load with weights_only: tensors, numbers, strings, lists,
    dicts); a file holding anything else is refused in one line, since unpickling an arbitrary object
    can run code (a run directory may come from someone else). A damaged file: one line too.
    mmap: map the tensors instead of reading them (a check that reads only the structure)."""
    try:
        with zipfile.ZipFile(path):  # a truncated file lacks the zip directory at its end
            pass
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:  # what weights_only raises for an object it will not build
        named = re.search(r"GLOBAL ([\w.]+)", str(e))
        raise ValueError(f"{path} holds more than plain data (it names {named[1] if named else 'an object'}): "
                         "refused, since loading it could run code; resume only a state.pt this code wrote") from None
    except Exception as e:  # a damaged file: the zip reader's error, or a bad record in it
        raise ValueError(damaged(path, e)) from None


def check_state(out):
    """A ValueError (one line, naming the file and what to do) unless OUT's checkpoint state.pt is a
    whole torch.save file of plain data (read_state, its tensors mapped, not read), so --resume
    refuses it before the model loads."""
    read_state(checkpoint_dir(out) / "state.pt", mmap=True)


def damaged(path, e):
    blocks = path.parent / "bridge.safetensors"
    return (f"{path} is damaged ({e}), so the run cannot resume from it: start it again in a new --out"
            + (f" (its blocks, {blocks}, may still serve as --init)" if blocks.is_file() else ""))


def load_checkpoint(out, model_builder):
    """(model, tokenizer, state) from OUT's checkpoint; model_builder(model_dir, bridge) loads it
    (model_dir None: the checkpoint holds only the blocks, the base model is the run's --model)."""
    ckpt = checkpoint_dir(out)
    state = read_state(ckpt / "state.pt")
    bridge = ckpt / "bridge.safetensors"
    model_dir = ckpt if (ckpt / "model.safetensors").exists() else None
    model, tokenizer = model_builder(model_dir, bridge if bridge.exists() else None)
    torch.set_rng_state(state["torch_rng"])
    return model, tokenizer, state
