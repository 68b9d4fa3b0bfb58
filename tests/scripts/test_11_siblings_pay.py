"""Crediting the set and measuring what the siblings add.

- several sets per prompt (train_grpo.py --sets M): the advantage's baseline is every answer of the
  prompt, so a set that coordinated earns a positive advantage; one set is the old algorithm;
- the set credits (metrics.set_credit): team and difference rewards;
- the sibling paths (bridge.sibling_mask path=...): self-only and crossed masks change only whom a
  row reads, with the same random numbers per row.
"""
import itertools
import json
import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, strategies as st

import evaluate
import train_grpo
from bridgekit import eval_args, training
from bridge import sibling_mask
from bridgekit.checks import check_sample_call
from bridgekit.metrics import distinct_scores, set_credit
from model import load_model
from sample import sample
from tiny import SMALL, add_random_bridge, even_length_group_reward, make_training_model

TOL = 1e-9  # model-level tolerance (fp64), as in tests/spec/test_1_bridge.py


# --- set credit --------------------------------------------------------------------------------

choices_st = st.lists(st.one_of(st.none(), st.integers(1, 4)), min_size=1, max_size=6)


@given(choices=choices_st)
def test_difference_credit_is_what_the_set_loses_without_the_answer(choices):
    U = sum(distinct_scores(choices))
    diff = set_credit(choices, "difference")
    for i, d in enumerate(diff):
        assert d == U - sum(distinct_scores(choices[:i] + choices[i + 1:]))
        c = choices[i]
        others = choices[:i] + choices[i + 1:]
        expected = 0 if c is None else 1 if c not in others else -1 if others.count(c) == 1 else 0
        assert d == expected
    assert set_credit(choices, "team") == [U / len(choices)] * len(choices)
    assert set_credit(choices, "answer") == [float(s) for s in distinct_scores(choices)]


def test_an_all_distinct_set_among_mixed_sets_of_its_prompt_gets_a_positive_advantage():
    W = 4
    sets = [[1, 2, 3, 4], [1, 1, 3, None], [2, 2, 2, 5]]   # one prompt, M = 3 sets
    for credit in ("answer", "team", "difference"):
        rewards = torch.tensor([r for s in sets for r in set_credit(s, credit)])
        one_set = train_grpo.group_advantages(rewards, W)            # the old baseline: the set itself
        across = train_grpo.group_advantages(rewards, len(sets) * W)   # the baseline of --sets 3
        assert (one_set[:W] == 0).all()       # alone, a set whose answers all score earns nothing
        assert (across[:W] > 0).all()         # against the prompt's other sets it earns a positive advantage
        assert across[W:].sum() < 0


# --- several sets per prompt in GRPO ------------------------------------------------------------

@pytest.fixture()
def tiny(tmp_path, monkeypatch):
    monkeypatch.setattr(train_grpo, "group_reward", even_length_group_reward)
    return make_training_model(tmp_path / "model", seed=3)


def grpo_args(tiny, out, *extra):
    return train_grpo.parse_args(["--model", str(tiny), "--out", str(out), "--prompts-per-step", "2",
                                  "--width", "3", "--lr", "1e-3", "--lr-new", "1e-2", *SMALL, *extra])


def test_each_set_of_a_prompt_is_its_own_bridge_group_with_its_own_randomness(tiny, tmp_path):
    args = grpo_args(tiny, tmp_path / "r", "--sets", "2")
    model, tokenizer, *_ = train_grpo.setup(args)
    add_random_bridge(model, seed=3)
    batch = train_grpo.step_problems(training.training_pool(args), 0, 2, args.seed)
    r, rewards, scores, _ = train_grpo.sample_sets(model, tokenizer, batch, args)
    assert r.tokens.shape[0] == 2 * 2 * 3 and r.width == 3 and rewards.shape == (12,)
    # set 0 of each prompt is what --sets 1 samples (the same seed), set 1 is new randomness
    one = grpo_args(tiny, tmp_path / "one")
    r1, *_ = train_grpo.sample_sets(model, tokenizer, batch, one)
    assert torch.equal(r.tokens[0:3], r1.tokens[0:3]) and torch.equal(r.tokens[6:9], r1.tokens[3:6])
    assert not torch.equal(r.tokens[0:3], r.tokens[3:6])


def test_a_step_of_several_sets_is_the_same_update_whatever_the_micro_batches(tiny, tmp_path):
    """Sets in one micro-batch, or one set per micro-batch: the same gradient, so the same step (to
    1e-5: the micro-batches sum the gradients in another order, and AdamW divides an element's
    gradient by its own size, so a near-cancelling one turns rounding into a step difference; a
    step moves an element by about lr, 1e-3 or more here)."""
    results = []
    for micro in ("1", "2", "4"):
        args = grpo_args(tiny, tmp_path / f"m{micro}", "--sets", "2", "--micro-groups", micro)
        model, tokenizer, optimizer, ref, _ = train_grpo.setup(args)
        add_random_bridge(model, seed=3)
        optimizer = training.make_optimizer(model, args.train, args.lr, args.lr_new)
        batch = train_grpo.step_problems(training.training_pool(args), 0, 2, args.seed)
        r, rewards, _, _ = train_grpo.sample_sets(model, tokenizer, batch, args)
        adv = train_grpo.group_advantages(rewards, args.sets * args.width)
        assert adv.ne(0).any()
        stats = train_grpo.update(model, optimizer, r, adv, args)
        results.append(([p.detach().clone() for p in model.parameters()], stats["loss"]))
    for params, loss in results[1:]:
        assert loss == pytest.approx(results[0][1], rel=1e-6)
        for a, b in zip(params, results[0][0]):
            assert (a - b).abs().max() < 1e-5


def test_the_advantage_baseline_spans_every_set_of_the_prompt(tiny, tmp_path, monkeypatch):
    seen = []
    real = train_grpo.group_advantages
    monkeypatch.setattr(train_grpo, "group_advantages", lambda r, w, **kw: seen.append(w) or real(r, w, **kw))
    train_grpo.main([str(x) for x in ["--model", tiny, "--out", tmp_path / "run", "--prompts-per-step", "2",
                                      "--width", "3", "--sets", "2", "--steps", "1", *SMALL]])
    assert seen == [6]
    record = json.loads((tmp_path / "run" / "log.jsonl").read_text())
    assert len(record["prompts"]) == 2


@pytest.mark.parametrize("argv, message", [
    (["--sets", "0"], "--sets must be >= 1"),
    (["--task", "distinct", "--width", "1"], "nothing to coordinate"),
    (["--credit", "team", "--task", "add1"], "scores answer by answer"),
    (["--credit", "team", "--task", "distinct"], "every advantage is 0"),
])
def test_bad_set_flags_are_one_line_and_exit_2_before_any_model_loads(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        train_grpo.parse_args(["--out", "x", *argv])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


# --- the sibling paths ---------------------------------------------------------------------------

def test_the_self_path_is_what_width_one_computes_row_by_row(bridged):
    model, _ = bridged
    W, T = 4, 7
    g = torch.Generator().manual_seed(5)
    x = torch.randint(3, 259, (2 * W, T), generator=g)
    alive = torch.ones(2 * W, T, dtype=torch.bool)
    with torch.no_grad():
        own = model(x, width=W, alive=alive, path="self")
        alone = model(x, width=1, alive=alive)
        with_siblings = model(x, width=W, alive=alive)
    assert (own - alone).abs().max() < TOL
    assert (own - with_siblings).abs().max() > 1e-3


def test_the_crossed_path_reads_the_other_set_and_never_its_own(bridged):
    """Rows 0..W-1 (set A) read rows W..2W-1 (set B), which read only themselves: a change in one
    row of A reaches no other row of A, even through B; a change in B reaches A."""
    model, _ = bridged
    W, T, t = 3, 7, 2
    g = torch.Generator().manual_seed(6)
    x = torch.randint(3, 259, (2 * W, T), generator=g)
    alive = torch.ones(2 * W, T, dtype=torch.bool)

    def changed(row):
        x2 = x.clone()
        x2[row, t] = (x[row, t] + 1) % 259
        with torch.no_grad():
            return (model(x, width=W, alive=alive, path="crossed") - model(x2, width=W, alive=alive, path="crossed")).abs()
    a_changed = changed(1)
    assert a_changed[[0, 2]].max() == 0                # A's other rows: nothing
    assert a_changed[W:].max() == 0                    # B reads only itself
    b_changed = changed(W)
    assert b_changed[:W, t:].max() > 1e-3              # A reads B
    assert b_changed[W + 1:].max() == 0                # B's other rows read only themselves


@given(seed=st.integers(0, 2**16), W=st.integers(1, 4), T=st.integers(1, 4))
def test_the_path_masks_always_let_a_row_see_itself_and_never_another_prompt(seed, W, T):
    alive = torch.rand(4 * W, T, generator=torch.Generator().manual_seed(seed)) < 0.6
    for path in ("siblings", "self", "crossed"):
        m = sibling_mask(alive, W, path=path)
        assert m.diagonal(dim1=-2, dim2=-1).all()
    assert sibling_mask(alive, W, path="self").sum() == 4 * W * T
    crossed = sibling_mask(alive, W, path="crossed").view(2, T, 2 * W, 2 * W)
    assert not crossed[:, :, W:, :W].any()            # B never reads A
    for i, j in itertools.product(range(W), repeat=2):
        assert bool(crossed[:, :, i, j].any()) == (i == j)   # A never reads its own siblings


def test_the_paths_draw_the_same_random_numbers_per_row(tiny_dir):
    """With zero-initialised blocks the paths compute the same thing, so the tokens must be
    identical: the only source of difference between paths is what the rows read."""
    zero, _ = load_model(str(tiny_dir), dtype=torch.float64)
    zero.add_bridge("bridge", n_heads=2, head_dim=8, verbose=False)
    prompts = [[5, 9, 11, 13], [7, 8]]
    outs = []
    for path in ("siblings", "self", "crossed"):
        gens = [torch.Generator().manual_seed(100 + k) for k in range(4)]
        outs.append(sample(zero, prompts, list(range(40, 100)), width=3, max_new_tokens=6, generator=gens,
                           groups_per_prompt=2, path=path))
    assert outs[0].alive[:, outs[0].prompt_len:].sum(1).min() < 6   # some rows ended early (rows left the batch)
    for r in outs[1:]:
        assert torch.equal(outs[0].tokens, r.tokens)


def test_evaluate_scores_the_crossed_path_on_the_sets_that_read_another(tmp_path):
    tiny_dir = make_training_model(tmp_path / "model", seed=4)  # a context long enough for the task's prompt
    model, _ = load_model(str(tiny_dir))
    add_random_bridge(model, seed=2)
    from bridgekit.checkpoint import save_bridge
    save_bridge(model, tmp_path / "b.safetensors")
    result = evaluate.main(["--model", str(tiny_dir), "--bridge", str(tmp_path / "b.safetensors"), "--task", "distinct",
                            "--shots", "0", "--problems", "2", "--n", "8", "--widths", "1", "2", "4",
                            "--max-new-tokens", "4", "--paths", "siblings", "self", "crossed",
                            "--out", str(tmp_path / "e.json")])
    runs = [(r["width"], r.get("path", "siblings"), r["n"], r["groups"]) for r in result["results"]]
    assert runs == [(1, "siblings", 8, 8), (2, "siblings", 8, 4), (2, "self", 8, 4), (2, "crossed", 4, 2),
                    (4, "siblings", 8, 2), (4, "self", 8, 2), (4, "crossed", 4, 1)]
    assert all(len(p["choices"]) == r["n"] for r in result["results"] for p in r["per_problem"])
    assert result["protocol"]["paths"] == ["siblings", "self", "crossed"]


def test_crossed_sampling_needs_pairs_of_groups(bridged):
    model, _ = bridged
    with pytest.raises(ValueError, match="even"):  # the commands' check before sample()
        check_sample_call(model, [[5, 6]], width=2, max_new_tokens=2, groups_per_prompt=3, path="crossed")


def test_evaluate_refuses_other_paths_without_bridge_blocks_and_odd_pairs(tiny_dir, tmp_path):
    def check(*argv):
        eval_args.check_args(evaluate.parse_args(["--model", str(tiny_dir), "--task", "distinct", "--problems", "2",
                                                  "--out", str(tmp_path / "x.json"), *argv]))
    with pytest.raises(ValueError, match="needs a model with Bridge blocks"):
        check("--n", "8", "--widths", "1", "4", "--paths", "siblings", "self")
    with pytest.raises(ValueError, match="n/width must be even"):
        check("--n", "4", "--widths", "4", "--paths", "crossed")
    with pytest.raises(ValueError, match="each path once"):
        check("--n", "8", "--paths", "self", "self")


# the one-set log as tests/grpo_golden.py wrote it at c89efaf (before --sets existed), on a 2-core AMD EPYC
GOLDEN = "grpo_one_set_log.json"
FLOATS = ("loss", "grad_norm", "ratio_max", "kl", "clip")
# Tolerance for the floats: fp32 sums whose order depends on the CPU's vector width and thread count.
# Measured between three 2-core machines (two AMD EPYC, an Intel Xeon) running this same log: up to
# 4.5e-7 absolute in the loss (a mean of terms that cancel to ~0.03, so 1.4e-5 relative), 3.8e-6 in
# the grad norm (~7, 5e-7 relative), 9.5e-7 in ratio_max (~3e-6, one fp32 ulp of the ratio near 1).
# A float passes within 1e-4 relative or 1e-5 absolute, whichever is looser: at least 10x those
# differences, while a real change of the algorithm (another log-prob path, a sign, a missed term)
# moves the loss or the grad norm by far more; the tokens, counts and rewards, compared exactly,
# catch any change in what was sampled.
REL, ABS = 1e-4, 1e-5


def assert_same_run(a_log, b_log, what):
    """The same tokens sampled and scored (every count, reward and prompt equal); the floats equal
    within REL relative or ABS absolute, whichever is looser."""
    assert len(a_log) == len(b_log) == 3, what
    for a, b in zip(a_log, b_log):
        assert a.keys() == b.keys(), what
        for k in a:
            if k in FLOATS:
                assert math.isclose(a[k], b[k], rel_tol=REL, abs_tol=ABS), (what, a["step"], k, a[k], b[k])
            else:
                assert a[k] == b[k], (what, a["step"], k)


def test_one_set_gives_the_log_it_gave_before_sets_existed(tmp_path):
    """--sets 1 (the default) is the one-set algorithm: rerun tests/grpo_golden.py and compare with
    the log the code before --sets wrote (assert_same_run: exact but for fp32 rounding, on any CPU)."""
    import grpo_golden
    now = grpo_golden.run(tmp_path)
    assert_same_run(now, json.loads((Path(__file__).parent.parent / "data" / GOLDEN).read_text()), GOLDEN)


# --- what the siblings add, from the stored choices ---------------------------------------------

def test_collisions_count_equal_valid_pairs_within_and_across_sets():
    from bridgekit.metrics import collision_rate, collisions
    choices = [1, 2, 1, None, 1, 3]            # sets of 2: (1, 2) (1, None) (1, 3)
    within, across = collisions(choices, 2)
    assert within == (0, 2)                    # (1,2) and (1,3); the pair with None is left out
    assert across == (3, 8)                    # the three 1s in different sets, of 8 valid cross pairs
    assert collision_rate([{"choices": choices}, {"choices": [4, 4, 5, 6, 7, 8]}], 2) == (1 / 5, 3 / 20)
    assert collision_rate([{"choices": [None, 1]}], 2) == (None, None)


def test_paired_set_difference_pairs_sets_in_order_and_only_those_asked():
    from bridgekit.metrics import paired_set_difference
    a = [{"choices": [1, 2, 3, 3]}, {"choices": [1, 1, 2, 3]}]   # sets of 2: scores 1, 0 | 0, 1
    b = [{"choices": [1, 1, 1, 2]}, {"choices": [1, 2, 2, 2]}]   # scores 0, 1 | 1, 0
    d = paired_set_difference(a, b, 2)
    assert d["mean"] == 0.0
    first = paired_set_difference(a, [{"choices": [1, 1]}, {"choices": [4, 5]}], 2, groups=[0])
    assert first["mean"] == pytest.approx(((1 - 0) + (0 - 1)) / 2)
    with pytest.raises(ValueError, match="cannot be paired"):
        paired_set_difference(a, b, 2, groups=[0])


def test_the_paired_difference_of_an_answer_task_is_the_accuracy_difference_per_set():
    from bridgekit.metrics import collision_rate, paired_set_difference
    a = [{"gold": 5, "answers": [5, 5, 4, None]}]
    b = [{"gold": 5, "answers": [5, 3, 5, 5]}]
    assert paired_set_difference(a, b, 2)["mean"] == pytest.approx((2 - 1 + 0 - 2) / 4)
    assert collision_rate(a, 2) == (1.0, 0.0)
