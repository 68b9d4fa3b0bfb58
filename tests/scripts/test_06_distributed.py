"""Several processes (torch.distributed, gloo on CPU): the same algorithm as one process.

A two-process run starts this file twice as a script, with the environment torchrun gives its
workers (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR=127.0.0.1 and a free MASTER_PORT: loopback
only) and one thread each. As a script it swaps the reward for one that gives mixed groups on the
tiny model (like tests/scripts/test_04_training.py), records what its process sampled, ran and wrote, and
runs train_grpo.py or train_sft.py, or only GRPO's update() on a saved rollout. The one-process
reference runs in this process with the same swaps.

Two levels of "the same": update() on the same rollout tensors gives the same parameters on two
processes as on one, bit for bit here (fp32; the tolerance is 1e-6 relative); whole runs sample
each group in a batch padded to its process's prompts, so their rollouts are the same tokens but
their log-probs differ in the last bits, and AdamW's first step, g / (|g| + 1e-8), turns that into
parameter differences of up to a few percent of the learning rate where a gradient is nearly 0
(a handful of elements here; the whole-run tests allow that, and check the rest as tightly).
"""
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # flat layout, also when run as a script

import pytest  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from bridgekit import parallel  # noqa: E402
from bridgekit import train_args  # noqa: E402
import train_grpo  # noqa: E402
import train_sft  # noqa: E402
from bridgekit import training  # noqa: E402
sys.path.insert(0, str(ROOT / "tests"))  # tiny.py, also when run as a script
from tiny import SMALL, even_length_group_reward, even_length_reward, make_training_model  # noqa: E402


def instrument(setattr):
    """Swap in even_length_reward; return a list that records this process's rollouts, forwards
    and checkpoint writes."""
    events = []
    rollout, logprobs, write = train_grpo.sample_sets, train_grpo.answer_logprobs, training.write_checkpoint

    def spy_rollout(model, tokenizer, indexed_problems, args):
        out = rollout(model, tokenizer, indexed_problems, args)
        r = out[0]
        events.append(dict(kind="rollout", prompts=[i for i, _ in indexed_problems],
                           rows=r.tokens.shape[0], answers=r.completions()))
        return out

    def spy_logprobs(model, prompt, prompt_alive, answer, answer_alive, width, **kw):
        events.append(dict(kind="forward", groups=prompt.shape[0], rows=answer.shape[0], width=width))
        return logprobs(model, prompt, prompt_alive, answer, answer_alive, width, **kw)

    def spy_write(*args, **kw):
        events.append(dict(kind="checkpoint"))
        return write(*args, **kw)
    setattr(train_grpo, "group_reward", even_length_group_reward)
    setattr(train_sft, "reward", even_length_reward)
    setattr(train_grpo, "sample_sets", spy_rollout)
    setattr(train_grpo, "answer_logprobs", spy_logprobs)
    setattr(train_sft, "answer_logprobs", spy_logprobs)
    setattr(training, "write_checkpoint", spy_write)
    return events


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(argv, logs, n=2, timeout=180):
    """Run `python argv...` as the n processes of one job, as torchrun would; returns, per rank,
    (exit code, stderr lines)."""
    port, procs = free_port(), []
    logs.mkdir(parents=True, exist_ok=True)
    try:
        for rank in range(n):
            env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                       LOCAL_RANK=str(rank), WORLD_SIZE=str(n), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
            with open(logs / f"rank{rank}.out", "w") as out, open(logs / f"rank{rank}.err", "w") as err:
                procs.append(subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=env, stdout=out, stderr=err))
        codes = [p.wait(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return [(code, (logs / f"rank{r}.err").read_text().strip().splitlines()) for r, code in enumerate(codes)]


def run_two(script, spy, argv):
    """`script` (grpo or sft) on two processes; returns each rank's recorded events."""
    results = spawn([__file__, script, str(spy), *argv], spy)
    for rank, (code, err) in enumerate(results):
        assert code == 0, f"rank {rank} failed:\n" + "\n".join(err[-30:])
    return [json.loads((spy / f"rank{r}.json").read_text()) for r in range(2)]


@contextmanager
def one_thread():
    """The one-process reference with one thread, like each spawned process (the sums of a matrix
    product may be split differently over more threads)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def run_one(script, argv):
    with pytest.MonkeyPatch.context() as mp, one_thread():
        events = instrument(mp.setattr)
        dict(grpo=train_grpo, sft=train_sft)[script].main(argv)
    return events


def two_updates(argv, rollout, out):
    """GRPO's update() twice on a saved (rollout, advantages), each process on its own share of the
    groups; the second time only the first half of the groups has signal, so on two processes rank
    1 runs no forward at all. The main process saves the parameters after each update."""
    args = train_grpo.parse_args(argv)
    parallel.dist_init(args)
    model, _, optimizer, _, _ = train_grpo.setup(args)
    r, adv = load_rollout(rollout)
    W, groups = args.width, parallel.my_share(list(range(len(adv) // args.width)))
    rows = slice(groups[0] * W, (groups[-1] + 1) * W)
    mine = dataclasses.replace(r, tokens=r.tokens[rows], alive=r.alive[rows], logprobs=r.logprobs[rows])
    quiet = torch.cat((adv[:len(adv) // 2], torch.zeros(len(adv) - len(adv) // 2)))
    for k, a in enumerate((adv, quiet)):
        stats = train_grpo.update(model, optimizer, mine, a[rows], args)
        # a sharded model (--shard) is gathered whole first; every process takes part
        state = parallel.full_states(model, optimizer)[0] if parallel.is_sharded(model) else model.state_dict()
        if parallel.is_main():
            save_file({n: p.detach().clone() for n, p in state.items()}, str(out / f"update{k}.safetensors"))
            (out / f"update{k}.json").write_text(json.dumps(stats))
    parallel.dist_exit()


def log_of(out):
    return [json.loads(line) for line in (Path(out) / "log.jsonl").read_text().splitlines()]


def assert_same_parameters(a, b, name):
    """Equal parameters (fp32) up to float rounding: 1e-5 relative and absolute. The two sides sum
    the same gradients in a different order (one process, or a reduce over two), and AdamW divides
    a gradient by its own size: where an element's gradient is a sum of terms that nearly cancel, its
    rounding moves that element's step by up to about 1e-6 (measured on an Intel Xeon with AVX-512,
    lr 1e-2). 1e-5 is still a hundredth of one step at the tests' smaller lr, 1e-3: a step that used
    other gradients moves most elements by about lr and fails."""
    ta, tb = load_file(str(a / name)), load_file(str(b / name))
    assert ta.keys() == tb.keys()
    for k in ta:
        torch.testing.assert_close(ta[k], tb[k], rtol=1e-5, atol=1e-5, msg=lambda m: f"{name} {k}: {m}")


def assert_nearly_same_parameters(a, b, name, lr):
    """Whole runs (see the docstring): all but a few elements in 1e-3 equal as above, and none
    further apart than one AdamW step can move them apart (lr each way)."""
    ta, tb = load_file(str(a / name)), load_file(str(b / name))
    diff = torch.cat([(ta[k] - tb[k]).abs().flatten() for k in ta])
    scale = torch.cat([tb[k].abs().flatten() for k in ta])
    assert (diff > 1e-5 + 1e-5 * scale).float().mean() < 1e-3, name
    assert diff.max() <= 2 * lr, name


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_training_model(tmp_path_factory.mktemp("tiny"), seed=5)


@pytest.fixture(scope="module")
def grpo_runs(tiny, tmp_path_factory):
    """One GRPO step (4 prompts of width 3) on one process and on two; the latter resumed to step 2
    on two processes, and a straight two-step run on two processes."""
    tmp = tmp_path_factory.mktemp("grpo")
    argv = lambda out, steps, *extra: ["--model", str(tiny), "--out", str(out), "--prompts-per-step", "4",
                                       "--width", "3", "--train", "all", "--lr", "1e-3", "--lr-new", "1e-2",
                                       "--steps", str(steps), *SMALL, *extra]
    one, two, straight = tmp / "one", tmp / "two", tmp / "straight"
    events_one = run_one("grpo", argv(one, 1))
    events_two = run_two("grpo", tmp / "spy", argv(two, 1))
    shutil.copytree(two / "checkpoint", two / "step1")
    run_two("grpo", tmp / "spy_resume", argv(two, 2, "--resume"))
    run_two("grpo", tmp / "spy_straight", argv(straight, 2))
    return dict(one=one, two=two, straight=straight, events_one=events_one, events_two=events_two)


def load_rollout(path):
    """(Rollout, advantages) as rollout_and_one_process_updates saved them: plain data and the Rollout
    class only (weights_only, as every torch.load here)."""
    from sample import Rollout
    with torch.serialization.safe_globals([Rollout]):
        return torch.load(path, weights_only=True)


def rollout_and_one_process_updates(argv, tmp_path, edit=None):
    """One rollout of 4 groups of 3 (argv's settings), saved with fixed advantages to
    tmp_path/rollout.pt, and two_updates() on it in this process, into tmp_path/one.

    update() reads only the advantages: fixed rewards give a signal to groups on both halves of the
    batch (both processes' groups, when two split it), and none to one group (group 2).
    edit: a function that changes the rollout before it is saved."""
    args = train_grpo.parse_args(argv)
    model, tokenizer, _, _, _ = train_grpo.setup(args)
    batch = train_grpo.step_problems(training.training_pool(args), 0, 4, args.seed)
    r, *_ = train_grpo.sample_sets(model, tokenizer, batch, args)
    if edit is not None:
        edit(r)
    adv = train_grpo.group_advantages(torch.tensor([1.0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 1, 0]), 3)
    path, one = tmp_path / "rollout.pt", tmp_path / "one"
    torch.save((r, adv), path)  # (read back by load_rollout)
    one.mkdir()
    with one_thread():
        two_updates(argv, path, one)
    return path, adv, one


def test_update_on_two_processes_equals_one_process_on_the_same_rollout(tiny, tmp_path):
    argv = ["--model", str(tiny), "--out", str(tmp_path / "unused"), "--prompts-per-step", "4", "--width", "3",
            "--train", "all", "--lr", "1e-3", "--lr-new", "1e-2", *SMALL]
    rollout, adv, one = rollout_and_one_process_updates(argv, tmp_path)
    two = tmp_path / "two"
    results = spawn([__file__, "update", str(two), str(rollout), *argv], two)
    assert all(code == 0 for code, _ in results), results
    # the second update keeps the advantages of the first half of the groups only (two_updates)
    signal = [adv.view(-1, 3).ne(0).any(1), adv.view(-1, 3).ne(0).any(1) & (torch.arange(4) < 2)]
    for k in (0, 1):
        stats_one, stats_two = (json.loads((d / f"update{k}.json").read_text()) for d in (one, two))
        assert stats_two["groups_updated"] == stats_one["groups_updated"] == int(signal[k].sum()) > 0
        assert stats_two["loss"] == pytest.approx(stats_one["loss"], rel=1e-6, abs=1e-9)
        assert stats_two["grad_norm"] == pytest.approx(stats_one["grad_norm"], rel=1e-6)
        assert_same_parameters(one, two, f"update{k}.safetensors")


def test_a_run_on_two_processes_samples_and_steps_as_one_process(grpo_runs):
    one, two = grpo_runs["one"], grpo_runs["two"]
    rollouts_one = [e for e in grpo_runs["events_one"] if e["kind"] == "rollout"]
    rollouts_two = [[e for e in events if e["kind"] == "rollout"] for events in grpo_runs["events_two"]]
    assert rollouts_one[0]["answers"] == rollouts_two[0][0]["answers"] + rollouts_two[1][0]["answers"]
    step_one, step_two = log_of(one)[0], log_of(two)[0]
    assert step_two["groups_updated"] == step_one["groups_updated"] > 0  # mixed groups: a real step
    for key in ("reward", "acc", "zero_var", "len", "trunc", "prompt_tokens"):
        assert step_two[key] == step_one[key], key
    assert step_two["loss"] == pytest.approx(step_one["loss"], rel=1e-5, abs=1e-7)
    assert step_two["grad_norm"] == pytest.approx(step_one["grad_norm"], rel=1e-5)
    for name, lr in (("model.safetensors", 1e-3), ("bridge.safetensors", 1e-2)):  # AdamW: see the docstring
        assert_nearly_same_parameters(one / "checkpoint", two / "step1", name, lr)


def test_each_process_samples_and_trains_its_own_whole_groups(grpo_runs):
    for rank, events in enumerate(grpo_runs["events_two"]):
        rollouts = [e for e in events if e["kind"] == "rollout"]
        assert rollouts[0]["prompts"] == [2 * rank, 2 * rank + 1]  # its contiguous block, global indices
        assert all(e["rows"] == 3 * len(e["prompts"]) for e in rollouts)
        forwards = [e for e in events if e["kind"] == "forward"]
        assert all(e["rows"] == e["groups"] * e["width"] for e in forwards)


def test_only_rank_0_logs_and_writes_and_its_log_lists_every_prompt_once(grpo_runs):
    two = grpo_runs["two"]
    assert [r["prompts"] for r in log_of(two)] == [[0, 1, 2, 3], [4, 5, 6, 7]]  # after the resume
    assert [r["step"] for r in log_of(two)] == [0, 1]
    writes = [sum(e["kind"] == "checkpoint" for e in events) for events in grpo_runs["events_two"]]
    assert writes == [1, 0]


def test_resume_on_two_processes_ends_bit_equal_to_an_uninterrupted_run(grpo_runs):
    two, straight = grpo_runs["two"], grpo_runs["straight"]
    assert [r["loss"] for r in log_of(two)] == [r["loss"] for r in log_of(straight)]
    for name in ("model.safetensors", "bridge.safetensors"):
        a, b = load_file(str(two / "checkpoint" / name)), load_file(str(straight / "checkpoint" / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


def test_a_step_that_does_not_split_into_whole_groups_is_a_one_line_error(tmp_path, monkeypatch):
    results = spawn(["train_grpo.py", "--out", str(tmp_path / "o"), "--prompts-per-step", "3"], tmp_path / "logs")
    for code, err in results:
        assert code != 0 and len(err) == 1, err
        assert "--prompts-per-step 3 does not split into whole groups over 2 processes" in err[0], err
    assert not (tmp_path / "o").exists()  # before anything was loaded or written
    monkeypatch.setenv("WORLD_SIZE", "2")  # the same check in train_sft.py
    with pytest.raises(ValueError, match="--groups-per-step 3 does not split into whole groups over 2"):
        train_args.check_sft(train_sft.parse_args(["--out", str(tmp_path / "o"), "--groups-per-step", "3"]))


def test_sft_on_two_processes_equals_one_process(tiny, tmp_path):
    argv = lambda out: ["--model", str(tiny), "--out", str(out), "--problems", "4", "--samples-per-problem", "4",
                        "--sample-batch", "2", "--groups-per-step", "2", "--steps", "1", *SMALL]
    run_one("sft", argv(tmp_path / "one"))
    events = run_two("sft", tmp_path / "spy", argv(tmp_path / "two"))
    data = [(tmp_path / run / "data.jsonl").read_text() for run in ("one", "two")]
    assert data[0] == data[1]  # the same problems, the same answers, in problem order
    assert all(e["rows"] == e["groups"] * e["width"] for rank in events for e in rank if e["kind"] == "forward")
    assert [sum(e["kind"] == "forward" for e in rank) > 0 for rank in events] == [True, True]
    (a,), (b,) = log_of(tmp_path / "one"), log_of(tmp_path / "two")
    assert (a["groups"], a["tokens"]) == (b["groups"], b["tokens"]) and b["loss"] == pytest.approx(a["loss"], rel=1e-6)
    assert_same_parameters(tmp_path / "one" / "checkpoint", tmp_path / "two" / "checkpoint", "bridge.safetensors")


if __name__ == "__main__":  # one spawned process: test_distributed.py grpo|sft SPY ARGS... | update OUT ROLLOUT ARGS...
    script, spy, argv = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    if script == "update":
        two_updates(argv[1:], Path(argv[0]), spy)  # ends the process
    events = instrument(setattr)
    real_exit = parallel.dist_exit

    def record_then_exit(code=0):  # main() ends a torchrun worker with os._exit: record before it
        (spy / f"rank{os.environ['RANK']}.json").write_text(json.dumps(events))
        real_exit(code)
    parallel.dist_exit = record_then_exit
    dict(grpo=train_grpo, sft=train_sft)[script].main(argv)


def test_several_sets_per_prompt_split_by_prompt_over_two_processes(tiny, tmp_path):
    """--sets 2: each process samples every set of its own prompts, and the step (advantages over
    the 2 x 3 answers of each prompt) is the one-process step."""
    argv = lambda out: ["--model", str(tiny), "--out", str(out), "--prompts-per-step", "4", "--width", "3",
                        "--sets", "2", "--train", "all", "--lr", "1e-3", "--lr-new", "1e-2", "--steps", "1", *SMALL]
    one, two = tmp_path / "one", tmp_path / "two"
    events_one = run_one("grpo", argv(one))
    events_two = run_two("grpo", tmp_path / "spy", argv(two))
    rollout_one = next(e for e in events_one if e["kind"] == "rollout")
    rollouts_two = [next(e for e in events if e["kind"] == "rollout") for events in events_two]
    assert [r["prompts"] for r in rollouts_two] == [[0, 1], [2, 3]]
    assert all(r["rows"] == 2 * 2 * 3 for r in rollouts_two)
    assert rollout_one["answers"] == rollouts_two[0]["answers"] + rollouts_two[1]["answers"]
    step_one, step_two = log_of(one)[0], log_of(two)[0]
    assert step_two["groups_updated"] == step_one["groups_updated"] > 0
    for key in ("reward", "acc", "zero_var", "len", "trunc", "prompt_tokens"):
        assert step_two[key] == step_one[key], key
    assert step_two["loss"] == pytest.approx(step_one["loss"], rel=1e-5, abs=1e-7)
    for name, lr in (("model.safetensors", 1e-3), ("bridge.safetensors", 1e-2)):
        assert_nearly_same_parameters(one / "checkpoint", two / "checkpoint", name, lr)
