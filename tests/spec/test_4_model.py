"""The decoder: parity with transformers, strict loading, the KV cache, padding and positions."""
import json

import pytest
import torch
from hypothesis import given, strategies as st
from safetensors.torch import load_file, save_file

from model import Config, KVCache, load_model, rope_inv_freq
from tiny import make_tiny_model

LLAMA3_ROPE = dict(rope_type="llama3", rope_theta=500000.0, factor=8.0, low_freq_factor=1.0,
                   high_freq_factor=4.0, original_max_position_embeddings=32)
VARIANTS = {
    "llama-tied": ("llama", dict(tie_word_embeddings=True)),
    "llama-untied": ("llama", dict(tie_word_embeddings=False)),
    "llama-llama3-rope": ("llama", dict(rope_parameters=LLAMA3_ROPE)),
    "qwen2-bias": ("qwen2", dict(tie_word_embeddings=True)),
    "qwen3-headdim": ("qwen3", dict(head_dim=24)),  # 24 != hidden 64 / 4 heads
}


def tokens_of(seed, n=3, t=40, vocab=259):
    return torch.randint(0, vocab, (n, t), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A small untied Llama shared by the tests that do not care about the architecture."""
    path, hf = make_tiny_model(tmp_path_factory.mktemp("llama"), "llama")
    model, tok = load_model(str(path))
    return model, tok, hf, path


@pytest.mark.parametrize("shard", [False, True], ids=["single", "sharded"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_logits_equal_transformers_fp32(tmp_path, variant, shard):
    arch, overrides = VARIANTS[variant]
    path, hf = make_tiny_model(tmp_path, arch, seed=1, shard=shard, **overrides)
    assert shard == (path / "model.safetensors.index.json").exists()
    model, _ = load_model(str(path))
    x = tokens_of(0, t=60)  # past original_max_position_embeddings=32 of the llama3 variant
    with torch.no_grad():
        diff = (model(x) - hf(x).logits).abs().max().item()
    assert diff < 1e-5


def test_transformers_4x_config_layout_loads_the_same(tmp_path):
    """rope_theta / rope_scaling at top level (transformers 4.x) == rope_parameters (5.x)."""
    path, hf = make_tiny_model(tmp_path, "llama", rope_parameters=LLAMA3_ROPE)
    cfg = json.loads((path / "config.json").read_text())
    rope = cfg.pop("rope_parameters")
    cfg["rope_theta"] = rope.pop("rope_theta")
    cfg["rope_scaling"] = {**rope, "type": rope.pop("rope_type")}  # 4.x files say "type"
    (path / "config.json").write_text(json.dumps(cfg))
    model, _ = load_model(str(path))
    x = tokens_of(1, t=50)
    with torch.no_grad():
        assert (model(x) - hf(x).logits).abs().max() < 1e-5


def test_llama3_inverse_frequencies_equal_transformers():
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    hf_cfg = LlamaConfig(hidden_size=256, num_attention_heads=2, rope_parameters=LLAMA3_ROPE)
    ours = rope_inv_freq(Config.from_dict(hf_cfg.to_dict()))
    theirs, _ = ROPE_INIT_FUNCTIONS["llama3"](hf_cfg, "cpu")
    assert torch.allclose(ours, theirs.float(), rtol=1e-6, atol=0)
    assert not torch.allclose(ours, rope_inv_freq(Config(hidden_size=256, num_attention_heads=2,
                                                         rope_theta=500000.0)))


def test_tied_checkpoint_that_also_stores_lm_head_loads(tmp_path):
    path, hf = make_tiny_model(tmp_path, "llama", tie_word_embeddings=True)
    state = load_file(path / "model.safetensors")
    assert "lm_head.weight" not in state
    state["lm_head.weight"] = state["model.embed_tokens.weight"].clone()
    save_file(state, path / "model.safetensors")
    model, _ = load_model(str(path))
    assert model.lm_head.weight is model.model.embed_tokens.weight
    with torch.no_grad():
        assert (model(tokens_of(2)) - hf(tokens_of(2)).logits).abs().max() < 1e-5


def test_left_padding_gives_the_same_logits_as_no_padding(tiny):
    model, *_ = tiny
    x = tokens_of(3, n=1, t=12)
    padded = torch.cat((torch.zeros(1, 7, dtype=torch.long), x), dim=1)
    alive = torch.cat((torch.zeros(1, 7, dtype=torch.bool), torch.ones(1, 12, dtype=torch.bool)), 1)
    with torch.no_grad():
        assert (model(padded, alive=alive)[:, 7:] - model(x)).abs().max() < 1e-5


@given(seed=st.integers(0, 2**16), lengths=st.lists(st.integers(1, 12), min_size=1, max_size=4),
       chunks=st.lists(st.integers(1, 5), min_size=1, max_size=6))
def test_kv_cached_decoding_equals_the_full_forward(tiny, seed, lengths, chunks):
    """Left-padded prompts of random lengths, fed through the cache in random-sized chunks."""
    model, *_ = tiny
    P, total = max(lengths), max(lengths) + sum(chunks)
    x = tokens_of(seed, n=len(lengths), t=total)
    alive = torch.ones_like(x, dtype=torch.bool)
    for i, n in enumerate(lengths):
        alive[i, :P - n] = False  # left padding
    with torch.no_grad():
        full = model(x, alive=alive)
        cache = KVCache(model.config, len(lengths), total)
        pieces, start = [model(x[:, :P], alive=alive[:, :P], cache=cache)], P
        for c in chunks:
            pieces.append(model(x[:, start:start + c], alive=alive[:, start:start + c], cache=cache))
            start += c
    cached = torch.cat(pieces, dim=1)
    assert (cached - full)[alive].abs().max() < 1e-5


def test_prefill_once_and_copy_equals_prefilling_every_row(tiny):
    model, *_ = tiny
    width, x = 3, tokens_of(4, n=2, t=9)
    alive = torch.ones_like(x, dtype=torch.bool)
    alive[1, :4] = False
    with torch.no_grad():
        once = KVCache(model.config, 2, 12)
        model(x, alive=alive, cache=once)
        once = once.repeat_rows(width)
        every = KVCache(model.config, 2 * width, 12)
        model(x.repeat_interleave(width, 0), width=width, alive=alive.repeat_interleave(width, 0),
              cache=every)
    assert torch.equal(once.alive, every.alive) and torch.equal(once.n_real, every.n_real)
    for a, b in zip(once.k + once.v, every.k + every.v):  # one (N, Hkv, capacity, hd) per layer
        assert (a - b).abs().max() < 1e-6


# --- bad input: one clear error, never a silent wrong answer --------------------------------

def test_missing_model_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        load_model(str(tmp_path / "does-not-exist"))


def test_unknown_architecture_is_a_clear_error(tmp_path):
    path, _ = make_tiny_model(tmp_path, "llama")
    cfg = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**cfg, "model_type": "gpt2"}))
    with pytest.raises(ValueError, match="unknown architecture.*gpt2"):
        load_model(str(path))


def test_unsupported_rope_scaling_names_the_type(tmp_path):
    path, _ = make_tiny_model(tmp_path, "llama")
    cfg = json.loads((path / "config.json").read_text())
    cfg["rope_parameters"] = dict(rope_type="yarn", rope_theta=10000.0, factor=4.0)
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="yarn"):
        load_model(str(path))


@pytest.mark.parametrize("change", ["drop", "extra", "reshape"])
def test_strict_loading_names_the_offending_keys(tmp_path, change):
    path, _ = make_tiny_model(tmp_path, "qwen2")
    state = load_file(path / "model.safetensors")
    key = "model.layers.1.self_attn.k_proj.bias"  # the Qwen2 biases minimal decoders drop
    if change == "drop":
        del state[key]
    elif change == "extra":
        state["model.layers.1.self_attn.o_proj.bias"] = torch.zeros(64)
        key = "model.layers.1.self_attn.o_proj.bias"
    else:
        state[key] = torch.zeros(7)
    save_file(state, path / "model.safetensors")
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        load_model(str(path))


def test_corrupt_safetensors_is_a_clear_error(tmp_path):
    path, _ = make_tiny_model(tmp_path, "llama")
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])  # truncated download
    with pytest.raises(ValueError, match="model.safetensors: not a readable safetensors file"):
        load_model(str(path))


def test_rows_not_divisible_by_width_is_an_error(tiny):
    model, *_ = tiny
    with pytest.raises(ValueError, match="groups of width 4"):
        model(tokens_of(5, n=6, t=3), width=4)


# --- tokenizer -------------------------------------------------------------------------------

def test_tokenizer_round_trip_and_chat_template_match_transformers(tiny):
    from transformers import PreTrainedTokenizerFast
    _, tok, _, path = tiny
    hf_tok = PreTrainedTokenizerFast(tokenizer_file=str(path / "tokenizer.json"))
    text = "Héllo wörld 123 ✓ <|im_end|>"
    assert tok.encode(text) == hf_tok.encode(text)
    assert tok.decode(tok.encode("Héllo wörld 123")) == "Héllo wörld 123"
    messages = [{"role": "user", "content": "What is 2 + 2?"}]
    from jinja2 import Template
    expected = Template(json.loads((path / "tokenizer_config.json").read_text())["chat_template"],
                        trim_blocks=True, lstrip_blocks=True).render(messages=messages,
                                                                      add_generation_prompt=True)
    assert tok.chat(messages) == expected == "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n"
    assert tok.eos_id == 2


@pytest.mark.parametrize("change,needle", [
    (dict(hidden_act="gelu"), "hidden_act"),
    (dict(use_sliding_window=True), "use_sliding_window"),
])
def test_unsupported_config_features_are_refused(tmp_path, change, needle):
    path, _ = make_tiny_model(tmp_path, "qwen2")
    cfg = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**cfg, **change}))
    with pytest.raises(ValueError, match=needle):
        load_model(str(path))


def test_unknown_device_is_a_clear_error(tiny):
    *_, path = tiny
    with pytest.raises(ValueError, match="device"):
        load_model(str(path), device="tpu")


@pytest.mark.parametrize("where", ["tokenizer_config", "jinja_file", "named_list"])
def test_chat_template_is_found_where_transformers_saves_it(tmp_path, where):
    """In tokenizer_config.json (4.x), in chat_template.jinja (newer), or as a list of named ones."""
    from bridgekit.tokenizer import Tokenizer
    path, _ = make_tiny_model(tmp_path, "llama")
    cfg = json.loads((path / "tokenizer_config.json").read_text())
    template = cfg.pop("chat_template")
    if where == "jinja_file":
        (path / "chat_template.jinja").write_text(template)
    elif where == "named_list":
        cfg["chat_template"] = [{"name": "tool_use", "template": "no"}, {"name": "default", "template": template}]
    else:
        cfg["chat_template"] = template
    (path / "tokenizer_config.json").write_text(json.dumps(cfg))
    assert Tokenizer(path).chat([{"role": "user", "content": "hi"}]) == \
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
