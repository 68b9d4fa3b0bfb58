"""Training: the prompt-once forward equals the plain forward, whole groups everywhere, and GRPO's
update is the gradient of the loss written out over the whole step (tests/scripts/test_05_train_scripts.py runs
the scripts end to end).

Everything runs in-process on a tiny random model in tmp_path. Its byte-level tokenizer makes long
prompts, so the runs use --shots 0 and a short context; many EOS ids make answers end early. The
tiny model never solves a problem, so where a run must learn something the reward is replaced by
a rule on the text (even length = right), which gives mixed groups.
"""
import copy
import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings, strategies as st

import train_grpo
import train_sft
from bridgekit import training
from model import load_model
from sample import answer_logprobs, sample, token_logprobs
from tiny import MANY_EOS as EOS, SMALL, add_random_bridge, even_length_group_reward, even_length_reward, make_training_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_training_model(tmp_path_factory.mktemp("tiny"), seed=5)


@pytest.fixture
def fake_reward(monkeypatch):
    monkeypatch.setattr(train_grpo, "group_reward", even_length_group_reward)
    monkeypatch.setattr(train_sft, "reward", even_length_reward)


def grpo(tiny, out, *extra):
    train_grpo.main(["--model", str(tiny), "--out", str(out), "--prompts-per-step", "3", "--width", "3",
                     "--lr", "1e-3", "--lr-new", "1e-2", *SMALL, *extra])


def sft(tiny, out, *extra):
    train_sft.main(["--model", str(tiny), "--out", str(out), "--problems", "4", "--samples-per-problem", "4",
                    "--groups-per-step", "2", *SMALL, *extra])


def log_of(out):
    return [json.loads(line) for line in (Path(out) / "log.jsonl").read_text().splitlines()]


# --- the prompt-once forward ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def bridged64(tiny):
    """The tiny model in fp64 with random, non-zero Bridge blocks."""
    model, tok = load_model(str(tiny), dtype=torch.float64)
    return add_random_bridge(model), tok


def plain_logprobs(model, prompt, prompt_alive, answer, answer_alive, width, temperature=1.0):
    """The reference answer_logprobs must equal: the plain forward over N full rows, each
    group's prompt repeated in front of every answer of the group, every position scored."""
    P = prompt.shape[1]
    tokens = torch.cat((prompt.repeat_interleave(width, 0), answer), dim=1)        # (N, P+S)
    alive = torch.cat((prompt_alive.repeat_interleave(width, 0), answer_alive), dim=1)
    logits = model(tokens, width=width, alive=alive)[:, P - 1:-1]                   # (N, S, V)
    return token_logprobs(logits, answer, temperature) * answer_alive


def logprobs_and_gradients(forward, model, *batch, weights=None):
    """(log-probs, {name: gradient}) of forward(model, *batch), the gradient of a weighted sum of
    the live log-probs (weights: one per column, so that every position's gradient counts)."""
    model.zero_grad(set_to_none=True)
    logp = forward(model, *batch)
    alive = batch[3]
    w = torch.linspace(0.5, 1.5, logp.shape[1], dtype=logp.dtype) if weights is None else weights
    (logp * alive * w).sum().backward()
    return logp.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def assert_same_gradients(got, expected, tol=1e-9):
    assert got.keys() == expected.keys()
    for name in got:
        assert (got[name] - expected[name]).abs().max() <= tol * (1 + expected[name].abs().max()), name


@settings(max_examples=8)
@given(seed=st.integers(0, 2**16), width=st.integers(1, 4),
       lengths=st.lists(st.integers(1, 9), min_size=1, max_size=3))
def test_prompt_once_equals_the_plain_forward_in_logprobs_and_gradients(bridged64, seed, width, lengths):
    model, _ = bridged64
    g = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(3, 259, (n,), generator=g).tolist() for n in lengths]  # ragged
    r = sample(model, prompts, EOS, width=width, max_new_tokens=8, generator=g)    # early EOS
    batch = training.split_rollout(r, slice(0, r.tokens.shape[0]))
    answer_alive = batch[3]
    lp1, g1 = logprobs_and_gradients(answer_logprobs, model, *batch, width)
    lp2, g2 = logprobs_and_gradients(plain_logprobs, model, *batch, width)
    assert (lp1 - lp2)[answer_alive].abs().max() < 1e-9 and (lp1[~answer_alive] == 0).all()
    assert_same_gradients(g1, g2)
    assert any(g1[n].abs().max() > 0 for n in g1 if ".bridge." in n)  # the blocks do get gradient
    # and the sampler's own log-probs are these (GRPO's ratio is 1 on the first step)
    assert (lp1 - r.logprobs)[answer_alive].abs().max() < 1e-9


def test_a_micro_batch_leaves_out_the_columns_where_all_its_rows_have_ended(bridged64):
    """split_rollout cuts the answers after the last position any of its rows is alive; the
    log-probs of what is left are those of the uncut answers (the cut is only padding)."""
    model, _ = bridged64
    cut = 0
    for seed in range(6):
        g = torch.Generator().manual_seed(seed)
        r = sample(model, [[5, 6, 7], [8, 9]], EOS, width=2, max_new_tokens=8, generator=g)
        P = r.prompt_len
        for rows in (slice(0, 2), slice(2, 4)):
            prompt, prompt_alive, answer, answer_alive = training.split_rollout(r, rows)
            S = answer.shape[1]
            assert answer_alive[:, -1].any() and not r.alive[rows, P + S:].any()
            cut += S < r.tokens.shape[1] - P
            with torch.no_grad():
                short = answer_logprobs(model, prompt, prompt_alive, answer, answer_alive, 2)
                full = answer_logprobs(model, prompt, prompt_alive, r.tokens[rows, P:],
                                                r.alive[rows, P:], 2)
            assert (short - full[:, :S])[answer_alive].abs().max() < 1e-12
    assert cut > 0  # some micro-batch did end before the batch


def test_one_token_answers_still_run_the_answers_pass(bridged64, monkeypatch):
    """A micro-batch whose answers are all one token long still makes the answers' pass, forward and
    backward, as one with longer answers does (under --shard the processes' passes must pair up, or
    FSDP2's gathers would wait on each other for ever); its one column predicts nothing, so the
    log-probs and gradients are the plain forward's."""
    model, _ = bridged64
    g = torch.Generator().manual_seed(2)
    batch = (torch.randint(3, 259, (2, 4), generator=g), torch.ones(2, 4, dtype=torch.bool),
             torch.randint(3, 259, (4, 1), generator=g), torch.ones(4, 1, dtype=torch.bool), 2)
    expected = logprobs_and_gradients(plain_logprobs, model, *batch)
    passes, reached = [], []
    hidden = type(model).hidden

    def counted(self, tokens, *a, **k):
        passes.append(tokens.shape)
        out = hidden(self, tokens, *a, **k)
        out.register_hook(lambda grad: reached.append(tokens.shape))
        return out
    monkeypatch.setattr(type(model), "hidden", counted)
    logp, grads = logprobs_and_gradients(answer_logprobs, model, *batch)
    assert passes == [(2, 4), (4, 1)] and sorted(reached) == [(2, 4), (4, 1)]  # the prompt, the answers' column
    assert (logp - expected[0]).abs().max() < 1e-12
    assert_same_gradients(grads, expected[1], 1e-12)


def test_micro_batches_are_runs_of_whole_groups():
    assert training.micro_batches([0, 1, 2, 4, 5, 7], 2, 3) == [slice(0, 6), slice(6, 9), slice(12, 18), slice(21, 24)]
    assert training.micro_batches([], 2, 3) == []


def test_a_slice_that_cuts_a_group_is_refused(bridged64):
    model, _ = bridged64
    r = sample(model, [[5, 6, 7]], EOS, width=4, max_new_tokens=3)
    with pytest.raises(AssertionError, match="whole groups"):
        training.split_rollout(r, slice(0, 2))


def test_the_update_sees_only_whole_groups_and_skips_groups_without_signal(tiny, tmp_path, monkeypatch,
                                                                         fake_reward):
    seen = []
    real = answer_logprobs

    def spy(model, prompt, prompt_alive, answer, answer_alive, width, **kw):
        assert answer.shape[0] == prompt.shape[0] * width
        seen.append(prompt.shape[0])
        return real(model, prompt, prompt_alive, answer, answer_alive, width, **kw)
    monkeypatch.setattr(train_grpo, "answer_logprobs", spy)
    grpo(tiny, tmp_path, "--steps", "2", "--micro-groups", "2")
    log = log_of(tmp_path)
    assert sum(seen) == sum(r["groups_updated"] for r in log) > 0
    assert all(r["groups_updated"] == round(3 * (1 - r["zero_var"])) for r in log)


# --- the GRPO update, end to end ----------------------------------------------------------------

def grpo_setup(tiny, tmp_path, *extra, dtype=None, prompts=3, noise=0.0):
    """(model, optimizer, args, rollout, advantages): one rollout of `prompts` groups of 3, and
    advantages of fixed mixed rewards for the first 3 groups (update() reads only the advantages), one
    group all equal. noise: random non-zero Bridge blocks of that scale, so that rows talk to each other."""
    args = train_grpo.parse_args(["--model", str(tiny), "--out", str(tmp_path), "--prompts-per-step", str(prompts),
                                  "--width", "3", "--lr", "1e-4", "--lr-new", "1e-3", *SMALL, *extra])
    model, tokenizer, optimizer, ref, _ = train_grpo.setup(args)
    if dtype is not None:
        model.to(dtype)
        optimizer = training.make_optimizer(model, args.train, args.lr, args.lr_new)
    if noise:
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for p in model.bridge_parameters():
                p.add_(noise * torch.randn(p.shape, generator=g, dtype=p.dtype))
    batch = train_grpo.step_problems(training.training_pool(args), 0, prompts, args.seed)
    r, *_ = train_grpo.sample_sets(model, tokenizer, batch, args)
    adv = train_grpo.group_advantages(torch.tensor([1.0, 0, 0, 1, 1, 1, 0, 1, 1]), 3)
    return model, optimizer, args, r, adv


def sequence_logprobs(model, r, args, **kw):
    with torch.no_grad():
        prompt, prompt_alive, answer, answer_alive = training.split_rollout(r, slice(0, r.tokens.shape[0]))
        logp = answer_logprobs(model, prompt, prompt_alive, answer, answer_alive, args.width, **kw)
    return (logp * answer_alive).sum(1), logp, answer_alive


def test_one_update_raises_the_answers_with_positive_advantage_and_lowers_the_others(tiny, tmp_path):
    model, optimizer, args, r, adv = grpo_setup(tiny, tmp_path)
    before, _, _ = sequence_logprobs(model, r, args)
    stats = train_grpo.update(model, optimizer, r, adv, args)
    after, _, _ = sequence_logprobs(model, r, args)
    change = after - before
    assert stats["groups_updated"] > 0
    assert (change[adv > 0] > 0).all() and (change[adv < 0] < 0).all(), (change, adv)
    assert (change[adv == 0].abs() < change.abs().max()).all()


def gradients(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def hand_written_gradient(model, r, adv, args, ref_model=None):
    """The gradient of the step's loss written out over all its rows at once (fp64, ratio = 1):
    token: -sum(A * logp) / (all answer tokens of the step, skipped groups' too) + kl_coef * mean k3;
    sequence: the mean over answers of -A * (the answer's mean logp)."""
    model.zero_grad(set_to_none=True)
    prompt, prompt_alive, answer, alive = training.split_rollout(r, slice(0, r.tokens.shape[0]))
    logp = answer_logprobs(model, prompt, prompt_alive, answer, alive, args.width)
    a, m = adv[:, None].double(), alive.double()
    if args.aggregate == "token":
        loss = -(a * logp * m).sum() / m.sum()
    else:
        loss = (-(a * logp * m).sum(1) / m.sum(1)).mean()
    kl = 0.0
    if ref_model is not None:
        with torch.no_grad():
            ref = answer_logprobs(ref_model, prompt, prompt_alive, answer, alive, args.width)
        k3 = ((ref - logp).exp() - (ref - logp) - 1) * m
        loss = loss + args.kl_coef * k3.sum() / m.sum()
        kl = (k3.sum() / m.sum()).item()
    loss.backward()
    return gradients(model), kl


@pytest.mark.parametrize("aggregate", ["token", "sequence"])
def test_update_is_the_gradient_of_the_loss_over_the_whole_step_however_it_is_cut(tiny, tmp_path, aggregate):
    """4 groups, the second with all-equal rewards (skipped, its tokens still in the token mean), cut
    into micro-batches of 1, 2 and 4 groups: [0] [2] [3], [0] [2 3] and [0 2 3] are different passes,
    and each must give the gradient of the loss written out over the whole step."""
    model, optimizer, args, r, _ = grpo_setup(tiny, tmp_path, "--lr", "0", "--lr-new", "0", "--max-grad-norm", "1e9",
                                              "--aggregate", aggregate, dtype=torch.float64, prompts=4, noise=0.3)
    adv = train_grpo.group_advantages(torch.tensor([1.0, 0, 0, 1, 1, 1, 1, 0, 1, 0, 0, 1]), 3)
    expected, _ = hand_written_gradient(model, r, adv, args)
    for micro in (1, 2, 4):
        args.micro_groups = micro
        stats = train_grpo.update(model, optimizer, r, adv, args)  # learning rates 0: the weights stay
        got = gradients(model)
        assert stats["groups_updated"] == 3 and got.keys() == expected.keys() and got
        for name in got:
            assert torch.allclose(got[name], expected[name], rtol=1e-9, atol=1e-12), (micro, name)


def test_with_a_kl_term_every_group_is_updated_and_the_gradient_is_that_of_k3(tiny, tmp_path):
    model, optimizer, args, r, _ = grpo_setup(tiny, tmp_path, "--lr", "0", "--lr-new", "0", "--max-grad-norm", "1e9",
                                              "--kl-coef", "0.5", dtype=torch.float64, prompts=4, noise=0.3)
    ref_model = copy.deepcopy(model).requires_grad_(False)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():  # a reference away from the policy, so that k3 and its gradient are not 0
        for p in ref_model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    adv = train_grpo.group_advantages(torch.tensor([1.0, 0, 0, 1, 1, 1, 1, 0, 1, 0, 0, 0]), 3)
    expected, kl = hand_written_gradient(model, r, adv, args, ref_model)
    args.micro_groups = 1
    stats = train_grpo.update(model, optimizer, r, adv, args, ref_model)
    got = gradients(model)
    assert stats["groups_updated"] == 4  # the two all-equal groups too: k3 has a gradient there
    assert kl > 0 and stats["kl"] == pytest.approx(kl, rel=1e-9)
    for name in got:
        assert torch.allclose(got[name], expected[name], rtol=1e-9, atol=1e-12), name


def test_the_log_probs_trained_on_are_those_of_the_sampling_temperature(tiny, tmp_path):
    """At --temperature 0.7 the sampler records log softmax(logits / 0.7), and the training forward
    recomputes exactly those (not the untempered ones): the gradient is that of what was sampled."""
    model, _, args, r, _ = grpo_setup(tiny, tmp_path, "--temperature", "0.7")
    _, tempered, alive = sequence_logprobs(model, r, args, temperature=0.7)
    _, plain, _ = sequence_logprobs(model, r, args)
    assert (tempered - r.logprobs)[alive].abs().max() < 1e-5
    with torch.no_grad():
        logits = model(r.tokens, width=3, alive=r.alive)[:, r.prompt_len - 1:-1]
    expected = (logits / 0.7).log_softmax(-1).gather(-1, r.tokens[:, r.prompt_len:, None]).squeeze(-1)
    assert (expected - tempered)[alive].abs().max() < 1e-5
    assert (plain - tempered)[alive].abs().max() > 1e-2


def test_the_fused_adamw_step_is_the_default_kernels_step(tiny):
    """make_optimizer picks PyTorch's fused AdamW on CPU (training.make_optimizer, for speed): three
    steps of it move the weights as the default per-tensor kernel does, to float rounding."""
    import copy
    model = load_model(str(tiny), dtype=torch.float32)[0]
    add_random_bridge(model, seed=1)
    models = [model, copy.deepcopy(model)]
    opts = [training.make_optimizer(m, "all", 1e-3, 1e-2) for m in models]
    assert all(g["fused"] for g in opts[0].param_groups)
    for g in opts[1].param_groups:
        g["fused"] = None
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        grads = [torch.randn(p.shape, generator=gen) for p in model.parameters()]
        for m, opt in zip(models, opts):
            for p, grad in zip(m.parameters(), grads):
                p.grad = grad.clone()
            opt.step()
    for (name, a), b in zip(models[0].named_parameters(), models[1].parameters()):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), name
    assert not torch.equal(models[0].lm_head.weight, load_model(str(tiny))[0].lm_head.weight)


def test_a_resumed_optimizer_keeps_this_runs_kernel_whatever_wrote_the_checkpoint(tiny):
    """A checkpoint written by the default AdamW kernel resumes into the fused one (and steps)."""
    model = load_model(str(tiny), dtype=torch.float32)[0]
    old = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)  # the default kernel
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    old.step()
    new = training.make_optimizer(model, "all", 1e-3, 1e-2)
    training.restore_optimizer(model, new, dict(optimizer=old.state_dict(), optimizer_layout="torch"))
    assert all(g["fused"] for g in new.param_groups)
    new.step()
    assert all(s["step"].item() == 2 for s in new.state.values())
