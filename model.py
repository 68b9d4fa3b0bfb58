"""
A standalone Llama / Qwen2 / Qwen3 decoder, loaded from HF-style safetensors, with room for one
extra block after every feed-forward block (Bridge or its P-Match baseline, see bridge.py).

Everything is written out: RMSNorm, rotary embeddings (HF's rotate-half form, with `llama3`
scaling), grouped-query attention, the SwiGLU MLP, an explicit KV cache and strict loading.
Module names are the HF checkpoint keys (`model.layers.3.self_attn.q_proj.weight`), so loading
is one strict `load_state_dict` with no renaming and no q/k permutation.

One forward serves training and sampling. Its inputs are the tokens, the generation `width` and
the `alive` mask: alive[n, t] says whether row n holds a real token at position t (prompt tokens,
and generated ones up to and including the first EOS). Dead positions (left padding, everything
after EOS) are never attended to, and positions count real tokens only, so a left-padded prompt
gives the same logits as the same prompt unpadded.

Shapes, here and in bridge.py, sample.py and fast.py: N = B * W rows in B groups (prompts x sets
per prompt) of W = width rows, rows g*W .. g*W+W-1 forming group g; T time, D hidden, V vocabulary.

    model, tokenizer = load_model()                     # the default model, SmolLM2-135M-Instruct
    logits = model(tokens, width=4, alive=alive)         # (N, T) -> (N, T, V)
"""
import math
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from bridge import BLOCKS, RMSNorm, new_parameter_summary, sibling_mask  # the blocks, the norm they share, Bridge's mask
from bridgekit.checkpoint import load_bridge, load_state_strict, read_checkpoint
from bridgekit.checks import check_device, read_json_object

ARCHITECTURES = ("llama", "qwen2", "qwen3")  # HF `model_type` values this file implements


@dataclass
class Config:
    """The fields of an HF `config.json` that these architectures use, with HF's names."""
    model_type: str = "llama"
    vocab_size: int = 32000
    hidden_size: int = 4096
    intermediate_size: int = 11008
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int | None = None   # None = num_attention_heads (no GQA)
    head_dim: int | None = None              # None = hidden_size // num_attention_heads
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_scaling: dict | None = None         # None or {"rope_type": "llama3", "factor": ..., ...}
    max_position_embeddings: int = 2048
    tie_word_embeddings: bool = False
    attention_bias: bool = False             # llama/qwen3: bias on q, k, v and o
    mlp_bias: bool = False
    hidden_act: str = "silu"
    bos_token_id: int | None = None
    eos_token_id: int | list | None = None
    use_sliding_window: bool = False         # qwen2 only; not implemented here
    extra: dict = field(default_factory=dict, repr=False)  # config.json fields this decoder does not use

    def __post_init__(self):
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                     "num_key_value_heads", "head_dim", "max_position_embeddings"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("rms_norm_eps", "rope_theta"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        self.num_key_value_heads = self.num_key_value_heads or self.num_attention_heads
        self.head_dim = self.head_dim or self.hidden_size // self.num_attention_heads

    @classmethod
    def from_dict(cls, d):
        """Build from a parsed config.json (transformers 4.x or 5.x layout); unknown archs are errors."""
        d = dict(d)
        arch = d.get("model_type")
        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture model_type={arch!r}: this decoder implements "
                             f"{', '.join(ARCHITECTURES)}")
        # transformers 5.x moves rope_theta and the scaling into one `rope_parameters` dict
        rope = dict(d.pop("rope_parameters", None) or {})
        if rope:
            d.setdefault("rope_theta", rope.pop("rope_theta", 10000.0))
            if rope.get("rope_type", "default") != "default":
                d["rope_scaling"] = rope
        if d.get("hidden_act", "silu") != "silu":
            raise ValueError(f"hidden_act={d['hidden_act']!r} is not supported (only silu)")
        if d.get("use_sliding_window"):
            raise ValueError("use_sliding_window=true is not supported by this decoder")
        names = {f.name for f in fields(cls)} - {"extra"}
        known = {k: v for k, v in d.items() if k in names and v is not None}
        return cls(**known, extra={k: v for k, v in d.items() if k not in names})

    @property
    def qkv_bias(self):  # Qwen2 always has q/k/v biases (and none on o)
        return self.model_type == "qwen2" or self.attention_bias

    @property
    def o_bias(self):
        return self.model_type != "qwen2" and self.attention_bias

    @property
    def qk_norm(self):   # Qwen3 normalises each head of q and k before RoPE
        return self.model_type == "qwen3"


def rope_inv_freq(config):
    """Inverse frequencies theta^(-2i/d) of the rotary embedding, with optional llama3 scaling."""
    d = config.head_dim
    inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    scaling = config.rope_scaling
    kind = scaling and scaling.get("rope_type", scaling.get("type"))  # 4.x configs may say "type"
    if not scaling or kind == "default":
        return inv_freq
    if kind != "llama3":
        raise ValueError(f"rope_scaling type {kind!r} is not supported (only 'llama3')")
    # Llama 3.1: long wavelengths (low frequencies) are slowed down by `factor`, short ones are
    # kept, and the band between the two cut-offs is interpolated smoothly.
    factor, lo, hi = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
    old_ctx = scaling.get("original_max_position_embeddings", config.max_position_embeddings)
    wavelen = 2 * math.pi / inv_freq
    smooth = (old_ctx / wavelen - lo) / (hi - lo)                 # 0 at the low cut, 1 at the high
    interpolated = (1 - smooth) * inv_freq / factor + smooth * inv_freq
    out = torch.where(wavelen > old_ctx / lo, inv_freq / factor, inv_freq)
    is_mid = (wavelen >= old_ctx / hi) & (wavelen <= old_ctx / lo)
    return torch.where(is_mid, interpolated, out)


def rope_cos_sin(inv_freq, pos, dtype):
    """cos and sin for integer positions pos (N, T) -> two (N, 1, T, head_dim) tensors."""
    freqs = pos[..., None].float() * inv_freq               # (N, T, hd/2)
    emb = torch.cat((freqs, freqs), dim=-1)                  # (N, T, hd): HF's split-half layout
    return emb.cos()[:, None].to(dtype), emb.sin()[:, None].to(dtype)


def apply_rope(x, cos, sin):
    """Rotate pairs (i, i + hd/2) of x (N, H, T, hd) by the angle of their position."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class KVCache:
    """Keys and values of every layer for N rows, preallocated up to `capacity` columns.

    All rows advance in lock-step (one column per decode step), so `length` is one number; `alive`
    marks the columns holding real tokens (the only keys ever attended to) and `n_real` counts them
    per row (the position of the next real token). One tensor per layer, so that layer i's in-place
    write never touches a tensor layer j < i saved for backward: gradients flow through a cache
    (training runs a group's prompt once and its answers on top, sample.answer_logprobs).
    """

    def __init__(self, config, n_rows, capacity, device="cpu", dtype=torch.float32):
        shape = (n_rows, config.num_key_value_heads, capacity, config.head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.num_hidden_layers)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.num_hidden_layers)]
        self.alive = torch.zeros(n_rows, capacity, dtype=torch.bool, device=device)
        self.n_real = torch.zeros(n_rows, dtype=torch.long, device=device)
        self.length = 0

    @property
    def capacity(self):
        return self.k[0].shape[2]

    def repeat_rows(self, width):
        """A cache with every row repeated `width` times (rows g*width .. g*width+width-1 = row g)."""
        rows = torch.arange(self.alive.shape[0], device=self.alive.device)
        return self.select_rows(rows.repeat_interleave(width))  # a copy, never a view

    def select_rows(self, index):
        """A cache of only the rows in `index` (a 1-D LongTensor), in that order (a copy)."""
        new = object.__new__(KVCache)
        take = lambda t: t.index_select(0, index)  # noqa: E731
        new.k, new.v = [take(k) for k in self.k], [take(v) for v in self.v]
        new.alive, new.n_real, new.length = take(self.alive), take(self.n_real), self.length
        return new


class Attention(nn.Module):

    def __init__(self, config):
        super().__init__()
        c = config
        self.n_heads, self.n_kv_heads, self.head_dim = c.num_attention_heads, c.num_key_value_heads, c.head_dim
        self.q_proj = nn.Linear(c.hidden_size, c.num_attention_heads * c.head_dim, bias=c.qkv_bias)
        self.k_proj = nn.Linear(c.hidden_size, c.num_key_value_heads * c.head_dim, bias=c.qkv_bias)
        self.v_proj = nn.Linear(c.hidden_size, c.num_key_value_heads * c.head_dim, bias=c.qkv_bias)
        self.o_proj = nn.Linear(c.num_attention_heads * c.head_dim, c.hidden_size, bias=c.o_bias)
        if c.qk_norm:
            self.q_norm = RMSNorm(c.head_dim, c.rms_norm_eps)
            self.k_norm = RMSNorm(c.head_dim, c.rms_norm_eps)

    def forward(self, x, cos, sin, mask, cache=None, layer=0):
        N, T, _ = x.shape
        q = self.q_proj(x).view(N, T, self.n_heads, self.head_dim)      # (N, T, H, hd)
        k = self.k_proj(x).view(N, T, self.n_kv_heads, self.head_dim)   # (N, T, Hkv, hd)
        v = self.v_proj(x).view(N, T, self.n_kv_heads, self.head_dim)
        if hasattr(self, "q_norm"):  # Qwen3: per-head RMSNorm, before RoPE (HF order)
            q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (N, H(kv), T, hd)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:  # write this step's keys/values, then attend over all columns so far
            start, end = cache.length, cache.length + T
            cache.k[layer][:, :, start:end], cache.v[layer][:, :, start:end] = k, v
            k, v = cache.k[layer][:, :, :end], cache.v[layer][:, :, :end]  # (N, Hkv, S, hd)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)  # (N, H, T, hd)
        return self.o_proj(y.transpose(1, 2).reshape(N, T, -1))


class MLP(nn.Module):

    def __init__(self, config):
        super().__init__()
        c = config
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=c.mlp_bias)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=c.mlp_bias)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=c.mlp_bias)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    """x += Attn(norm(x)); x += MLP(norm(x)); then, if present, x += Bridge(x) (its own norm inside).
    # paper: "A Bridge block and input normalization layer are added after each feedforward block."
    """

    def __init__(self, config):
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = Attention(config)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = MLP(config)
        self.bridge = None  # a Bridge or PMatch block, set by Transformer.add_bridge

    def forward(self, x, cos, sin, mask, width, alive, cache=None, layer=0, use_bridge=True, siblings=None):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, cache, layer)
        x = x + self.mlp(self.post_attention_layernorm(x))
        if self.bridge is not None and use_bridge:
            x = x + self.bridge(x, width, alive, siblings)  # siblings: the model's sibling_mask
        return x


class Transformer(nn.Module):

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.model = nn.ModuleDict(dict(
            embed_tokens=nn.Embedding(config.vocab_size, config.hidden_size),
            layers=nn.ModuleList(DecoderLayer(config) for _ in range(config.num_hidden_layers)),
            norm=RMSNorm(config.hidden_size, config.rms_norm_eps),
        ))
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.register_buffer("inv_freq", rope_inv_freq(config), persistent=False)
        self.use_bridge = True   # False runs a Bridge/P-Match model as its base model (the baseline)
        self.bridge_config = None  # set by add_bridge: {"kind", "n_heads", "head_dim"}

    def hidden(self, tokens, width=1, alive=None, cache=None, path="siblings"):
        """Final normed hidden states (N, T, D) for tokens (N, T); appends to `cache` if given.
        path: whom Bridge lets a row read (bridge.sibling_mask; "siblings" is the method)."""
        N, T = tokens.shape
        if N % width:
            raise ValueError(f"{N} rows is not a whole number of groups of width {width}")
        alive = torch.ones(N, T, dtype=torch.bool, device=tokens.device) if alive is None else alive
        start = 0 if cache is None else cache.length
        if cache is not None and start + T > cache.capacity:
            raise ValueError(f"KV cache holds {cache.capacity} positions; {start + T} needed")
        # positions count real tokens only: padding does not shift a row's positions
        n_before = 0 if cache is None else cache.n_real[:, None]
        pos = (n_before + alive.long().cumsum(dim=1) - 1).clamp(min=0)           # (N, T)
        x = self.model.embed_tokens(tokens)                                       # (N, T, D)
        cos, sin = rope_cos_sin(self.inv_freq, pos, x.dtype)
        # key j is visible from query i if j <= i and j is alive; a position always sees itself
        keys_alive = alive if cache is None else torch.cat((cache.alive[:, :start], alive), dim=1)
        q_col = torch.arange(start, start + T, device=tokens.device)              # (T,)
        k_col = torch.arange(start + T, device=tokens.device)                     # (S,)
        causal = k_col[None, :] <= q_col[:, None]                                 # (T, S)
        mask = (causal & (keys_alive[:, None, :] | (k_col[None, :] == q_col[:, None])))[:, None]  # (N, 1, T, S)
        # Bridge's mask across siblings depends only on alive and width: built once for all layers
        bridged = self.use_bridge and (self.bridge_config or {}).get("kind") == "bridge"
        siblings = sibling_mask(alive, width, x.dtype, path) if bridged else None  # (B*T, 1, W, W)
        for i, layer in enumerate(self.model.layers):
            x = layer(x, cos, sin, mask, width, alive, cache, i, self.use_bridge, siblings)
        if cache is not None:
            cache.alive[:, start:start + T] = alive
            cache.n_real += alive.sum(dim=1)
            cache.length = start + T
        return self.model.norm(x)

    def forward(self, tokens, width=1, alive=None, cache=None, path="siblings"):
        """Logits (N, T, V) for tokens (N, T), in groups of `width` rows."""
        return self.lm_head(self.hidden(tokens, width, alive, cache, path))

    def tie_weights(self):
        if self.config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    def add_bridge(self, kind="bridge", n_heads=4, head_dim=16, seed=0, verbose=True):
        """Insert a zero-initialised Bridge (or P-Match) block after every MLP; outputs don't change."""
        if kind not in BLOCKS:
            raise ValueError(f"unknown block kind {kind!r}: use one of {', '.join(BLOCKS)}")
        if n_heads < 1 or head_dim < 1:
            raise ValueError(f"n_heads and head_dim must be >= 1, got {n_heads} and {head_dim}")
        ref = self.lm_head.weight
        g = torch.Generator().manual_seed(seed)
        for layer in self.model.layers:
            block = BLOCKS[kind](self.config.hidden_size, n_heads, head_dim, self.config.rms_norm_eps)
            block.reset_parameters(generator=g)  # initialised on the CPU generator, then moved
            layer.bridge = block.to(device=ref.device, dtype=ref.dtype)
        self.bridge_config = dict(kind=kind, n_heads=n_heads, head_dim=head_dim)
        if verbose:
            print(new_parameter_summary(self), file=sys.stderr)
        return self

    def bridge_parameters(self):
        """The new parameters only (what the SFT warm-up trains)."""
        for layer in self.model.layers:
            if layer.bridge is not None:
                yield from layer.bridge.parameters()


def model_from_state(config, state, *, device="cpu", dtype=torch.float32, where="checkpoint"):
    """A Transformer with weights from state, built on the meta device (no double allocation)."""
    with torch.device("meta"):
        model = Transformer(config)
    load_state_strict(model, {k: v.to(dtype) for k, v in state.items()}, where)
    model.inv_freq = rope_inv_freq(config)  # buffers built on meta are recomputed for real
    return model.to(device).eval()


def load_model(name_or_path=None, *, device="cpu", dtype=torch.float32, bridge=None):
    """(model, tokenizer) from a local HF-style directory or an HF repo id (None: the default model),
    with the Bridge / P-Match checkpoint at path `bridge` (made by checkpoint.save_bridge) if given."""
    from bridgekit.tokenizer import Tokenizer
    from bridgekit.weights import resolve_model_dir  # finds or converts the files; prints the source
    device = check_device(device)
    model_dir = Path(resolve_model_dir(name_or_path))
    config_path = model_dir / "config.json"
    if not config_path.exists():
        raise FileNotFoundError(f"{model_dir}: no config.json")
    settings = read_json_object(config_path, "the model's settings")
    try:
        config = Config.from_dict(settings)
    except (ValueError, TypeError) as e:  # (TypeError: a field given as another kind of value)
        raise ValueError(f"{config_path}: {e}") from None
    tokenizer = Tokenizer(model_dir, config)  # before the weights: a broken tokenizer or template costs no load
    model = model_from_state(config, read_checkpoint(model_dir), device=device, dtype=dtype,
                             where=str(model_dir))
    model.source = str(model_dir)
    if bridge is not None:
        load_bridge(model, bridge)
        print(f"loaded {bridge}: {new_parameter_summary(model)}", file=sys.stderr)
    return model, tokenizer
