"""
What a command checks before its work, so that the algorithm's functions need not: the device, the
sampling settings and arguments, and whether a sample() call fits in memory (the alternative is the
kernel's out-of-memory killer, which ends the process without a word). Each is a one-line ValueError.

    checks.check_sample_call(model, ids, **run)      # then sample.sample(model, ids, eos_ids, **run)
"""
import json
from pathlib import Path


def check_device(device):
    """The device as a string; a ValueError (one line) unless it is cpu, or cuda where CUDA is."""
    import torch
    device = str(device)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available here")
    if not (device == "cpu" or device.startswith("cuda")):
        raise ValueError(f"device must be 'cpu' or 'cuda[:i]', got {device!r}")
    return device


def read_json_object(path, what):
    """The JSON object (a dict) in the file at `path`, which holds `what`; a file that is not valid
    JSON, or holds a list or a number instead, is a one-line ValueError naming it."""
    try:
        d = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(d, dict):
        raise ValueError(f"{path}: not a JSON object of {what}")
    return d


def check_model(name, flag="--model"):
    """Raise ValueError (one line) if `name` is a local path that is not a model directory; a hub repo
    id (owner/name) or None (the default model) is left to the load. Commands that run their jobs in
    subprocesses call it first, so that a model that cannot be there fails once, before them."""
    if name is None:
        return
    from bridgekit import weights
    path = Path(name).expanduser()
    if path.is_dir():
        try:
            weights.check_model_dir(path)
        except FileNotFoundError as e:
            raise ValueError(f"{flag} {e}") from None
    elif path.exists():
        raise ValueError(f"{flag} {name} is a file; give the model's directory")
    elif weights.looks_like_path(name):
        raise ValueError(f"{flag} {name}: no such model directory")


# The highest temperature any command takes: at 10 the logits of a trained model (a spread of ~20-30)
# are squeezed to ~2-3, so the draws are close to uniform over the vocabulary, noise and no answer
MAX_TEMPERATURE = 10.0


def check_sampling(temperature, top_k, top_p):
    """A ValueError (one line) unless the sampling settings describe a useful distribution."""
    if not 0 <= temperature <= MAX_TEMPERATURE:  # inf (or 1e30) would draw uniformly, silently
        raise ValueError(f"temperature must be >= 0 and finite, at most {MAX_TEMPERATURE:g} (higher draws nearly "
                         f"uniformly), got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top-p must be in (0, 1], got {top_p}")
    if top_k < 0:
        raise ValueError(f"top-k must be >= 0 (0 = off), got {top_k}")


def check_sample_args(args):
    """The sampling command's errors found before the (slow) model load: one line each."""
    from bridgekit import tasks
    from bridgekit.checkpoint import check_bridge_file
    from bridgekit.cli import check_seed
    for name in ("width", "max_new_tokens"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    check_sampling(args.temperature, args.top_k, args.top_p)
    check_seed(args.seed)
    if args.prompt is not None and not all(p.strip() for p in args.prompt):
        raise ValueError("--prompt: an empty prompt asks nothing; give the text")
    check_bridge_file(args.bridge, "--bridge")
    if args.no_chat and not args.prompt:
        raise ValueError("--no-chat applies to --prompt text; the built-in problem is always asked as in training")
    if args.task is not None:
        if args.task not in tasks.TASKS:
            raise ValueError(f"unknown task {args.task!r}; choose one of {', '.join(tasks.TASKS)}")
        if args.prompt:
            raise ValueError("--task picks the built-in problem; it cannot score a --prompt")
        if args.task in tasks.SET_TASKS and args.width < 2:
            raise ValueError(f"task {args.task!r} is scored as a group: at --width 1 there is nothing to coordinate")


def check_sample_call(model, prompts_ids, *, width=4, max_new_tokens=256, temperature=1.0, top_k=0, top_p=1.0,
                      generator=None, groups_per_prompt=1, path="siblings", keep_logits=False, ignore_eos=False):
    """A ValueError (one line) for a sample() call (the same arguments) that cannot run, before
    anything is allocated: the settings, the prompts, the context, the generators, the memory."""
    import torch
    check_sampling(temperature, top_k, top_p)
    if min(width, groups_per_prompt, max_new_tokens) < 1:
        raise ValueError(f"width, groups_per_prompt and max_new_tokens must be >= 1, got "
                         f"{width}, {groups_per_prompt} and {max_new_tokens}")
    if not prompts_ids or any(len(ids) == 0 for ids in prompts_ids):
        raise ValueError("every prompt needs at least one token")
    if path == "crossed" and groups_per_prompt % 2:
        raise ValueError(f"the crossed path pairs the groups of a prompt: groups_per_prompt must be even, got {groups_per_prompt}")
    weight, P = model.lm_head.weight, max(len(ids) for ids in prompts_ids)
    if P + max_new_tokens > model.config.max_position_embeddings:
        raise ValueError(f"prompt of {P} tokens + {max_new_tokens} new tokens exceeds the model's context of "
                         f"{model.config.max_position_embeddings} (lower --max-new-tokens or shorten the prompt)")
    n_groups = len(prompts_ids) * groups_per_prompt
    check_fits(model.config, len(prompts_ids), n_groups * width, P + max_new_tokens, weight.dtype, weight.device,
               keep_logits * max_new_tokens)
    if generator is not None and not isinstance(generator, torch.Generator) and len(generator) != n_groups:
        raise ValueError(f"got {len(generator)} generators for {n_groups} groups (one each)")


def call_bytes(config, prompts, rows, capacity, dtype, kept_steps=0):
    """(KV cache bytes, logits bytes) one sample() call needs at least: the cache of the prompts
    (prefill) and of all its rows, `capacity` columns each, and the (rows, vocabulary) logits with
    the fp32 copy the sampling distribution is computed in (and every step's, with keep_logits)."""
    import torch
    itemsize = torch.empty((), dtype=dtype).element_size()
    per_row = 2 * config.num_hidden_layers * config.num_key_value_heads * config.head_dim * capacity * itemsize
    logits = rows * config.vocab_size * (itemsize + 4) + rows * kept_steps * config.vocab_size * 4
    return (prompts + rows) * per_row, logits


def check_fits(config, prompts, rows, capacity, dtype, device, kept_steps=0):
    """A ValueError (one line) when a call's KV cache and logits alone exceed the memory the device
    has available (available_bytes), before any of it is allocated: the alternative is the
    kernel's out-of-memory killer, which ends the process without a word."""
    free = available_bytes(device)
    cache, logits = call_bytes(config, prompts, rows, capacity, dtype, kept_steps)
    if free is not None and cache + logits > free:
        raise ValueError(f"{rows} rows of {capacity} tokens need at least {size_text(cache + logits)} "
                         f"(KV cache {size_text(cache)}, logits {size_text(logits)}), more than the "
                         f"{size_text(free)} available on {device}: lower the width or the rows per call")


def available_bytes(device="cpu"):
    """Memory a new allocation can take now: on CUDA the device's free memory (and what PyTorch's
    allocator holds unused); on the CPU the kernel's MemAvailable, lowered to the room left under a
    cgroup limit (a container). None when it cannot be read."""
    import torch
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as f:
            avail = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            avail = min(avail, int(limit) - used)
    except (OSError, ValueError):
        pass
    return avail


def size_text(n):
    """A number of bytes in words: 1.5 GiB, 12.0 MiB."""
    return f"{n / 2 ** 30:.1f} GiB" if n >= 2 ** 30 else f"{n / 2 ** 20:.1f} MiB"
