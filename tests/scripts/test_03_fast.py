"""fast.py's sampling: every speed-up gives sample.sample's Rollout, alone and all together, on a
tiny model with random non-zero Bridge blocks, ragged prompts (left padding), rows ending at
different steps, one generator or one per group, several groups per prompt, and every path."""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from bridgekit import fast
import sample as naive
from model import KVCache, load_model
from tiny import add_random_bridge, make_tiny_model

EOS = list(range(3, 40))  # many EOS ids: rows and groups finish at very different steps
SPEED_UPS = {"packed": dict(packed=True), "drop_rows": dict(drop_rows=True), "all": dict(packed=True, drop_rows=True)}
OFF = dict(packed=False, drop_rows=False)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    path, _ = make_tiny_model(tmp_path_factory.mktemp("llama"), "llama", seed=3)
    return path


@pytest.fixture(scope="module", params=["fp32", "fp64"])
def bridged(tiny_dir, request):
    """The tiny model with random, non-zero Bridge blocks (so the rows of a group really interact)."""
    dtype = dict(fp32=torch.float32, fp64=torch.float64)[request.param]
    return add_random_bridge(load_model(str(tiny_dir), dtype=dtype)[0], seed=2)


def prompts_ids(seed, lengths):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(3, 259, (n,), generator=g).tolist() for n in lengths]


def group_generators(seed, n):
    return [torch.Generator().manual_seed(seed * 1000 + i) for i in range(n)]


def both(model, generators, fast_kw, prompts=None, **kw):
    """(sample.sample's Rollout, fast.sample's) for the same call; generators() gives fresh ones."""
    prompts = prompts or prompts_ids(11, [3, 6, 2])
    kw = dict(width=3, max_new_tokens=10, groups_per_prompt=2) | kw
    return (naive.sample(model, prompts, EOS, generator=generators(), **kw),
            fast.sample(model, prompts, EOS, generator=generators(), **kw, **fast_kw))


def assert_same(a, b, exact):
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.alive, b.alive)
    assert (a.alive[:, a.prompt_len:].sum(1) < a.tokens.shape[1] - a.prompt_len).any()  # some rows ended early
    if exact:
        assert torch.equal(a.logprobs, b.logprobs)
    else:
        assert torch.allclose(a.logprobs, b.logprobs, atol=1e-4 if a.logprobs.dtype == torch.float32 else 1e-12)


@pytest.mark.parametrize("gens", ["one", "per_group"])
def test_with_every_speed_up_off_it_is_the_naive_sampler_exactly(bridged, gens):
    generators = (lambda: torch.Generator().manual_seed(5)) if gens == "one" else (lambda: group_generators(5, 6))
    a, b = both(bridged, generators, OFF)
    assert_same(a, b, exact=True)


@pytest.mark.parametrize("name", SPEED_UPS)
@pytest.mark.parametrize("gens", ["one", "per_group"])
def test_each_speed_up_alone_and_all_together_give_the_naive_rollout(bridged, name, gens):
    """Tokens and alive exactly; log-probs exactly where the products are the same ones (packing is
    fp32 only), else to float rounding (the packed products; a forward over fewer rows)."""
    generators = (lambda: torch.Generator().manual_seed(9)) if gens == "one" else (lambda: group_generators(9, 6))
    a, b = both(bridged, generators, OFF | SPEED_UPS[name])
    fp64 = bridged.lm_head.weight.dtype == torch.float64
    assert_same(a, b, exact=name == "packed" and fp64)


@pytest.mark.parametrize("path", ["self", "crossed"])
def test_the_other_paths_give_the_naive_rollout(bridged, path):
    a, b = both(bridged, lambda: group_generators(4, 6), {}, path=path)
    assert_same(a, b, exact=False)


def test_keep_logits_and_greedy_give_the_naive_rollout(bridged):
    a, b = both(bridged, lambda: group_generators(6, 6), {}, keep_logits=True)
    assert_same(a, b, exact=False)
    assert torch.allclose(a.logits, b.logits, atol=1e-4)
    a, b = both(bridged, lambda: group_generators(6, 6), {}, temperature=0, max_new_tokens=6)
    assert torch.equal(a.tokens, b.tokens) and torch.allclose(a.logprobs, b.logprobs, atol=1e-4)


def test_bad_input_is_refused_before_either_sampler_runs(bridged):
    from bridgekit.checks import check_sample_call
    with pytest.raises(ValueError, match="one each"):  # the commands' check, the same for both samplers
        check_sample_call(bridged, [[5, 6]], width=2, max_new_tokens=4, groups_per_prompt=3,
                          generator=group_generators(0, 1))


# --- packed weights ------------------------------------------------------------------------------

needs_packing = pytest.mark.skipif(not fast.packs(torch.float32), reason="this PyTorch build has no oneDNN packed linear")


def linear_state(model):
    """What a block must leave as it was: every Linear's own attributes and every parameter."""
    return ({name: sorted(m.__dict__) for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)},
            {k: v.clone() for k, v in model.state_dict().items()})


@needs_packing
@given(seed=st.integers(0, 2**16), rows=st.integers(1, 70), d_in=st.integers(1, 40), d_out=st.integers(1, 40),
       bias=st.booleans(), bf16=st.booleans())
def test_a_packed_product_equals_f_linear(seed, rows, d_in, d_out, bias, bf16):
    """For any number of rows (a decode step has few, a prefill many), with or without a bias, in
    fp32 and (where this CPU packs it) bf16: F.linear's product to float rounding."""
    dtype = torch.bfloat16 if bf16 else torch.float32
    g = torch.Generator().manual_seed(seed)
    lin = torch.nn.Linear(d_in, d_out, bias=bias).to(dtype)
    with torch.no_grad():
        for p in lin.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
        x = torch.randn(2, rows, d_in, generator=g).to(dtype).transpose(0, 1)  # not contiguous
        ref = F.linear(x, lin.weight, lin.bias)
        with fast.packed_linears(lin):
            assert ("forward" in lin.__dict__) == fast.packs(dtype)   # bf16 needs AVX-512 or AVX-NE-CONVERT
            y = lin(x)
    assert "forward" not in lin.__dict__
    assert y.shape == ref.shape == (rows, 2, d_out) and y.dtype == dtype
    tol = dict(rtol=2e-2, atol=2e-2 * d_in ** 0.5) if bf16 else dict(rtol=1e-5, atol=1e-5)
    assert torch.allclose(y.float(), ref.float(), **tol)


@needs_packing
def test_every_linear_is_packed_once_per_block_and_the_model_is_left_as_it_was(tiny_dir):
    model = add_random_bridge(load_model(str(tiny_dir))[0], seed=1)
    before = linear_state(model)
    made, real = [], torch.ops.mkldnn._reorder_linear_weight
    with pytest.MonkeyPatch.context() as mp:  # count the packs the sampler makes
        mp.setattr(torch.ops.mkldnn, "_reorder_linear_weight", lambda w: made.append(w) or real(w))
        fast.sample(model, prompts_ids(1, [3, 5]), EOS, width=2, max_new_tokens=6, generator=group_generators(1, 2))
        with fast.packed_linears(model):        # a block around calls: the calls' own blocks pack nothing
            fast.sample(model, prompts_ids(1, [3, 5]), EOS, width=2, max_new_tokens=6)
            fast.sample(model, prompts_ids(2, [4]), EOS, width=2, max_new_tokens=6)
    n_linear = sum(isinstance(m, torch.nn.Linear) for m in model.modules())
    assert len(made) == 2 * n_linear
    after = linear_state(model)
    assert after[0] == before[0] and all(torch.equal(after[1][k], v) for k, v in before[1].items())


@needs_packing
@pytest.mark.parametrize("kernel", ["fused", "foreach"])
def test_packs_never_outlive_a_weight_change(kernel):
    """Packs live inside one block, so a block after an optimizer step multiplies by the new weights
    (the fused AdamW kernel changes a weight in place without bumping its version counter). Inside a
    block, a weight replaced by another tensor (`.data =`) is packed again; with gradients on (a
    training step inside a block) the product is F.linear's."""
    g = torch.Generator().manual_seed(0)
    lin, x = torch.nn.Linear(6, 5), torch.randn(3, 6, generator=g)

    def packed():
        with torch.no_grad(), fast.packed_linears(lin):
            return lin(x)
    assert torch.allclose(packed(), F.linear(x, lin.weight, lin.bias), atol=1e-6)
    opt = torch.optim.AdamW(lin.parameters(), lr=0.1, **{kernel: True})
    with fast.packed_linears(lin):
        y = lin(x)
        assert y.grad_fn is not None and torch.equal(y, F.linear(x, lin.weight, lin.bias))
        y.sum().backward()
    opt.step()
    with torch.no_grad():
        assert torch.allclose(packed(), F.linear(x, lin.weight, lin.bias), atol=1e-6)
        with fast.packed_linears(lin):
            lin(x)
            lin.weight.data = torch.randn(5, 6, generator=g)
            assert torch.allclose(lin(x), F.linear(x, lin.weight, lin.bias), atol=1e-6)


def test_autocast_other_dtypes_and_a_dtype_the_cpu_cannot_pack_keep_f_linear(monkeypatch):
    lin, x = torch.nn.Linear(8, 4), torch.randn(3, 8)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        ref = lin(x)
        with fast.packed_linears(lin):
            assert torch.equal(lin(x), ref)
    double = torch.nn.Linear(8, 4).double()
    with torch.no_grad(), fast.packed_linears(double):
        assert "forward" not in double.__dict__                # fp64 does not pack
    monkeypatch.setattr(fast, "packs", lambda dtype: False)    # as bf16 on an AVX2-only CPU
    half = torch.nn.Linear(8, 4).to(torch.bfloat16)
    with torch.no_grad(), fast.packed_linears(half):
        assert "forward" not in half.__dict__
        assert torch.equal(half(x.bfloat16()), F.linear(x.bfloat16(), half.weight, half.bias))


# --- finished rows leave the batch -------------------------------------------------------------------

@pytest.fixture(scope="module")
def bridged64(tiny_dir):
    return add_random_bridge(load_model(str(tiny_dir), dtype=torch.float64)[0], seed=2)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16), width=st.integers(1, 3), groups=st.integers(1, 3),
       lengths=st.lists(st.integers(1, 8), min_size=1, max_size=3), one=st.booleans())
def test_dropping_finished_rows_changes_no_token(bridged64, seed, width, groups, lengths, one):
    """Rows leaving (one generator or one per group) give the naive sampler's tokens."""
    prompts, n = prompts_ids(seed, lengths), len(lengths) * groups
    generators = (lambda: torch.Generator().manual_seed(seed)) if one else (lambda: group_generators(seed, n))
    a, b = both(bridged64, generators, OFF | dict(drop_rows=True), prompts=prompts, width=width,
                max_new_tokens=12, groups_per_prompt=groups)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.alive, b.alive)
    assert torch.allclose(a.logprobs, b.logprobs, atol=1e-12)


def test_finished_rows_leave_their_groups_and_no_token_changes(bridged64, monkeypatch):
    """Rows ending at different steps: later steps run narrower groups (padded to the fullest), and
    the tokens and log-probs are those of the full batch."""
    eos = list(range(3, 60))
    prompts = prompts_ids(7, [3, 5, 2])
    widths_run = []
    forward = type(bridged64).forward
    monkeypatch.setattr(type(bridged64), "forward",
                        lambda self, tokens, width=1, alive=None, cache=None, **kw:
                        widths_run.append((tokens.shape[0], width)) or forward(self, tokens, width, alive, cache, **kw))
    a = naive.sample(bridged64, prompts, eos, width=4, max_new_tokens=16, generator=group_generators(7, 3))
    assert all(w == 4 for _, w in widths_run)
    b = fast.sample(bridged64, prompts, eos, width=4, max_new_tokens=16, generator=group_generators(7, 3))
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.alive, b.alive)
    live = a.alive[:, a.prompt_len:]
    assert torch.allclose(a.logprobs, b.logprobs, atol=1e-12)
    narrower = [(n, w) for n, w in widths_run if w < 4 and n > 1]
    assert narrower, "no step ran a narrower group"
    assert live.sum(1).min() < live.sum(1).max()            # the rows did end at different steps


def test_which_rows_leave_and_how_groups_are_padded(tiny_dir):
    """Group 0: rows 1 and 2 dead; group 1: row 5 just ended (its EOS is still a key), 6 and 7 dead.
    Rows leave (padding copies a kept row, dead)."""
    model = load_model(str(tiny_dir))[0]
    cache = KVCache(model.config, 12, 4)
    cache.n_real = torch.arange(12)                            # tells the rows apart
    batch = fast.Batch(rows=torch.arange(12), real=torch.ones(12, dtype=torch.bool), slots=4, cache=cache)
    is_alive = torch.tensor([1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0], dtype=torch.bool)
    finished = torch.tensor([0, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1], dtype=torch.bool)
    out = fast.drop_finished_rows(batch, is_alive, finished, 4)
    assert out.slots == 2 and out.rows.tolist() == [0, 3, 4, 5] and out.real.all()
    assert out.cache.n_real.tolist() == [0, 3, 4, 5]          # each slot's cache is its row's
    is_alive[3] = False                                        # group 0 keeps one row: padded
    out = fast.drop_finished_rows(batch, is_alive, finished, 4)
    assert out.rows.tolist() == [0, 0, 4, 5] and out.real.tolist() == [True, False, True, True]
    # nothing to gain (every row still writing): the batch as it was
    assert fast.drop_finished_rows(batch, torch.ones(12, dtype=torch.bool), torch.zeros(12, dtype=torch.bool), 4) is batch
    assert fast.group_slots([[3], [], [5, 6, 7]]) == ([3, 3, 3, 5, 6, 7], [True, False, False, True, True, True], 3)


# --- a speed-up that did not pay is gone, its flag with it; the speed-ups are one flag, --fast -----------

@pytest.mark.parametrize("command", ["evaluate", "sample", "train_sft", "train_grpo"])
def test_the_removed_compile_flag_is_gone_and_fast_is_every_commands_one_flag(command, capsys):
    from bridgekit import cli
    import evaluate
    import train_grpo
    import train_sft
    parse = dict(evaluate=evaluate.parse_args, train_sft=train_sft.parse_args, train_grpo=train_grpo.parse_args,
                 sample=lambda argv: cli.add_sample_arguments(cli.Parser(prog="sample.py")).parse_args(argv))[command]
    must = ["--out", "o"] if command.startswith("train") else []
    with pytest.raises(SystemExit) as e:
        parse(must + ["--compile"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "unrecognized arguments: --compile" in err[0]
    assert "compile" not in vars(parse(must)) and not parse(must).fast and parse(must + ["--fast"]).fast

