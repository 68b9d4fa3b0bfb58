"""--shard (FSDP2 over torch.distributed, gloo on CPU): two processes that each hold half of the
parameters, gradients and AdamW state take the same GRPO step as one process holding everything.

The two processes are started as in tests/scripts/test_06_distributed.py (its helpers and its script mode are
reused): `update` runs GRPO's update() on a saved rollout, `grpo` a whole run.
"""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import test_06_distributed as td  # noqa: E402  (helpers only: spawn, run_one, run_two, two_updates, ...)
from bridgekit.checkpoint import read_state  # noqa: E402
from model import load_model  # noqa: E402
from tiny import SMALL, make_training_model  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_training_model(tmp_path_factory.mktemp("tiny"), seed=5)


def argv(tiny, out, *extra):
    return ["--model", str(tiny), "--out", str(out), "--prompts-per-step", "4", "--width", "3",
            "--train", "all", "--lr", "1e-3", "--lr-new", "1e-2", *SMALL, *extra]


def test_a_sharded_update_equals_the_one_process_update_on_the_same_rollout(tiny, tmp_path):
    # signal on both processes' groups, then (second update) on the first process's only: the
    # second process then runs zero-weight micro-batches to keep the collectives in step
    rollout, _, one = td.rollout_and_one_process_updates(argv(tiny, tmp_path / "unused"), tmp_path)
    two = tmp_path / "two"
    results = td.spawn([td.__file__, "update", str(two), str(rollout),
                        *argv(tiny, tmp_path / "unused", "--shard")], two)
    assert all(code == 0 for code, _ in results), results
    for k in (0, 1):
        td.assert_same_parameters(one, two, f"update{k}.safetensors")


def test_a_process_whose_answers_are_one_token_long_keeps_in_step(tiny, tmp_path):
    """The second process's groups (2 and 3) answer in one token each, the first's in more: both must
    still make the same passes (FSDP2 gathers each layer's weights for every forward and backward),
    or they wait on each other until the spawn's timeout. The update equals one process's."""
    def one_token_answers(r):
        r.alive[6:, r.prompt_len + 1:] = False                  # rows 6-11: groups 2 and 3
    rollout, _, one = td.rollout_and_one_process_updates(argv(tiny, tmp_path / "unused"), tmp_path,
                                                         edit=one_token_answers)
    r, _ = td.load_rollout(rollout)
    assert r.alive[:6, r.prompt_len + 1:].any()                 # the first process's answers are longer
    two = tmp_path / "two"
    results = td.spawn([td.__file__, "update", str(two), str(rollout),
                        *argv(tiny, tmp_path / "unused", "--shard")], two, timeout=120)
    assert all(code == 0 for code, _ in results), results
    for k in (0, 1):
        td.assert_same_parameters(one, two, f"update{k}.safetensors")


@pytest.fixture(scope="module")
def sharded_runs(tiny, tmp_path_factory):
    """One GRPO step on one process; one on two sharded processes, then resumed to step 2."""
    tmp = tmp_path_factory.mktemp("shard")
    one, two = tmp / "one", tmp / "two"
    td.run_one("grpo", argv(tiny, one, "--steps", "1"))
    td.run_two("grpo", tmp / "spy", argv(tiny, two, "--steps", "1", "--shard"))
    shutil.copytree(two / "checkpoint", two / "step1")
    td.run_two("grpo", tmp / "spy_resume", argv(tiny, two, "--steps", "2", "--resume", "--shard"))
    return dict(one=one, two=two)


def test_a_sharded_run_steps_as_one_process(sharded_runs):
    (a,), b = td.log_of(sharded_runs["one"]), td.log_of(sharded_runs["two"])
    assert (a["groups_updated"], a["reward"]) == (b[0]["groups_updated"], b[0]["reward"]) and a["groups_updated"] > 0
    for name in ("model.safetensors", "bridge.safetensors"):
        td.assert_nearly_same_parameters(sharded_runs["one"] / "checkpoint", sharded_runs["two"] / "step1", name, 1e-2)


def test_a_sharded_checkpoint_loads_for_sampling_and_resumed(sharded_runs):
    ckpt = sharded_runs["two"] / "checkpoint"
    assert [r["step"] for r in td.log_of(sharded_runs["two"])] == [0, 1]
    model, _ = load_model(str(ckpt), bridge=str(ckpt / "bridge.safetensors"))  # what sample.py does
    assert model.bridge_config["kind"] == "bridge"
    state = read_state(ckpt / "state.pt")
    assert state["step"] == 1 and state["optimizer_layout"] == "by name"
    done = subprocess.run([sys.executable, "sample.py", "--model", str(ckpt), "--bridge", str(ckpt / "bridge.safetensors"),
                           "--prompt", "hi", "--max-new-tokens", "3", "--width", "2"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_shard_without_torchrun_is_a_one_line_error(tiny, tmp_path):
    done = subprocess.run([sys.executable, "train_grpo.py", *argv(tiny, tmp_path / "x", "--shard")], cwd=ROOT,
                          capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "torchrun --nproc_per_node N" in done.stderr.strip().splitlines()[-1]


def test_a_sharded_warm_up_equals_one_process_and_resumes(tiny, tmp_path):
    argv = lambda out, steps, *extra: ["--model", str(tiny), "--out", str(out), "--problems", "4",
                                       "--samples-per-problem", "4", "--sample-batch", "2", "--groups-per-step", "2",
                                       "--steps", str(steps), *SMALL, *extra]
    td.run_one("sft", argv(tmp_path / "one", 1))
    td.run_two("sft", tmp_path / "spy", argv(tmp_path / "two", 1, "--shard"))
    (a,), (b,) = td.log_of(tmp_path / "one"), td.log_of(tmp_path / "two")
    assert (a["groups"], a["tokens"]) == (b["groups"], b["tokens"]) and b["loss"] == pytest.approx(a["loss"], rel=1e-6)
    td.assert_same_parameters(tmp_path / "one" / "checkpoint", tmp_path / "two" / "checkpoint", "bridge.safetensors")
    td.run_two("sft", tmp_path / "spy2", argv(tmp_path / "two", 2, "--shard", "--resume"))
    assert [r["step"] for r in td.log_of(tmp_path / "two")] == [0, 1]
