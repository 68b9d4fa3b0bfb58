"""fast.py's training part: the answers in pieces give training.answer_logprobs's log-probs and
gradients, on a tiny fp64 model with random Bridge blocks, ragged prompts and ragged EOS; the plan
of the pieces computes every needed (row, column) exactly once; and the scripts run it unless
--reference."""
import json

import pytest
import torch
from hypothesis import given, settings, strategies as st

import fast
import parallel
import train_grpo
import training
from model import load_model
from tiny import SMALL, add_random_bridge, even_length_group_reward, make_training_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_training_model(tmp_path_factory.mktemp("tiny"), seed=5)


@pytest.fixture(scope="module")
def bridged64(tiny):
    """The tiny model in fp64 with random, non-zero Bridge blocks."""
    model, _ = load_model(str(tiny), dtype=torch.float64)
    return add_random_bridge(model)


def ragged_batch(seed, width, groups, S):
    """prompt (B, P) left-padded to ragged lengths, answers (N, S) alive up to ragged ends (some
    rows cut at S, some with no answer at all)."""
    g = torch.Generator().manual_seed(seed)
    P = 6
    prompt = torch.randint(3, 259, (groups, P), generator=g)
    starts = torch.randint(0, P, (groups,), generator=g)
    prompt_alive = torch.arange(P)[None, :] >= starts[:, None]                          # left padding
    answer = torch.randint(3, 259, (groups * width, S), generator=g)
    ends = torch.randint(0, S + 1, (groups * width,), generator=g)
    answer_alive = torch.arange(S)[None, :] < ends[:, None]                             # ragged EOS
    return prompt, prompt_alive, answer, answer_alive


def logprobs_and_gradients(forward, model, prompt, prompt_alive, answer, answer_alive, width):
    model.zero_grad(set_to_none=True)
    logp = forward(model, prompt, prompt_alive, answer, answer_alive, width, temperature=0.8)
    (logp * torch.linspace(0.5, 1.5, logp.shape[1], dtype=logp.dtype)).sum().backward()
    return logp.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16), width=st.integers(1, 4), groups=st.integers(1, 3), S=st.integers(1, 12))
def test_answers_in_pieces_give_the_reference_logprobs_and_gradients(bridged64, seed, width, groups, S):
    model = bridged64
    batch = ragged_batch(seed, width, groups, S)
    lp_fast, g_fast = logprobs_and_gradients(fast.answer_logprobs, model, *batch, width)
    lp_ref, g_ref = logprobs_and_gradients(training.answer_logprobs, model, *batch, width)
    assert (lp_fast - lp_ref).abs().max() < 1e-12 and (lp_fast[~batch[3]] == 0).all()
    assert g_fast.keys() == g_ref.keys() and g_fast
    for name in g_ref:  # every parameter, the blocks included
        assert (g_fast[name] - g_ref[name]).abs().max() <= 1e-11 * (1 + g_ref[name].abs().max()), name


def test_rows_ending_far_apart_run_in_pieces_with_the_reference_numbers(bridged64, monkeypatch):
    """Rows ending at very different columns, cut with no overhead (so every cut is taken): several
    pieces, and the log-probs and gradients of the reference."""
    plans = []
    plan = fast.plan_pieces
    monkeypatch.setattr(fast, "plan_pieces", lambda alive, width: plans.append(plan(alive, width, 0)) or plans[-1])
    g = torch.Generator().manual_seed(3)
    width, lengths, S = 3, [1, 12, 5, 0, 7, 7, 2, 3, 12], 12            # a row with no answer at all
    prompt = torch.randint(3, 259, (3, 6), generator=g)
    prompt_alive = torch.ones(3, 6, dtype=torch.bool)
    prompt_alive[1, :2] = False                                           # left padding
    answer = torch.randint(3, 259, (len(lengths), S), generator=g)
    answer_alive = torch.arange(S)[None, :] < torch.tensor(lengths)[:, None]
    batch = (prompt, prompt_alive, answer, answer_alive, width)
    lp_fast, g_fast = logprobs_and_gradients(fast.answer_logprobs, bridged64, *batch)
    lp_ref, g_ref = logprobs_and_gradients(training.answer_logprobs, bridged64, *batch)
    assert len(plans) == 1 and len(plans[0]) >= 3                         # the answers did run in pieces
    assert (lp_fast - lp_ref).abs().max() < 1e-12
    for name in g_ref:
        assert (g_fast[name] - g_ref[name]).abs().max() <= 1e-11 * (1 + g_ref[name].abs().max()), name


@settings(max_examples=30)
@given(seed=st.integers(0, 2**16), width=st.integers(1, 4), groups=st.integers(1, 3), T=st.integers(1, 12),
       overhead=st.sampled_from([0, 4, 32]))
def test_the_plan_computes_every_needed_row_and_column_once_in_whole_groups(seed, width, groups, T, overhead):
    g = torch.Generator().manual_seed(seed)
    N = groups * width
    ends = torch.randint(0, T + 1, (N,), generator=g)
    alive = torch.arange(T)[None, :] < ends[:, None]                     # (N, T), alive up to its end
    pieces = fast.plan_pieces(alive, width, overhead=overhead)
    covered = torch.zeros(N, T, dtype=torch.long)
    previous = 0
    for start, end, w, rows, real in pieces:
        assert start == previous and start < end <= T and len(rows) == len(real) and len(rows) % w == 0
        previous = end
        for k in range(len(rows) // w):                                    # w slots per kept group
            slot_rows, slot_real = rows[k * w:(k + 1) * w], real[k * w:(k + 1) * w]
            assert len(set((slot_rows // width).tolist())) == 1 and slot_real.any()
            assert len(set(slot_rows[slot_real].tolist())) == int(slot_real.sum())  # no row twice
        assert (ends[rows[real]] > start).all()   # a piece holds only rows still needed when it starts
        covered[rows[real], start:end] += 1
    need = torch.arange(T)[None, :] < ends[:, None]
    assert covered.max() <= 1 and (covered[need] == 1).all()   # every needed column exactly once
    cost = sum(len(rows) * (end - start) + overhead for start, end, _, rows, _ in pieces)
    assert cost <= N * T + overhead or not bool(need.any())  # never worse than one piece of every row


def test_group_slots_give_every_kept_group_as_many_slots_as_the_largest():
    rows, real, w = fast.group_slots([[0, 1], [], [6]])
    assert (rows, real, w) == ([0, 1, 6, 6], [True, True, True, False], 2)
    assert fast.group_slots([[], []]) == ([], [], 0)


def test_a_sharded_model_runs_the_reference_every_row_to_the_end(bridged64, monkeypatch):
    """Under --shard every process must make the same passes (FSDP2 gathers weights for each), and
    the pieces depend on the answers: a sharded model runs training's one pass of every row."""
    passes = []
    hidden = type(bridged64).hidden
    monkeypatch.setattr(type(bridged64), "hidden", lambda self, tokens, *a, **k: passes.append(tokens.shape)
                        or hidden(self, tokens, *a, **k))
    g = torch.Generator().manual_seed(1)
    prompt, prompt_alive = torch.randint(3, 259, (2, 4), generator=g), torch.ones(2, 4, dtype=torch.bool)
    answer = torch.randint(3, 259, (4, 60), generator=g)
    answer_alive = torch.arange(60)[None, :] < torch.tensor([2, 60, 3, 4])[:, None]
    with torch.no_grad():
        pieces = fast.answer_logprobs(bridged64, prompt, prompt_alive, answer, answer_alive, 2)
        assert len(passes) > 2                                  # the prompt, then more than one piece
        passes.clear()
        monkeypatch.setattr(parallel, "is_sharded", lambda m: True)
        one = fast.answer_logprobs(bridged64, prompt, prompt_alive, answer, answer_alive, 2)
    assert passes == [(2, 4), (4, 59)]                          # the prompt, then every row to the end
    assert (pieces - one).abs().max() < 1e-9


def test_reference_runs_the_naive_forward_and_the_same_steps(tiny, tmp_path, monkeypatch):
    """train_grpo.py runs fast.answer_logprobs, and training.answer_logprobs with --reference: the
    same steps up to float rounding; --reference may change on --resume (how, not what)."""
    monkeypatch.setattr(train_grpo, "group_reward", even_length_group_reward)
    calls = {"fast": 0, "reference": 0}
    for name, module in (("fast", fast), ("reference", training)):
        real = module.answer_logprobs
        monkeypatch.setattr(module, "answer_logprobs", lambda *a, real=real, name=name, **k:
                            calls.__setitem__(name, calls[name] + 1) or real(*a, **k))
    run = lambda out, *extra: train_grpo.main(["--model", str(tiny), "--out", str(out), "--prompts-per-step", "3",
                                               "--width", "3", "--lr", "1e-3", "--lr-new", "1e-2", *SMALL, *extra])
    run(tmp_path / "fast", "--steps", "3")
    assert calls["fast"] > 0 and calls["reference"] == 0
    run(tmp_path / "reference", "--steps", "2", "--reference")
    assert calls["reference"] > 0
    run(tmp_path / "reference", "--steps", "3", "--resume")          # the default path again from step 3
    fast_log, reference_log = ([json.loads(line) for line in (tmp_path / d / "log.jsonl").read_text().splitlines()]
                               for d in ("fast", "reference"))
    assert len(fast_log) == len(reference_log) == 3 and any(r["groups_updated"] for r in fast_log[:2])
    assert fast_log[0]["reward"] == reference_log[0]["reward"]       # the same weights sample the same answers
    assert [r["loss"] for r in fast_log] == pytest.approx([r["loss"] for r in reference_log], rel=1e-4, abs=1e-6)
