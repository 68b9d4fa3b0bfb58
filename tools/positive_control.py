"""The positive control: information flows between siblings, and a token-wise block cannot fake it.

Each of the W rows of a group reads "Ticket: d", with its own random digit d (uniform over K
values), and must predict the LARGEST ticket of its group as the next token. From its own row
alone the best possible loss is the conditional entropy H(max | own ticket) (`floor`, exact), so a
model that ends below it has read its siblings. Only the new blocks train, the base is frozen;
Bridge and P-Match get the same batches and steps; the loss is measured on fresh groups.

- Bridge can go below the floor: at the ticket's timestep it attends to the siblings' hidden states,
  which hold their tickets.
- P-Match cannot: a token-wise block sees one row, and the floor is information-theoretic.
- The same Bridge weights at width 1 cannot either (each row is its own group).
tests/spec/test_3_positive_control.py checks all three on a tiny random model in seconds; this script
measures the learning curves on the default model:

    python tools/positive_control.py                                   # -> experiments/results/positive_control.json
    python tools/positive_control.py --plot experiments/results/positive_control.png   # + the figure (matplotlib)
"""
import json
import math
import sys
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from bridgekit import cli  # noqa: E402
from bridgekit.cli import Parser  # noqa: E402

FORMAT = "bridge-ref-control/1"


def floor(K, W):
    """H(max of W tickets | one's own ticket) in nats, tickets i.i.d. uniform over K values.

    Given one's own ticket t, the maximum of the group is m >= t with probability
    ((t+1)/K)^(W-1) for m = t (every sibling at most t) and ((m+1)/K)^(W-1) - (m/K)^(W-1) for m > t
    (every sibling at most m, not every sibling below m). Exact fractions, then the entropy.
    """
    if K < 1 or W < 1:
        raise ValueError(f"K and W must be >= 1, got K={K}, W={W}")
    total = 0.0
    for t in range(K):
        probs = [Fraction(t + 1, K) ** (W - 1)]
        probs += [Fraction(m + 1, K) ** (W - 1) - Fraction(m, K) ** (W - 1) for m in range(t + 1, K)]
        assert sum(probs) == 1
        total -= sum(float(p) * math.log(p) for p in probs if p > 0)
    return total / K


def ticket_tokens(tokenizer, K=10):
    """(lead, digits): the token ids of "Ticket: " and of each ticket 0..K-1 (one token each)."""
    if not 2 <= K <= 10:
        raise ValueError(f"K must be 2..10 (one digit per ticket), got {K}")
    rows = [tokenizer.encode(f"Ticket: {d}", add_special_tokens=False) for d in range(K)]
    lead = rows[0][:-1]
    if any(r[:-1] != lead for r in rows) or len({r[-1] for r in rows}) != K:
        raise ValueError("this tokenizer does not write 'Ticket: d' as a shared prefix and one token per digit")
    return lead, [r[-1] for r in rows]


def ticket_batch(generator, groups, width, lead, digits):
    """tokens (groups*width, len(lead)+1): row n ends with its ticket; targets (N,): its group's max."""
    K, N = len(digits), groups * width
    tickets = torch.randint(0, K, (groups, width), generator=generator)
    largest = tickets.max(dim=1, keepdim=True).values.expand(groups, width).reshape(N)
    ids = torch.tensor(digits)
    tokens = torch.cat((torch.tensor(lead, dtype=torch.long).expand(N, len(lead)), ids[tickets.reshape(N, 1)]), dim=1)
    return tokens, ids[largest]


def control_loss(model, tokens, targets, width):
    """Cross-entropy (nats) of the next token after each row's ticket, the rows in groups of `width`."""
    device = model.lm_head.weight.device
    logits = model(tokens.to(device), width=width)[:, -1]
    return F.cross_entropy(logits.float(), targets.to(device))


@torch.no_grad()
def fresh_loss(model, width, lead, digits, *, groups=512, seed=12345, eval_width=None):
    """The loss on `groups` fresh groups of `width` tickets (never trained on: their own seed).

    eval_width=1 runs the same rows as independent rows (each its own group): the siblings are
    still in the batch and still define the target, but the blocks cannot see them.
    """
    tokens, targets = ticket_batch(torch.Generator().manual_seed(seed), groups, width, lead, digits)
    return control_loss(model, tokens, targets, eval_width or width).item()


def train_blocks(model, *, width, steps, lr, groups, lead, digits, seed=0, every=0, on_eval=None):
    """Adam on the new blocks only (base frozen), `groups` groups of `width` per step.

    Returns the training losses; every `every` steps (and after the last) calls
    on_eval(step, model). The batches come from their own generator (seed), so two block kinds
    trained with the same seed see the same tickets.
    """
    for p in model.parameters():
        p.requires_grad_(False)
    params = list(model.bridge_parameters())
    if not params:
        raise ValueError("the model has no new blocks: add_bridge() first")
    for p in params:
        p.requires_grad_(True)
    # choice: plain Adam on the blocks, no schedule: the control asks whether the signal can be
    # learned at all, not how fast the best schedule learns it
    optimizer = torch.optim.Adam(params, lr=lr)
    g, losses = torch.Generator().manual_seed(seed), []
    for step in range(steps):
        tokens, targets = ticket_batch(g, groups, width, lead, digits)
        loss = control_loss(model, tokens, targets, width)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if on_eval and ((every and (step + 1) % every == 0) or step + 1 == steps):
            on_eval(step + 1, model)
    return losses


# -----------------------------------------------------------------------------
# the measurement on a real model


def measure(args):
    from model import load_model
    from sample import DTYPES
    K, W = args.tickets, args.width
    result = dict(format=FORMAT, model=args.model, tickets=K, width=W, steps=args.steps,
                  lr=args.lr, groups=args.groups, heads=args.heads, head_dim=args.head_dim, seed=args.seed,
                  eval_groups=args.eval_groups, floor=floor(K, W), dtype=args.dtype, arms={})
    for kind in ("bridge", "pmatch"):
        model, tokenizer = load_model(args.model, device=args.device, dtype=DTYPES[args.dtype])
        model.add_bridge(kind, n_heads=args.heads, head_dim=args.head_dim, seed=args.seed, verbose=False)
        lead, digits = ticket_tokens(tokenizer, K)
        curve, t0 = [], time.time()

        def on_eval(step, model):
            at_w = fresh_loss(model, W, lead, digits, groups=args.eval_groups)
            at_1 = fresh_loss(model, W, lead, digits, groups=args.eval_groups, eval_width=1)
            curve.append(dict(step=step, loss=at_w, loss_width1=at_1, seconds=round(time.time() - t0, 1)))
            print(f"{kind:6s} step {step:4d}  fresh loss {at_w:.3f} (width 1: {at_1:.3f})  "
                  f"floor {result['floor']:.3f}  {cli.hms(time.time() - t0)}", file=sys.stderr, flush=True)
        on_eval(0, model)
        train = train_blocks(model, width=W, steps=args.steps, lr=args.lr, groups=args.groups, lead=lead,
                             digits=digits, seed=args.seed, every=args.eval_every, on_eval=on_eval)
        result["arms"][kind] = dict(train_loss=[round(x, 5) for x in train], curve=curve,
                                    seconds=round(time.time() - t0, 1))
    from bridgekit.result_files import machine
    result["machine"] = machine(args.device)
    return result


def read_result(path):
    """A result this script wrote (--out), to draw with --from-json; one line naming the file if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--out {path}: no result file there to draw from (--from-json reads an earlier --out)")
    try:
        result = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(result, dict) or result.get("format") != FORMAT:
        raise ValueError(f"{path}: not a result of positive_control.py (no \"format\": \"{FORMAT}\")")
    missing = [k for k in ("floor", "width", "tickets", "arms") if k not in result]
    if missing:
        raise ValueError(f"{path}: the result has no {', '.join(missing)}")
    return result


def plot(result, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.6))
    names = dict(bridge="Bridge", pmatch="P-Match")
    for kind, arm in result["arms"].items():
        steps = [c["step"] for c in arm["curve"]]
        line, = ax.plot(steps, [c["loss"] for c in arm["curve"]], marker="o", ms=3,
                        label=f"{names[kind]}, width {result['width']}")
        if kind == "bridge":
            ax.plot(steps, [c["loss_width1"] for c in arm["curve"]], ls="--", color=line.get_color(),
                    label="Bridge weights at width 1")
    ax.axhline(result["floor"], color="k", lw=1, label="floor: H(max | own ticket)")
    ax.set_xlabel("training step (blocks only)")
    ax.set_ylabel("loss on fresh groups (nats)")
    ax.set_ylim(0, max(3.0, result["floor"] * 2))
    ax.set_title(f"Largest of {result['width']} tickets (K = {result['tickets']})", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    cli.save_figure(fig, out, dpi=120)


def main(argv=None):
    p = Parser(prog="positive_control.py", description=__doc__.split("\n\n")[0])
    cli.add_model(p)
    p.add_argument("--tickets", type=int, default=10, help="K, the ticket values 0..K-1 (default 10)")
    p.add_argument("--width", type=int, default=4, help="W, rows per group (default 4)")
    p.add_argument("--steps", type=int, default=300, help="Adam steps on the blocks (default 300)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--groups", type=int, default=16, help="groups per step (default 16)")
    cli.add_block_shape(p)
    p.add_argument("--eval-every", type=int, default=25, help="fresh-group evaluation every this many steps (default 25)")
    p.add_argument("--eval-groups", type=int, default=256, help="fresh groups per evaluation (default 256)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=str(ROOT / "experiments" / "results" / "positive_control.json"))
    p.add_argument("--plot", default=None, help="also draw the curves to this .png, .pdf or .svg (needs matplotlib)")
    p.add_argument("--from-json", action="store_true", help="only draw --plot from an existing --out")
    cli.add_overwrite(p, "--out and --plot")
    args = p.parse_args(argv)
    if args.width < 2:
        raise ValueError("--width must be >= 2: at width 1 there are no siblings to read")
    for name in ("steps", "groups", "heads", "head_dim", "eval_groups"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
    if args.plot:
        cli.check_figure_out(args.plot, args.overwrite, "--plot")
    if args.from_json:
        if not args.plot:
            raise ValueError("--from-json only draws the figure of an existing --out: give --plot FILE")
        result = read_result(args.out)
    else:
        cli.check_out_file(args.out)
        cli.check_new_file(args.out, args.overwrite)
        floor(args.tickets, args.width)
        result = measure(args)
        cli.write_text(args.out, json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    if args.plot:
        plot(result, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)


if __name__ == "__main__":
    cli.run(main)
