"""
Bridge: attention along the batch axis, between the parallel answers to one prompt (paper Eq. 2, Fig. 2).

A decoder layer mixes along the sequence (self-attention) and along the hidden dimension (the MLP).
Bridge adds a third mixer: at every timestep t, the `width` rows answering one prompt attend to
each other. In model.py's shapes (N = B * W rows, B groups of W; T time, D hidden):

    x (N, T, D)  --reshape-->  (B, W, T, D)  --transpose-->  (B, T, W, D)  --attention over W-->

Written flat, as the paper does, this is one N x N attention per timestep with the other groups
masked out (`bridge_mask`); tests/spec/test_1_bridge.py shows the two forms are equal.

- # paper: a Bridge block and its input norm after each feed-forward block, with a residual; the
  blocks start contributing nothing; tokens of other prompts and of completed generations are masked.
- # paper: only the current timestep is shared ("Markovian"), so no KV cache; any width at inference,
  so no positional encoding along the batch axis.
- # choice: multi-head attention, inner width n_heads * head_dim well below D (4 x 16 on the default
  model: 3.3% new parameters, inside the paper's 2.8-5.1%); RMSNorm as the input norm; no biases.
- # choice: zero init is W_O = 0 (the model is bit for bit the base model); q/k/v start random
  (std 1/sqrt(D)) so that W_O gets a gradient from the first step.
- # choice: a row always attends to itself: no softmax row is empty, and width 1 is x + W_O W_V norm(x).
- # choice: `alive` decides who is a key: prompt tokens and generated ones up to and including the
  first EOS. A finished row is visible at its EOS step and not after; padding is dead. Dead rows
  are still queries (their outputs are computed, never used).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    """x / rms(x) * weight, computed in fp32 at least like HF's (matters for bf16; fp64 stays fp64).

    The host model (model.py) and the blocks share this one norm. It lives here so that bridge.py
    stands alone: model.py imports bridge.py, never the other way round.
    """

    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        h = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


def bridge_mask(alive, width):
    """The paper's flat mask (Fig. 2): (T, N, N) bool, True where query row i may attend to key row j.

    Allowed iff rows i and j are in the same group (of `width` rows), and (j is alive at t, or j == i).
    """
    N, T = alive.shape
    group = torch.arange(N, device=alive.device) // width
    same_group = group[:, None] == group[None, :]                    # (N, N)
    is_self = torch.eye(N, dtype=torch.bool, device=alive.device)     # (N, N)
    key_alive = alive.t()[:, None, :]                                 # (T, 1, N)
    return same_group & (key_alive | is_self)                         # (T, N, N)


PATHS = ("siblings", "self", "crossed")


def sibling_mask(alive, width, dtype=None, path="siblings"):
    """Who may attend to whom inside a group at each timestep, (B*T, 1, W, W) for Bridge's attention.
    True where row i may attend to sibling j (j alive at t, or j == i): bridge_mask's blocks on the
    diagonal, laid out per (group, timestep). With a float `dtype`, the additive form the attention
    reads directly: 0 where allowed, -inf where not.

    path: which rows a row reads, for measuring what the siblings add (evaluate.py --paths); the
    block and its weights are the same, only the mask changes.
    - "siblings": the method: the alive rows of its own group (the default).
    - "self": only itself, in a group of `width` (what width 1 computes, row by row).
    - "crossed": the groups come in pairs (2 * width rows, a set A then a set B of the same
      prompt). A row of A reads itself and the alive rows of B, never its own siblings; a row of B
      reads only itself. So A's block input is still a set of other answers to its prompt, and no
      path leads from one row of A to another (not even through B, which reads nobody). Only A
      is scored. Returns the (B/2*T, 1, 2W, 2W) mask of groups of 2 * width.
    """
    if path not in PATHS:
        raise ValueError(f"path must be one of {', '.join(PATHS)}, got {path!r}")
    N, T = alive.shape
    if path == "crossed":
        width *= 2
        if N % width:
            raise ValueError(f"the crossed path pairs groups: {N} rows is not a whole number of pairs of groups of {width // 2}")
    B, W = N // width, width
    key_alive = alive.view(B, W, T).transpose(1, 2).reshape(B * T, 1, 1, W)    # (B*T, 1, 1, W)
    is_self = torch.eye(W, dtype=torch.bool, device=alive.device)             # (W, W)
    if path == "siblings":
        allowed = key_alive | is_self                                         # (B*T, 1, W, W)
    elif path == "self":
        allowed = is_self.expand(B * T, 1, W, W)
    else:
        in_a = torch.arange(W, device=alive.device) < W // 2                  # (W,): the rows of set A
        a_reads_b = in_a[:, None] & ~in_a[None, :]                            # (W, W)
        allowed = (key_alive & a_reads_b) | is_self
    if dtype is None:
        return allowed
    return torch.zeros(allowed.shape, dtype=dtype, device=alive.device).masked_fill_(~allowed, float("-inf"))


class Bridge(nn.Module):
    """One Bridge block: returns the residual update for x (N, T, D), attending across the W rows."""

    def __init__(self, dim, n_heads=4, head_dim=16, eps=1e-6):
        super().__init__()
        self.n_heads, self.head_dim = n_heads, head_dim
        inner = n_heads * head_dim
        self.norm = RMSNorm(dim, eps)
        # W_Q, W_K, W_V of Eq. 2 stacked into one (3 * inner, D) matrix: rows [0, inner) are
        # W_Q, then W_K, then W_V; one product instead of three small ones
        self.qkv_proj = nn.Linear(dim, 3 * inner, bias=False)
        self.o_proj = nn.Linear(inner, dim, bias=False)
        self.reset_parameters()

    def reset_parameters(self, generator=None):
        """q/k/v random (std D^-1/2), W_O = 0: the block contributes exactly nothing until trained."""
        nn.init.normal_(self.qkv_proj.weight, std=self.qkv_proj.in_features ** -0.5, generator=generator)
        nn.init.zeros_(self.o_proj.weight)  # the block starts as an exact no-op
        nn.init.ones_(self.norm.weight)

    def _qkv(self, x, width):
        N, T, D = x.shape
        B, W, H, hd = N // width, width, self.n_heads, self.head_dim
        h = self.norm(x).view(B, W, T, D).transpose(1, 2)                     # (B, T, W, D)
        qkv = self.qkv_proj(h).view(B * T, W, 3 * H, hd).transpose(1, 2)      # (B*T, 3H, W, hd)
        return qkv.split(H, dim=1)                        # q, k, v (W_Q's heads first): 3 x (B*T, H, W, hd)

    def forward(self, x, width, alive, mask=None):
        """mask: sibling_mask(alive, width, x.dtype). It depends on neither x nor the layer, so the
        model builds it once per forward for all its blocks; built here when not given. Its last
        dimension is the group the attention runs over (2 * width for the crossed path)."""
        N, T, D = x.shape
        if mask is None:
            mask = sibling_mask(alive, width, x.dtype)
        width = mask.shape[-1]
        B, W = N // width, width
        q, k, v = self._qkv(x, width)
        # softmax(q k^T / sqrt(hd), masked) v: attention over the W rows, per (group, timestep, head)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)          # (B*T, H, W, hd)
        y = y.transpose(1, 2).reshape(B, T, W, -1)                            # (B, T, W, H*hd)
        y = self.o_proj(y)                                                    # (B, T, W, D)
        return y.transpose(1, 2).reshape(N, T, D)                             # (N, T, D)

    def attention_weights(self, x, width, alive):
        """(B, T, H, W, W): how much row i of each group attends to sibling j, per timestep and head.

        The softmax that forward() applies, written out (for tools/attention_map.py); each
        (i, :) sums to 1, and masked siblings get exactly 0.
        """
        N, T, _ = x.shape
        q, k, _ = self._qkv(x, width)
        scores = (q @ k.transpose(-1, -2)) * self.head_dim ** -0.5            # (B*T, H, W, W)
        weights = scores.masked_fill(~sibling_mask(alive, width), float("-inf")).softmax(dim=-1)
        return weights.view(N // width, T, self.n_heads, width, width)


class PMatch(nn.Module):
    """The parameter-matched baseline (P-Match): a token-wise MLP at the same place, no cross-row mixing.

    # paper: an MLP with as many new parameters as Bridge, to separate "more parameters" from
    # "information shared across answers".
    # choice: norm -> up (D x 2d) -> SiLU -> down (2d x D) with d = n_heads * head_dim, which matches
    # Bridge's W_Q, W_K, W_V, W_O (4 * D * d) and its norm exactly; down is zero-initialised like W_O.
    """

    def __init__(self, dim, n_heads=4, head_dim=16, eps=1e-6):
        super().__init__()
        hidden = 2 * n_heads * head_dim
        self.norm = RMSNorm(dim, eps)
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)
        self.reset_parameters()

    def reset_parameters(self, generator=None):
        """up random (std D^-1/2), down = 0: the block contributes exactly nothing until trained."""
        nn.init.normal_(self.up_proj.weight, std=self.up_proj.in_features ** -0.5, generator=generator)
        nn.init.zeros_(self.down_proj.weight)
        nn.init.ones_(self.norm.weight)

    def forward(self, x, width, alive, mask=None):
        """The update for x (N, T, D), row by row: width, alive and mask are unused (no row sees another)."""
        return self.down_proj(F.silu(self.up_proj(self.norm(x))))


BLOCKS = {"bridge": Bridge, "pmatch": PMatch}


def count_parameters(module):
    """How many numbers the parameters of `module` hold."""
    return sum(p.numel() for p in module.parameters())


def new_parameter_summary(model):
    """One line: how many parameters the blocks add, as a fraction of the base model."""
    new = sum(p.numel() for p in model.bridge_parameters())
    base = sum(p.numel() for p in model.parameters()) - new
    c = model.bridge_config
    return (f"{c['kind']}: {c['n_heads']} heads x {c['head_dim']} in {model.config.num_hidden_layers} "
            f"layers = {new:,} new parameters, {100 * new / base:.2f}% of the base model's {base:,}")
