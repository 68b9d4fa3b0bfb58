"""The GRPO math as pure functions: group advantages and the clipped policy loss.

Each property is one the GRPO implementations in the wild got wrong at some point: advantages over
the batch instead of the group, NaN on all-equal groups, the clip's where/min mix-up, the KL's sign,
EOS masked out of the loss.
"""
import pytest
import torch
from hypothesis import given, strategies as st

from train_grpo import group_advantages, policy_loss

groups = dict(seed=st.integers(0, 2**16), B=st.integers(1, 4), W=st.integers(1, 6))


def binary_rewards(seed, n):
    return (torch.rand(n, generator=torch.Generator().manual_seed(seed)) < 0.5).float()


# --- advantages --------------------------------------------------------------------------------

@given(**groups)
def test_advantages_have_zero_mean_in_every_group(seed, B, W):
    g = torch.Generator().manual_seed(seed)
    for rewards in (binary_rewards(seed, B * W), torch.rand(B * W, generator=g, dtype=torch.float64)):
        adv = group_advantages(rewards, W)
        assert adv.shape == rewards.shape and torch.isfinite(adv).all()
        assert adv.view(B, W).sum(1).abs().max() < 1e-9 * W + 1e-6


@pytest.mark.parametrize("value", [0.0, 1.0, 0.35, 0.4, 0.1, -2.7])
@pytest.mark.parametrize("W", [1, 2, 4, 7])
def test_an_all_equal_group_gets_exactly_zero_and_never_nan(value, W):
    rewards = torch.cat([torch.full((W,), value), binary_rewards(W, W)])
    for scale in ("std", "none"):
        adv = group_advantages(rewards, W, scale=scale)
        assert torch.equal(adv[:W], torch.zeros(W))  # exact zeros, not 1e-17
        assert not torch.isnan(adv).any()


def test_advantages_are_computed_per_group_not_over_the_batch():
    rewards = torch.tensor([1.0, 0.0, 1.0, 1.0, 1.0, 1.0])  # group 2 all right: its advantage is 0
    adv = group_advantages(rewards, 3)
    assert torch.equal(adv[3:], torch.zeros(3))
    assert adv[0] > 0 > adv[1] and adv[0] == adv[2]


def test_std_scaling_is_bessel_corrected_with_eps():
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0]), 4, eps=0.0)
    std = torch.tensor([1.0, 0.0, 0.0, 0.0]).std()  # unbiased: sqrt(0.25)
    assert torch.allclose(adv, (torch.tensor([1.0, 0.0, 0.0, 0.0]) - 0.25) / std)
    mean_only = group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0]), 4, scale="none")
    assert torch.allclose(mean_only, torch.tensor([0.75, -0.25, -0.25, -0.25]))


@given(seed=st.integers(0, 2**16), W=st.integers(2, 6), a=st.floats(0.01, 100), c=st.floats(-10, 10))
def test_std_scaled_advantages_ignore_an_affine_change_of_the_rewards(seed, W, a, c):
    r = torch.rand(2 * W, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    adv, adv2 = group_advantages(r, W, eps=0.0), group_advantages(a * r + c, W, eps=0.0)
    assert (adv - adv2).abs().max() < 1e-6


def test_rewards_that_are_not_whole_groups_are_an_error():
    with pytest.raises(ValueError, match="groups of width 4"):
        group_advantages(torch.zeros(6), 4)


# --- the clipped loss --------------------------------------------------------------------------

def one_token(ratio, adv, **kw):
    """The loss of a single token whose ratio is `ratio`, and d loss / d logp."""
    logp = torch.tensor([[0.0]], dtype=torch.float64, requires_grad=True)
    old = torch.tensor([[-float(torch.log(torch.tensor(ratio, dtype=torch.float64)))]], dtype=torch.float64)
    loss, stats = policy_loss(logp, old, torch.tensor([adv], dtype=torch.float64),
                              torch.ones(1, 1, dtype=torch.bool), **kw)
    loss.backward()
    return loss.item(), logp.grad.item(), stats


@pytest.mark.parametrize("ratio", [0.81, 0.95, 1.0, 1.1, 1.27])
@pytest.mark.parametrize("adv", [1.5, -0.7])
def test_inside_the_clip_range_the_loss_is_the_unclipped_surrogate(ratio, adv):
    loss, grad, stats = one_token(ratio, adv)
    assert loss == pytest.approx(-ratio * adv) and grad == pytest.approx(-ratio * adv)
    assert stats["clip_frac"] == 0


@pytest.mark.parametrize("ratio, adv, zero_grad", [
    (1.5, 1.0, True),    # A > 0 and ratio above 1 + clip_high: clipped, no gradient
    (0.5, -1.0, True),   # A < 0 and ratio below 1 - clip_low: clipped, no gradient
    (1.5, -1.0, False),  # A < 0 and ratio above 1 + eps: PPO keeps the (pessimistic) gradient
    (0.5, 1.0, False),   # A > 0 and ratio below 1 - eps: likewise
])
def test_the_clip_region_and_its_gradients(ratio, adv, zero_grad):
    loss, grad, stats = one_token(ratio, adv)
    if zero_grad:
        assert grad == 0 and stats["clip_frac"] == 1
        bound = 1.28 if ratio > 1 else 0.8
        assert loss == pytest.approx(-bound * adv)
    else:
        assert grad == pytest.approx(-ratio * adv) and grad != 0 and stats["clip_frac"] == 0


def test_the_low_and_high_clip_bounds_are_separate():
    assert one_token(1.25, 1.0)[1] != 0                        # 1.25 < 1 + 0.28: still learning
    assert one_token(1.25, 1.0, clip_high=0.2)[1] == 0         # symmetric 0.2 would clip it
    assert one_token(0.75, -1.0, clip_low=0.3)[1] != 0


@given(seed=st.integers(0, 2**16), N=st.integers(1, 5), S=st.integers(1, 6))
def test_at_ratio_one_the_gradient_is_the_reinforce_gradient(seed, N, S):
    g = torch.Generator().manual_seed(seed)
    logp = (-torch.rand(N, S, generator=g, dtype=torch.float64) * 3).requires_grad_()
    mask = torch.rand(N, S, generator=g) < 0.7
    adv = torch.randn(N, generator=g, dtype=torch.float64)
    loss, stats = policy_loss(logp, logp.detach(), adv, mask)
    loss.backward()
    expected = -(adv[:, None] * mask) / mask.sum().clamp(min=1)      # d/dlogp of -mean(A * logp)
    assert torch.allclose(logp.grad, expected) and stats["ratio_max"] == 0 and stats["clip_frac"] == 0


@given(seed=st.integers(0, 2**16))
def test_k3_kl_is_non_negative_zero_at_equality_and_adds_to_the_loss(seed):
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(3, 5, generator=g, dtype=torch.float64) * 4
    ref = -torch.rand(3, 5, generator=g, dtype=torch.float64) * 4
    mask = torch.ones(3, 5, dtype=torch.bool)
    adv = torch.randn(3, generator=g, dtype=torch.float64)
    _, same = policy_loss(logp, logp, adv, mask, ref_logp=logp, kl_coef=0.1)
    assert same["kl"] == 0
    losses = [policy_loss(logp, logp, adv, mask, ref_logp=ref, kl_coef=b) for b in (0.0, 0.1, 1.0)]
    assert losses[1][1]["kl"] > 0
    assert losses[0][0] < losses[1][0] < losses[2][0]  # the KL is added, never subtracted


def test_masked_tokens_get_no_gradient_and_eos_does():
    logp = torch.full((2, 5), -1.0, dtype=torch.float64, requires_grad=True)
    alive = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)  # row 0: EOS at 2
    loss, _ = policy_loss(logp, logp.detach() - 0.1, torch.tensor([1.0, -1.0], dtype=torch.float64), alive)
    loss.backward()
    assert (logp.grad[~alive] == 0).all()
    assert logp.grad[0, 2] != 0  # the EOS token itself is trained: the policy learns to stop


@given(seed=st.integers(0, 2**16), N=st.integers(1, 5), S=st.integers(1, 6))
def test_token_and_sequence_aggregation_agree_on_equal_lengths(seed, N, S):
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(N, S, generator=g, dtype=torch.float64)
    old = logp + 0.3 * torch.randn(N, S, generator=g, dtype=torch.float64)
    adv = torch.randn(N, generator=g, dtype=torch.float64)
    mask = torch.ones(N, S, dtype=torch.bool)
    tok, _ = policy_loss(logp, old, adv, mask, aggregate="token")
    seq, _ = policy_loss(logp, old, adv, mask, aggregate="sequence")
    assert torch.allclose(tok, seq)
    mask[0, 1:] = False  # unequal lengths: they differ (token mean weights long answers more)
    if S > 1 and N > 1:
        tok, _ = policy_loss(logp, old, adv, mask, aggregate="token")
        seq, _ = policy_loss(logp, old, adv, mask, aggregate="sequence")
        assert not torch.allclose(tok, seq)
