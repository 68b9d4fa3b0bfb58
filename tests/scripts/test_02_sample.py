"""The sampler: grouped rows, per-row EOS, seeds, sampling knobs, and the CLI's bad-input errors."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings, strategies as st

import sample as sample_cli
from bridgekit.checkpoint import save_bridge
from bridgekit.checks import check_sample_call
from model import load_model
from sample import generate, sample, sample_from, sample_next, token_logprobs, uniforms
from tiny import add_random_bridge, make_tiny_model

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import attention_map  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path, _ = make_tiny_model(tmp_path_factory.mktemp("llama"), "llama", seed=3)
    model, tok = load_model(str(path))
    return model, tok, path


def prompts_ids(seed, lengths):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(3, 259, (n,), generator=g).tolist() for n in lengths]


def test_rows_are_grouped_by_prompt_and_every_row_stops_at_its_first_eos(tiny):
    model, tok, _ = tiny
    eos = [5, 6, 7, 8, 9, 10, 11, 12]  # many EOS ids so that rows finish at different steps
    r = sample(model, prompts_ids(0, [4, 9]), eos, width=5, max_new_tokens=30,
               generator=torch.Generator().manual_seed(1))
    assert r.tokens.shape[0] == 10 and r.alive.shape == r.tokens.shape
    for row, alive in zip(r.tokens[:, r.prompt_len:], r.alive[:, r.prompt_len:]):
        hits = torch.isin(row, torch.tensor(eos)).nonzero()
        if len(hits):  # alive up to and including the first EOS, dead after it
            first = hits[0].item()
            assert alive[:first + 1].all() and not alive[first + 1:].any()
        else:
            assert alive.all()
    assert not r.alive[:, r.prompt_len:].all()  # some row did stop early
    # prompt columns: left padding is dead, and rows of one group share their prompt
    assert r.alive[:5, :r.prompt_len - 4].logical_not().all()
    assert (r.tokens[:5, :r.prompt_len] == r.tokens[0, :r.prompt_len]).all()


def test_same_seed_gives_the_same_text_and_temperature_zero_ignores_the_seed(tiny):
    model, tok, _ = tiny
    run = dict(width=3, max_new_tokens=12)
    assert generate(model, tok, ["hi", "a longer prompt"], seed=5, **run) == \
        generate(model, tok, ["hi", "a longer prompt"], seed=5, **run)
    assert generate(model, tok, ["hi"], seed=5, **run) != generate(model, tok, ["hi"], seed=6, **run)
    greedy = [generate(model, tok, ["hi"], temperature=0, seed=s, **run) for s in (0, 1, 2)]
    assert greedy[0] == greedy[1] == greedy[2]
    assert len(set(greedy[0][0])) == 1  # greedy rows of one group (no Bridge) are identical


def test_first_tokens_differ_across_rows_on_uniform_logits(tmp_path):
    """The first token is sampled independently in every row, not once and broadcast.

    With all-zero logits over 272 tokens, 16 rows agreeing by chance has probability 272^-15.
    """
    path, _ = make_tiny_model(tmp_path, "llama")
    model, _ = load_model(str(path))
    torch.nn.init.zeros_(model.lm_head.weight)
    r = sample(model, [[5, 6, 7]], [2], width=16, max_new_tokens=1,
               generator=torch.Generator().manual_seed(0))
    assert r.tokens[:, -1].unique().numel() > 1


@pytest.mark.parametrize("bad,needle", [(dict(prompts=[[]]), "at least one token"),
                                        (dict(prompts=[]), "at least one token"),
                                        (dict(max_new_tokens=0), "max_new_tokens"),
                                        (dict(width=0), "width")])
def test_a_sample_call_with_impossible_arguments_is_refused_before_it_runs(tiny, bad, needle):
    model, *_ = tiny
    args = dict(prompts=[[5, 6]], width=2, max_new_tokens=3) | bad
    with pytest.raises(ValueError, match=needle):  # what the commands check before they call sample()
        check_sample_call(model, args.pop("prompts"), **args)


@pytest.mark.parametrize("ignore_eos", [False, True])
def test_max_new_tokens_is_respected(tiny, ignore_eos):
    model, tok, _ = tiny
    r = sample(model, prompts_ids(1, [3]), [2, 5, 6, 7], width=4, max_new_tokens=7,
               generator=torch.Generator().manual_seed(0), ignore_eos=ignore_eos)
    assert r.tokens.shape[1] - r.prompt_len <= 7
    if ignore_eos:  # benchmarks: exactly max_new_tokens live tokens in every row
        assert r.tokens.shape[1] - r.prompt_len == 7 and r.alive.all()


def test_sampling_draws_from_the_given_distribution():
    """Inverse-CDF sampling: frequencies match the probabilities; zero-probability never drawn."""
    probs = torch.tensor([0.5, 0.25, 0.0, 0.15, 0.1])
    picked = sample_from(probs.repeat(40000, 1), uniforms(40000, torch.Generator().manual_seed(0), "cpu"))
    freq = torch.bincount(picked, minlength=5) / 40000
    assert freq[2] == 0 and (freq - probs).abs().max() < 0.01  # 0.01 = 4 standard deviations


@given(seed=st.integers(0, 2**16), k=st.integers(1, 6))
def test_top_k_samples_only_among_the_k_largest_logits(seed, k):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(64, 20, generator=g)
    picked, logp = sample_next(logits, uniforms(64, g, "cpu"), temperature=1.5, top_k=k)
    allowed = logits.topk(k, dim=-1).indices
    assert (allowed == picked[:, None]).any(dim=1).all()
    # the log-prob recorded is that of the distribution drawn from: the top k at temperature 1.5
    kept = (logits / 1.5).masked_fill(logits < logits.topk(k, dim=-1).values[:, -1:], float("-inf"))
    assert torch.allclose(logp, kept.log_softmax(-1).gather(-1, picked[:, None]).squeeze(-1), atol=1e-6)
    assert torch.equal(logp, token_logprobs(logits, picked, temperature=1.5, top_k=k))


@given(seed=st.integers(0, 2**16), top_p=st.floats(0.05, 0.95))
def test_top_p_keeps_the_smallest_set_reaching_p(seed, top_p):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(64, 20, generator=g) * 3
    picked, _ = sample_next(logits, uniforms(64, g, "cpu"), top_p=top_p)
    probs = logits.softmax(-1)
    p_picked = probs.gather(-1, picked[:, None])
    mass_above = (probs * (probs > p_picked)).sum(-1)  # probability of strictly likelier tokens
    assert (mass_above < top_p + 1e-6).all()


def test_top_k_one_and_tiny_top_p_are_greedy(tiny):
    model, tok, _ = tiny
    run = dict(width=2, max_new_tokens=6, seed=3)
    greedy = generate(model, tok, ["abc"], temperature=0, **run)
    assert generate(model, tok, ["abc"], top_k=1, **run) == greedy
    assert generate(model, tok, ["abc"], top_p=1e-9, **run) == greedy


# --- the command line: bad input gives one clear line and a non-zero exit ------------------

def run_cli(*args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(ROOT / "sample.py"), *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)


def test_cli_prints_every_answer_of_the_group_and_json(tiny, capsys):
    *_, path = tiny
    sample_cli.main(["--model", str(path), "--width", "3", "--max-new-tokens", "5", "--prompt", "hi"])
    text = capsys.readouterr().out
    assert all(f"--- answer {i}/3" in text for i in (1, 2, 3))
    sample_cli.main(["--model", str(path), "--width", "2", "--max-new-tokens", "4", "--json",
                     "--prompt", "a", "--prompt", "bb"])
    data = json.loads(capsys.readouterr().out)
    assert data["width"] == 2 and [len(r["responses"]) for r in data["results"]] == [2, 2]
    assert data["settings"]["top_k"] == 0 and data["settings"]["temperature"] == 1.0
    # --fast runs the speed-ups: the same answers as the default naive sampler
    args = ["--model", str(path), "--width", "3", "--max-new-tokens", "6", "--json", "--prompt", "a", "--seed", "4"]
    sample_cli.main(args)
    naive = json.loads(capsys.readouterr().out)
    sample_cli.main(args + ["--fast"])
    fast_run = json.loads(capsys.readouterr().out)
    assert fast_run["results"] == naive["results"] and fast_run["settings"]["fast"] and not naive["settings"]["fast"]


def corrupt_model(path):
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[:1000])


def unknown_arch(path):
    cfg = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**cfg, "model_type": "mamba"}))


BAD = {  # name: (extra CLI args, change to a copy of the model directory, what the error must mention)
    "width<1": (["--width", "0"], None, "width"),
    "temperature<0": (["--temperature", "-0.5"], None, "temperature"),
    "temperature=inf": (["--temperature", "inf"], None, "finite"),  # would draw uniformly
    "max-new-tokens=0": (["--max-new-tokens", "0"], None, "--max-new-tokens must be >= 1"),
    "no-chat-without-prompt": (["--no-chat"], None, "--no-chat applies to --prompt"),
    "top-p=0": (["--top-p", "0"], None, "top-p"),
    "top-p>1": (["--top-p", "1.5"], None, "top-p"),
    "prompt>context": (["--prompt", "x" * 300], None, "context"),
    "missing-model": (None, None, "no-such-dir"),
    "unknown-arch": ([], unknown_arch, "mamba"),
    "corrupt-safetensors": ([], corrupt_model, "safetensors"),
}


@pytest.mark.parametrize("case", BAD)
def test_cli_bad_input_is_one_clear_error(tiny, tmp_path, case):
    """In-process: every bad input is a ValueError / FileNotFoundError with a clear message, which
    cli.run turns into one line and exit code 1 (the subprocess test below)."""
    args, change, needle = BAD[case]
    path = tiny[2]
    if args is None:
        args = ["--model", str(tmp_path / "no-such-dir")]
    else:
        if change:
            path = Path(shutil.copytree(path, tmp_path / "m"))
            change(path)
        args = ["--model", str(path), "--max-new-tokens", "4", *args]
    with pytest.raises((ValueError, FileNotFoundError), match=needle):
        sample_cli.main(args)


def test_cli_bad_input_is_one_line_and_a_nonzero_exit(tiny, tmp_path):
    path = Path(shutil.copytree(tiny[2], tmp_path / "m"))
    corrupt_model(path)
    out = run_cli("--model", str(path), "--max-new-tokens", "4")
    lines = out.stderr.strip().splitlines()  # progress lines (e.g. which model) may come first
    assert out.returncode == 1 and lines[-1].startswith("error:") and "safetensors" in lines[-1]
    assert "Traceback" not in out.stderr, out.stderr


@pytest.fixture(scope="module")
def compare_blocks(tiny, tmp_path_factory):
    """A random non-zero Bridge file and a P-Match file for the tiny model."""
    _, _, path = tiny
    out = tmp_path_factory.mktemp("blocks")
    for kind in ("bridge", "pmatch"):
        model, _ = load_model(str(path))
        save_bridge(add_random_bridge(model, seed=5, scale=2.0, kind=kind), out / f"{kind}.safetensors")
    return out / "bridge.safetensors", out / "pmatch.safetensors"


def test_compare_self_samples_the_same_random_numbers_each_row_reading_only_itself(tiny, compare_blocks, capsys):
    *_, path = tiny
    bridge, _ = compare_blocks
    common = ["--model", str(path), "--bridge", str(bridge), "--width", "4", "--max-new-tokens", "8",
              "--prompt", "ab", "--seed", "2"]
    sample_cli.main(common + ["--json", "--compare", "self"])
    both = json.loads(capsys.readouterr().out)["results"][0]
    sample_cli.main(common + ["--json"])
    assert json.loads(capsys.readouterr().out)["results"][0]["responses"] == both["responses"]
    model, tok = load_model(str(path), bridge=str(bridge))
    ids = [tok.encode_chat([{"role": "user", "content": "ab"}])]
    own = sample(model, ids, tok.eos_ids, width=4, max_new_tokens=8, path="self",
                 generator=torch.Generator().manual_seed(2)).completions()
    assert both["self"]["responses"] == [tok.decode(c) for c in own]
    assert both["self"]["responses"] != both["responses"]  # these blocks do move the answers
    sample_cli.main(common + ["--compare", "self"])
    text = capsys.readouterr().out
    changed = sum(a != b for a, b in zip(both["responses"], both["self"]["responses"]))
    assert text.count("CHANGED") == changed and text.count("reading only itself: the same") == 4 - changed


@pytest.mark.parametrize("args,needle", [
    (["--width", "1"], "--width >= 2"),
    (["--no-bridge"], "drop --no-bridge"),
    (["--bridge", "PMATCH"], "pmatch blocks, not Bridge"),
    ([], "no Bridge blocks"),
])
def test_compare_without_bridge_blocks_or_siblings_is_one_line_before_loading(tiny, compare_blocks, args, needle,
                                                                               monkeypatch):
    *_, path = tiny
    args = [str(compare_blocks[1]) if a == "PMATCH" else a for a in args]
    monkeypatch.setattr(sample_cli, "setup", lambda args: pytest.fail("the model loaded before the check"))
    with pytest.raises(ValueError, match=needle):
        sample_cli.main(["--model", str(path), "--prompt", "hi", "--compare", "self", *args])


def test_bf16_sampling_runs_on_cpu(tiny):
    *_, path = tiny
    model, tok = load_model(str(path), dtype=torch.bfloat16)
    assert model.lm_head.weight.dtype == torch.bfloat16
    out = generate(model, tok, ["hi", "hello there"], width=3, max_new_tokens=6, seed=0)
    assert [len(group) for group in out] == [3, 3]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (never required)")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_cuda_logits_match_cpu_and_sampling_runs(tiny, dtype):
    *_, path = tiny
    cpu, tok = load_model(str(path))
    gpu, _ = load_model(str(path), device="cuda", dtype=dtype)
    x = torch.randint(3, 259, (4, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = cpu(x)
        diff = (gpu(x.cuda()).float().cpu() - ref).abs().max()
    assert diff < (1e-4 if dtype == torch.float32 else 0.05 * ref.abs().max())
    assert [len(g) for g in generate(gpu, tok, ["hi"], width=4, max_new_tokens=5)] == [4]


# --- per-group generators; several groups per prompt share one prefill ---------------------------

@pytest.fixture(scope="module")
def bridged64(tiny):
    """The tiny model in fp64 with random, non-zero Bridge blocks (so groups really interact)."""
    _, _, path = tiny
    model, tok = load_model(str(path), dtype=torch.float64)
    return add_random_bridge(model)


def group_generators(seed, n):
    return [torch.Generator().manual_seed(seed * 1000 + i) for i in range(n)]


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**16), width=st.integers(1, 4), mine=st.integers(1, 6), other=st.integers(1, 12))
def test_a_groups_answers_do_not_depend_on_the_other_prompts_in_its_batch(bridged64, seed, width, mine, other):
    """With its own generator, a group samples the same tokens alone and beside another prompt of
    another length (so other padding, other finishing steps): what one process samples for a group
    does not depend on which groups the step gave it."""
    eos = list(range(3, 40))
    a, b = prompts_ids(seed, [mine, other])
    alone = sample(bridged64, [a], eos, width=width, max_new_tokens=10, generator=group_generators(seed, 1))
    both = sample(bridged64, [b, a], eos, width=width, max_new_tokens=10,
                  generator=[torch.Generator().manual_seed(seed + 1), *group_generators(seed, 1)])
    S = alone.tokens.shape[1] - alone.prompt_len
    assert torch.equal(alone.tokens[:, alone.prompt_len:], both.tokens[width:, both.prompt_len:][:, :S])
    assert not both.alive[width:, both.prompt_len + S:].any()  # nothing more after the answers alone ended
    live = alone.alive[:, alone.prompt_len:]
    assert torch.equal(live, both.alive[width:, both.prompt_len:][:, :S])
    assert torch.allclose(alone.logprobs[live], both.logprobs[width:, :S][live], atol=1e-10)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16), width=st.integers(1, 3), groups=st.integers(1, 3),
       lengths=st.lists(st.integers(1, 8), min_size=1, max_size=3))
def test_groups_per_prompt_equals_repeating_the_prompt(bridged64, seed, width, groups, lengths):
    """R groups from one prefill == the prompt listed R times (R prefills), group by group."""
    eos = list(range(3, 30))
    prompts = prompts_ids(seed, lengths)
    n = len(prompts) * groups
    a = sample(bridged64, prompts, eos, width=width, max_new_tokens=10, groups_per_prompt=groups,
               generator=group_generators(seed, n))
    repeated = [p for p in prompts for _ in range(groups)]
    b = sample(bridged64, repeated, eos, width=width, max_new_tokens=10, generator=group_generators(seed, n))
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.alive, b.alive)


def test_a_generator_list_needs_one_per_group(tiny):
    model, _, _ = tiny
    with pytest.raises(ValueError, match="one each"):
        check_sample_call(model, [[5, 6]], width=2, max_new_tokens=4, groups_per_prompt=3,
                          generator=group_generators(0, 1))


# --- what Bridge attends to (tools/attention_map.py) ----------------------------------------------

def test_recorded_attention_is_a_distribution_over_live_siblings_at_every_decode_step(bridged64):
    records, remove = attention_map.record_bridge(bridged64)
    r = sample(bridged64, prompts_ids(4, [5]), [2], width=3, max_new_tokens=6,
               generator=torch.Generator().manual_seed(0), ignore_eos=True)
    remove()
    layers = len(bridged64.model.layers)
    assert sorted(records) == list(range(layers))
    for steps in records.values():
        assert len(steps) == r.tokens.shape[1] - r.prompt_len - 1  # one per decode forward, none for prefill
        for weights, ratio in steps:
            assert weights.shape == (3, 3) and torch.allclose(weights.sum(-1), torch.ones(3))
            assert ratio.shape == (3,) and (ratio > 0).all()  # random non-zero blocks do update
    sample(bridged64, prompts_ids(4, [5]), [2], width=3, max_new_tokens=3)
    assert len(records[0]) == len(steps)  # the hooks are gone


def test_the_attention_map_tool_draws_a_bridge(tiny, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    *_, path = tiny
    model, _ = load_model(str(path))
    save_bridge(add_random_bridge(model, seed=1), tmp_path / "b.safetensors")
    common = ["--model", str(path), "--bridge", str(tmp_path / "b.safetensors"), "--prompt", "hi"]
    ratios = attention_map.main([*common, "--width", "3", "--max-new-tokens", "6",
                                 "--out", str(tmp_path / "map.png"), "--layers", "0", "1"])
    assert (tmp_path / "map.png").stat().st_size > 1000 and len(ratios) == len(model.model.layers)
    assert "|update| / |residual| per layer" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"--layers: \[99\]"):
        attention_map.main([*common, "--width", "2", "--max-new-tokens", "3",
                            "--out", str(tmp_path / "x.png"), "--layers", "0", "99"])
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("args, needle", [
    (["--width", "1"], "no siblings"),             # one answer has no siblings
    (["--no-bridge"], "drop --no-bridge"),
    ([], "Bridge checkpoint"),                     # the base model has no Bridge to draw
])
def test_attention_map_without_siblings_or_bridge_is_a_clear_error(tiny, tmp_path, args, needle):
    pytest.importorskip("matplotlib")
    *_, path = tiny
    with pytest.raises(ValueError, match=needle):
        attention_map.main(["--model", str(path), "--prompt", "hi", "--max-new-tokens", "3",
                            "--out", str(tmp_path / "m.png"), *args])
