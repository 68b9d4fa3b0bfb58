"""What Bridge guarantees, one property per test.

Block-level properties run in fp64 on a bare `Bridge`; model-level properties run on a tiny random
Llama with random non-zero blocks (a fresh block is an exact no-op, which would make most of these
hold trivially), in fp64 so that "equal" can mean equal to 1e-9 rather than "close in fp32". Rows are grouped prompt-major: rows g*W .. g*W+W-1 answer prompt g.
"""
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, strategies as st

from bridge import Bridge, PMatch, bridge_mask, count_parameters, sibling_mask
from model import Config, Transformer, load_model
from sample import generate, sample
from tiny import add_random_bridge, logits, tokens_alive

ROOT = Path(__file__).resolve().parents[2]
TOL = 1e-9  # model-level tolerance (fp64)


def random_block(seed, dim=16, n_heads=2, head_dim=4, cls=Bridge):
    g = torch.Generator().manual_seed(seed)
    block = cls(dim, n_heads, head_dim).double()
    with torch.no_grad():
        for p in block.parameters():  # every weight non-zero, W_O included
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)
    return block


def random_inputs(seed, B, W, T, dim=16):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B * W, T, dim, generator=g, dtype=torch.float64)
    alive = torch.rand(B * W, T, generator=g) < 0.7
    return x, alive


sizes = dict(seed=st.integers(0, 2**16), B=st.integers(1, 3), W=st.integers(1, 5), T=st.integers(1, 5))


# --- the block itself ------------------------------------------------------------------------

def weights_qkv(block):
    """W_Q, W_K, W_V (each (H*hd, D)): the three row blocks of the stacked qkv_proj."""
    return block.qkv_proj.weight.split(block.n_heads * block.head_dim)


def reference_loop(block, x, width, alive):
    """Eq. 2 written as loops over groups, timesteps, query rows and heads (fp64)."""
    N, T, D = x.shape
    H, hd = block.n_heads, block.head_dim
    h = block.norm(x)
    q, k, v = (h @ w.T for w in weights_qkv(block))  # (N, T, H*hd) each
    out = torch.zeros(N, T, H * hd, dtype=x.dtype)
    for g in range(N // width):
        rows = range(g * width, (g + 1) * width)
        for t in range(T):
            for i in rows:
                keys = [j for j in rows if alive[j, t] or j == i]
                for head in range(H):
                    s = slice(head * hd, (head + 1) * hd)
                    scores = torch.stack([q[i, t, s] @ k[j, t, s] for j in keys]) / math.sqrt(hd)
                    weights = scores.softmax(0)
                    out[i, t, s] = sum(w * v[j, t, s] for w, j in zip(weights, keys))
    return block.o_proj(out)


@given(**sizes)
def test_vectorised_block_equals_an_explicit_loop_over_groups_timesteps_and_rows(seed, B, W, T):
    block, (x, alive) = random_block(seed), random_inputs(seed, B, W, T)
    with torch.no_grad():
        assert torch.allclose(block(x, W, alive), reference_loop(block, x, W, alive), atol=1e-12)


@given(**sizes)
def test_attention_weights_are_the_softmax_forward_applies(seed, B, W, T):
    """attention_weights @ v, through W_O, is forward(); rows sum to 1; masked siblings get 0."""
    block, (x, alive) = random_block(seed), random_inputs(seed, B, W, T)
    H, hd = block.n_heads, block.head_dim
    with torch.no_grad():
        a = block.attention_weights(x, W, alive)                          # (B, T, H, W, W)
        h = block.norm(x).view(B, W, T, -1)
        v = (h @ weights_qkv(block)[2].T).view(B, W, T, H, hd).permute(0, 2, 3, 1, 4)  # (B, T, H, W, hd)
        y = (a @ v).permute(0, 3, 1, 2, 4).reshape(B * W, T, H * hd)
        assert torch.allclose(block.o_proj(y), block(x, W, alive), atol=1e-12)
    assert torch.allclose(a.sum(-1), torch.ones(()).double())
    mask = bridge_mask(alive, W).view(T, B, W, B, W)                        # flat mask, one block per group
    within = torch.stack([mask[:, b, :, b, :] for b in range(B)])           # (B, T, W, W)
    assert (a[~within[:, :, None].expand_as(a)] == 0).all()


@given(**sizes)
def test_grouped_reshape_equals_flat_attention_under_the_paper_mask(seed, B, W, T):
    """(B, T, W, D) attention == one N x N attention per timestep with `bridge_mask` (Fig. 2)."""
    block, (x, alive) = random_block(seed), random_inputs(seed, B, W, T)
    N, H, hd = B * W, block.n_heads, block.head_dim
    mask = bridge_mask(alive, W)                                           # (T, N, N)
    with torch.no_grad():
        h = block.norm(x).transpose(0, 1)                                  # (T, N, D)
        q, k, v = ((h @ w.T).view(T, N, H, hd).transpose(1, 2) for w in weights_qkv(block))
        att = (q @ k.transpose(-2, -1) / math.sqrt(hd)).masked_fill(~mask[:, None], float("-inf"))
        flat = block.o_proj((att.softmax(-1) @ v).transpose(1, 2).reshape(T, N, H * hd)).transpose(0, 1)
        assert torch.allclose(block(x, W, alive), flat, atol=1e-12)


@given(**sizes)
def test_the_sibling_mask_is_the_flat_masks_diagonal_blocks_and_its_additive_form(seed, B, W, T):
    """The (B*T, 1, W, W) mask the blocks read (built once per forward by the model) is bridge_mask's
    group blocks; the additive form is 0 there and -inf elsewhere; passing it changes nothing."""
    block, (x, alive) = random_block(seed), random_inputs(seed, B, W, T)
    flat = bridge_mask(alive, W)                                           # (T, N, N)
    grouped = sibling_mask(alive, W).view(B, T, W, W)
    for g in range(B):
        rows = slice(g * W, (g + 1) * W)
        assert torch.equal(grouped[g], flat[:, rows, rows])
    additive = sibling_mask(alive, W, x.dtype).view(B, T, W, W)
    assert (additive[grouped] == 0).all() and (additive[~grouped] == float("-inf")).all()
    with torch.no_grad():
        assert torch.equal(block(x, W, alive), block(x, W, alive, sibling_mask(alive, W, x.dtype)))


def test_bridge_mask_blocks_other_prompts_and_dead_keys_but_never_self():
    alive = torch.tensor([[1, 1], [1, 0], [0, 0], [1, 1], [1, 1], [1, 1]], dtype=torch.bool)
    m = bridge_mask(alive, width=3)                                        # groups {0,1,2}, {3,4,5}
    assert not m[:, :3, 3:].any() and not m[:, 3:, :3].any()               # other prompts: masked
    assert m[0, 0].tolist()[:3] == [True, True, False]                     # row 2 dead: not a key
    assert m[1, 0].tolist()[:3] == [True, False, False]                    # row 1 died at t=1
    assert m[:, torch.arange(6), torch.arange(6)].all()                    # self: always allowed


@given(seed=st.integers(0, 2**16), T=st.integers(1, 5))
def test_width_one_reduces_to_x_plus_wo_wv_norm_x(seed, T):
    block, (x, alive) = random_block(seed), random_inputs(seed, 4, 1, T)
    with torch.no_grad():
        closed_form = block.o_proj(block.norm(x) @ weights_qkv(block)[2].T)  # softmax over one key is 1
        assert torch.allclose(block(x, 1, alive), closed_form, atol=1e-12)


@given(seed=st.integers(0, 2**16), W=st.integers(2, 6), T=st.integers(1, 4))
def test_identical_rows_give_the_width_one_result(seed, W, T):
    """Why prefilling once per prompt is exact: a group of identical rows is one row."""
    block, (x, alive) = random_block(seed), random_inputs(seed, 1, 1, T)
    with torch.no_grad():
        together = block(x.repeat(W, 1, 1), W, alive.repeat(W, 1))
        assert torch.allclose(together, block(x, 1, alive).expand(W, T, -1), atol=1e-12)


@given(**sizes)
def test_block_is_local_in_time(seed, B, W, T):
    """The block at timestep t sees only timestep t: changing other timesteps changes nothing there."""
    block, (x, alive) = random_block(seed), random_inputs(seed, B, W, T + 1)
    x2, alive2 = x.clone(), alive.clone()
    x2[:, T:] += 1.0
    alive2[:, T:] = ~alive2[:, T:]
    with torch.no_grad():
        assert torch.equal(block(x, W, alive)[:, :T], block(x2, W, alive2)[:, :T])


@pytest.mark.parametrize("width", [1, 2, 3, 5, 8, 16])
def test_one_set_of_weights_runs_at_any_width(bridged, width):
    """At every width the same weights give each group the logits it gets alone (groups never
    mix), read the siblings (width >= 2 differs from the same rows run without siblings), and
    create nothing width-specific."""
    model, _ = bridged
    n_params = len(model.state_dict())
    x, alive = tokens_alive(width, 2 * width, 6)
    out = logits(model, x, width, alive)
    for g in range(2):
        rows = slice(g * width, (g + 1) * width)
        assert (out[rows] - logits(model, x[rows], width, alive[rows])).abs().max() < TOL
    alone = logits(model, x, 1, alive)
    assert torch.equal(out, alone) if width == 1 else (out - alone).abs().max() > 1e-3
    assert len(model.state_dict()) == n_params


# --- the model with blocks -----------------------------------------------------------------

def test_zero_initialised_blocks_leave_logits_bit_identical_and_text_identical(tiny_dir):
    base, tok = load_model(str(tiny_dir))
    x, alive = tokens_alive(0, 8, 10)
    alive[1, 6:] = False
    before = logits(base, x, 4, alive)
    text_before = generate(base, tok, ["hello", "hi"], width=4, max_new_tokens=10, seed=3)
    for kind in ("bridge", "pmatch"):
        model, _ = load_model(str(tiny_dir))
        model.add_bridge(kind, n_heads=2, head_dim=8)
        assert torch.equal(logits(model, x, 4, alive), before)
        assert generate(model, tok, ["hello", "hi"], width=4, max_new_tokens=10, seed=3) == text_before


@given(seed=st.integers(0, 2**16), W=st.integers(1, 4))
def test_group_isolation_other_prompts_rows_change_nothing(bridged, seed, W):
    """Changing, adding, removing or reordering other groups leaves a group's logits unchanged."""
    model, _ = bridged
    x, alive = tokens_alive(seed, 3 * W, 7)
    alive[W:2 * W, :2] = False  # the middle group is left-padded
    ref = logits(model, x, W, alive)
    mine = slice(W, 2 * W)  # we watch group 1
    alone = logits(model, x[mine], W, alive[mine])
    assert (alone - ref[mine]).abs().max() < TOL                               # others removed
    x2 = x.clone()
    x2[:W] = torch.randint(3, 259, (W, 7), generator=torch.Generator().manual_seed(seed + 1))
    assert (logits(model, x2, W, alive)[mine] - ref[mine]).abs().max() < TOL   # others changed
    order = torch.cat((torch.arange(2 * W, 3 * W), torch.arange(W, 2 * W), torch.arange(0, W)))
    moved = logits(model, x[order], W, alive[order])[mine]                     # groups reordered
    assert (moved - ref[mine]).abs().max() < TOL
    bigger = torch.cat((x, x[:W]))                                             # a group added
    assert (logits(model, bigger, W, torch.cat((alive, alive[:W])))[mine] - ref[mine]).abs().max() < TOL


@given(seed=st.integers(0, 2**16), W=st.integers(2, 5))
def test_permutation_equivariance_permuting_rows_in_a_group_permutes_the_outputs(bridged, seed, W):
    model, _ = bridged
    x, alive = tokens_alive(seed, 2 * W, 6)
    alive[0, 4:] = False  # one row finished early
    g = torch.Generator().manual_seed(seed)
    perm = torch.cat((torch.randperm(W, generator=g), W + torch.randperm(W, generator=g)))
    out = logits(model, x, W, alive)
    assert (logits(model, x[perm], W, alive[perm]) - out[perm]).abs().max() < TOL


@given(seed=st.integers(0, 2**16), t=st.integers(0, 6))
def test_causality_nothing_after_t_in_any_row_changes_any_logit_up_to_t(bridged, seed, t):
    model, _ = bridged
    W, T = 3, 8
    x, alive = tokens_alive(seed, 2 * W, T)
    x2, alive2 = x.clone(), alive.clone()
    x2[:, t + 1:] = torch.randint(3, 259, (2 * W, T - t - 1), generator=torch.Generator().manual_seed(seed))
    alive2[::2, t + 1:] = False  # and some rows "die" in the future
    a, b = logits(model, x, W, alive), logits(model, x2, W, alive2)
    assert (a[:, :t + 1] - b[:, :t + 1]).abs().max() < TOL


@given(seed=st.integers(0, 2**16), death=st.integers(1, 6))
def test_dead_rows_rewriting_a_row_after_its_death_changes_nothing_in_the_others(bridged, seed, death):
    model, _ = bridged
    W, T = 4, 8
    x, alive = tokens_alive(seed, W, T)
    alive[2, death:] = False  # row 2 emitted EOS at death - 1
    x2 = x.clone()
    x2[2, death:] = torch.randint(3, 259, (T - death,), generator=torch.Generator().manual_seed(seed))
    a, b = logits(model, x, W, alive), logits(model, x2, W, alive)
    assert (a[alive] - b[alive]).abs().max() < TOL  # every live logit, the dead row's past included


def test_a_change_in_one_row_reaches_its_siblings_later_logits(bridged):
    """The blocks are not silently a no-op: with Bridge on, siblings see the change; off, they don't."""
    model, _ = bridged
    W, T, t = 4, 8, 3
    x, alive = tokens_alive(11, W, T)
    x2 = x.clone()
    x2[0, t] = (x[0, t] + 1) % 259
    siblings = slice(1, W)
    diff = (logits(model, x, W, alive) - logits(model, x2, W, alive))[siblings]
    assert diff[:, :t].abs().max() == 0          # not before the change (causality)
    assert diff[:, t].abs().max() > 1e-3         # at t itself, through Bridge at the same timestep
    assert diff[:, t + 1:].abs().max() > 1e-3    # and later, through the residual stream and cache
    model.use_bridge = False
    try:
        off = (logits(model, x, W, alive) - logits(model, x2, W, alive))[siblings]
    finally:
        model.use_bridge = True
    assert off.abs().max() == 0


@given(seed=st.integers(0, 2**16), W=st.integers(1, 4),
       lengths=st.lists(st.integers(1, 9), min_size=1, max_size=3))
def test_teacher_forced_logits_of_sampled_sequences_equal_the_logits_seen_while_sampling(bridged, seed, W, lengths):
    """Prefill once + cached decode with blocks == one full forward with the same alive mask."""
    model, _ = bridged
    g = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(3, 259, (n,), generator=g).tolist() for n in lengths]
    r = sample(model, prompts, [5, 6, 7, 8], width=W, max_new_tokens=8, generator=g, keep_logits=True)
    P, S = r.prompt_len, r.logits.shape[1]
    full = logits(model, r.tokens, W, r.alive)[:, P - 1:P - 1 + S]
    assert (full - r.logits)[r.alive[:, P:]].abs().max() < TOL


# --- P-Match ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dim,heads,hd", [(576, 4, 16), (64, 2, 8), (1536, 8, 64)])
def test_pmatch_has_exactly_the_parameter_count_of_bridge(dim, heads, hd):
    # both are 4 * D * d matrix entries (d = heads * head dim) plus a norm of D
    b, p = count_parameters(Bridge(dim, heads, hd)), count_parameters(PMatch(dim, heads, hd))
    assert b == p == 4 * dim * heads * hd + dim


@given(seed=st.integers(0, 2**16), W=st.integers(2, 5))
def test_pmatch_has_no_interaction_between_rows(tiny_dir, seed, W):
    model, _ = load_model(str(tiny_dir), dtype=torch.float64)
    add_random_bridge(model, seed, kind="pmatch")
    x, alive = tokens_alive(seed, W, 6)
    x2 = x.clone()
    x2[0] = (x[0] + 1) % 259
    a, b = logits(model, x, W, alive), logits(model, x2, W, alive)
    assert torch.equal(a[1:], b[1:]) and not torch.equal(a[0], b[0])


# --- size, checkpoints ---------------------------------------------------------------------

def test_default_model_with_4_heads_x_16_adds_between_2_8_and_5_1_percent():
    config = Config(model_type="llama", vocab_size=49152, hidden_size=576, intermediate_size=1536,
                    num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                    tie_word_embeddings=True, rms_norm_eps=1e-5)
    model = Transformer(config)
    model.tie_weights()
    base = count_parameters(model)
    model.add_bridge("bridge", n_heads=4, head_dim=16, verbose=False)
    fraction = sum(p.numel() for p in model.bridge_parameters()) / base
    assert 134_000_000 < base < 135_000_000 and 0.028 <= fraction <= 0.051


@pytest.mark.parametrize("cls", [Bridge, PMatch])
def test_a_block_built_directly_contributes_exactly_nothing(cls):
    """The constructor zero-initialises the output projection: no add_bridge needed for a no-op block."""
    x, alive = random_inputs(0, 2, 3, 4)
    block = cls(16, 2, 4).double()
    assert torch.equal(block(x, 3, alive), torch.zeros_like(x))
    assert any(p.abs().max() > 0 for p in block.parameters())  # the rest is random (W_O gets gradient)


def test_bridge_py_stands_alone_without_model_py():
    code = "import sys, bridge; assert 'model' not in sys.modules, 'bridge.py imported model.py'"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
