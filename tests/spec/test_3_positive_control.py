"""The positive control (tools/positive_control.py): the specification of "the answers share information".

Each row of a group holds its own random ticket and must predict the largest ticket of its group.
From its own row alone no model can beat floor(K, W) = H(max | own ticket); Bridge, whose blocks
read the siblings, must end well below it; P-Match and the same Bridge weights at width 1 cannot.
On a tiny random model with a frozen base, 150 Adam steps on the blocks alone (seconds).
"""
import itertools
import json
import math
import re
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tests"))

import positive_control as pc  # noqa: E402
from bridge import Bridge  # noqa: E402
from model import load_model  # noqa: E402
from tiny import make_tiny_model  # noqa: E402

K, W = 10, 4


def brute_force_floor(K, W):
    """H(max | own ticket of row 0), counting all K^W equally likely groups."""
    joint = Counter((g[0], max(g)) for g in itertools.product(range(K), repeat=W))
    own = Counter(g[0] for g in itertools.product(range(K), repeat=W))
    total = K ** W
    return -sum(c / total * math.log(c / own[t]) for (t, _), c in joint.items())


@pytest.mark.parametrize("K,W", [(2, 2), (3, 2), (4, 3), (5, 4), (10, 4), (3, 1)])
def test_floor_is_the_conditional_entropy_counted_by_brute_force(K, W):
    assert pc.floor(K, W) == pytest.approx(brute_force_floor(K, W), abs=1e-12)


def test_floor_for_ten_tickets_and_four_rows():
    assert pc.floor(10, 4) == pytest.approx(1.3686886, abs=1e-7)
    assert pc.floor(10, 1) == 0.0  # alone, the largest ticket is one's own


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path, _ = make_tiny_model(tmp_path_factory.mktemp("control"), "llama", seed=0)
    return path


def trained(tiny, kind):
    """`kind` blocks on the frozen tiny model after 150 Adam steps; (model, lead, digits)."""
    model, tokenizer = load_model(tiny)
    torch.manual_seed(0)
    model.add_bridge(kind, n_heads=2, head_dim=8, verbose=False)
    lead, digits = pc.ticket_tokens(tokenizer, K)
    base = {n: p.clone() for n, p in model.named_parameters() if "bridge" not in n}
    pc.train_blocks(model, width=W, steps=150, lr=1e-2, groups=16, lead=lead, digits=digits, seed=1)
    assert all(torch.equal(p, base[n]) for n, p in model.named_parameters() if n in base)  # frozen
    return model, lead, digits


def test_bridge_reads_its_siblings_and_ends_far_below_the_floor(tiny):
    model, lead, digits = trained(tiny, "bridge")
    floor = pc.floor(K, W)
    assert pc.fresh_loss(model, W, lead, digits) < 0.5 * floor
    # the same weights with every row its own group: the siblings are out of reach
    assert pc.fresh_loss(model, W, lead, digits, eval_width=1) > floor


def test_a_token_wise_block_with_as_many_parameters_cannot_beat_the_floor(tiny):
    model, lead, digits = trained(tiny, "pmatch")
    assert pc.fresh_loss(model, W, lead, digits) > pc.floor(K, W)


def test_bridge_with_the_sibling_path_cut_cannot_beat_the_floor(tiny, monkeypatch):
    """A self-only mask (each row attends only to itself) turns Bridge into a token-wise block."""
    real = Bridge.forward

    def self_only(self, x, width, alive, mask=None):  # whatever mask the model built, attend to yourself
        eye = torch.eye(width, dtype=torch.bool, device=x.device)
        return real(self, x, width, alive, torch.zeros(width, width, dtype=x.dtype).masked_fill_(~eye, float("-inf")))
    monkeypatch.setattr(Bridge, "forward", self_only)
    model, lead, digits = trained(tiny, "bridge")
    assert pc.fresh_loss(model, W, lead, digits) > pc.floor(K, W)


def test_tickets_are_the_last_token_and_targets_the_group_maximum():
    lead, digits = [7, 8], [20 + d for d in range(K)]
    tokens, targets = pc.ticket_batch(torch.Generator().manual_seed(0), 5, W, lead, digits)
    assert tokens.shape == (5 * W, 3) and (tokens[:, :2] == torch.tensor(lead)).all()
    groups = tokens[:, -1].view(5, W)
    assert (targets.view(5, W) == groups.max(dim=1, keepdim=True).values).all()


def test_a_tokenizer_without_one_token_per_digit_is_a_clear_error():
    class Words:
        def encode(self, text, add_special_tokens=True):
            return [1, 2] if text.endswith("0") else [1, 3, 4]
    with pytest.raises(ValueError, match="one token per digit"):
        pc.ticket_tokens(Words(), 10)
    with pytest.raises(ValueError, match="K must be"):
        pc.ticket_tokens(Words(), 11)


# --- the command line: bad input is one line, before the training --------------------------------

def test_bad_outputs_are_refused_before_the_training(tmp_path, monkeypatch):
    monkeypatch.setattr(pc, "measure", lambda args: pytest.fail("trained before checking the outputs"))
    with pytest.raises(ValueError, match="is a directory"):
        pc.main(["--out", str(tmp_path)])
    with pytest.raises(ValueError, match=r"--plot .*ends in \.png, \.pdf, \.svg"):  # matplotlib would write x.png
        pc.main(["--out", str(tmp_path / "c.json"), "--plot", str(tmp_path / "x")])
    with pytest.raises(ValueError, match="does not exist"):
        pc.main(["--out", str(tmp_path / "c.json"), "--plot", str(tmp_path / "no" / "x.png")])


def control_result(**more):
    curve = [dict(step=s, loss=2.0 - s / 10, loss_width1=2.0) for s in (0, 5, 10)]
    return dict(format=pc.FORMAT, tickets=K, width=W, floor=pc.floor(K, W),
                arms=dict(bridge=dict(curve=curve), pmatch=dict(curve=curve)), **more)


def test_from_json_draws_an_earlier_result_and_names_a_bad_one(tmp_path):
    out = tmp_path / "c.json"
    with pytest.raises(ValueError, match="--from-json only draws .* give --plot"):  # nothing to do is not success
        pc.main(["--from-json", "--out", str(out)])
    with pytest.raises(FileNotFoundError, match="no result file"):
        pc.main(["--from-json", "--out", str(out), "--plot", str(tmp_path / "c.png")])
    out.write_text("{not json")
    with pytest.raises(ValueError, match=re.escape(f"{out}: not valid JSON")):
        pc.main(["--from-json", "--out", str(out), "--plot", str(tmp_path / "c.png")])
    for bad, needle in ((dict(control_result(), format="other/1"), "not a result of positive_control.py"),
                        ({k: v for k, v in control_result().items() if k != "floor"}, "has no floor")):
        out.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=needle):
            pc.main(["--from-json", "--out", str(out), "--plot", str(tmp_path / "c.png")])
    pytest.importorskip("matplotlib")
    out.write_text(json.dumps(control_result()))
    pc.main(["--from-json", "--out", str(out), "--plot", str(tmp_path / "c.svg")])
    assert (tmp_path / "c.svg").read_text().lstrip().startswith("<?xml")
