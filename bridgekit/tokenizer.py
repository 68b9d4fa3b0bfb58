"""
The tokenizer of a model directory: tokenizer.json through the `tokenizers` library, the chat
template from tokenizer_config.json rendered with jinja2 (as transformers renders it), and every
token id that ends a generation.

    tok = Tokenizer("path/to/model_dir")
    ids = tok.encode_chat([{"role": "user", "content": "Hi"}])   # the chat template, then ids
"""
import json
import signal
import threading
from pathlib import Path

from bridgekit.checks import read_json_object

# A chat template is code from the model directory. It runs in jinja2's sandbox (no attribute outside
# plain data) and bounded: range() yields at most RANGE_BUDGET items over one rendering (nested loops
# that would run for hours fail at once), and in the main thread a rendering stops after
# RENDER_SECONDS (any other endless work); a chat prompt renders in milliseconds.
RANGE_BUDGET = 100_000
RENDER_SECONDS = 10


class Tokenizer:
    """tokenizer.json through the `tokenizers` library, plus the chat template and the EOS ids."""

    def __init__(self, model_dir, config=None):
        from tokenizers import Tokenizer as HFTokenizer
        model_dir = Path(model_dir)
        path = model_dir / "tokenizer.json"
        if not path.exists():
            raise FileNotFoundError(f"{model_dir}: no tokenizer.json")
        try:
            self.tok = HFTokenizer.from_file(str(path))
        except Exception as e:  # the library's own error type, for any malformed file
            raise ValueError(f"{path}: not a tokenizer the tokenizers library reads ({one_line(e)})") from None
        tc_path = model_dir / "tokenizer_config.json"
        self.tokenizer_config = read_json_object(tc_path, "tokenizer settings") if tc_path.exists() else {}
        self.chat_template, self.template_source = self.tokenizer_config.get("chat_template"), tc_path
        if isinstance(self.chat_template, list):  # some configs hold several named templates
            self.chat_template = {t.get("name"): t.get("template") for t in self.chat_template
                                  if isinstance(t, dict)}.get("default")
        if self.chat_template is None and (model_dir / "chat_template.jinja").exists():
            self.template_source = model_dir / "chat_template.jinja"
            self.chat_template = self.template_source.read_text()
        if self.chat_template is not None and not isinstance(self.chat_template, str):
            raise ValueError(f"{self.template_source}: the chat template is not a string")
        self.template = None  # compiled here: a syntax error is found before the weights load
        if self.chat_template:
            self.template = self._guarded(lambda: self._environment().from_string(self.chat_template))
        self.eos_ids = self._eos_ids(model_dir, config)
        if not self.eos_ids:
            raise ValueError(f"{model_dir}: no eos_token_id in config.json, generation_config.json "
                             "or tokenizer_config.json")
        self.eos_id = self.eos_ids[0]

    def special(self, name):
        tok = self.tokenizer_config.get(name)
        return tok.get("content") if isinstance(tok, dict) else tok

    def _eos_ids(self, model_dir, config):
        """Every id that ends a generation: from generation_config, config and tokenizer_config."""
        ids = []
        gen_path = model_dir / "generation_config.json"
        sources = [read_json_object(gen_path, "generation settings").get("eos_token_id") if gen_path.exists() else None,
                   config.eos_token_id if config is not None else None]
        eos_text = self.special("eos_token")
        if eos_text is not None:
            sources.append(self.tok.token_to_id(eos_text))
        for s in sources:
            for i in (s if isinstance(s, list) else [s]):
                if i is not None and (isinstance(i, bool) or not isinstance(i, int)):
                    raise ValueError(f"{model_dir}: an eos_token_id is not a token id: {i!r}")
                if i is not None and i not in ids:
                    ids.append(i)
        return ids

    def encode(self, text, add_special_tokens=True):
        return self.tok.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids, skip_special_tokens=True):
        return self.tok.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def encode_chat(self, messages):
        """The ids of a chat rendered with the template, ready for the assistant's turn.

        No special tokens are added on top: the template writes every one the model expects.
        """
        return self.encode(self.chat(messages), add_special_tokens=False)

    def chat(self, messages, add_generation_prompt=True):
        """Render the chat template (jinja2, sandboxed, the same environment settings as HF; bounded)."""
        if not self.chat_template:
            raise ValueError("this tokenizer has no chat template; use chat=False")
        specials = {k: self.special(k) for k in ("bos_token", "eos_token", "pad_token", "unk_token")}
        self.range_left = RANGE_BUDGET
        return self._guarded(lambda: self.template.render(
            messages=messages, add_generation_prompt=add_generation_prompt, **specials), RENDER_SECONDS)

    def _environment(self):
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message):
            raise ValueError(message)

        def bounded_range(*args):
            items = range(*args)
            self.range_left -= len(items)
            if self.range_left < 0:
                raise ValueError(f"range() yields more than {RANGE_BUDGET:,} items in one rendering")
            return items
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                            extensions=["jinja2.ext.loopcontrols"])
        env.filters["tojson"] = lambda x, indent=None: json.dumps(x, ensure_ascii=False, indent=indent)
        env.globals.update(raise_exception=raise_exception, range=bounded_range)
        return env

    def _guarded(self, work, seconds=None):
        """work() (compiling or rendering the template); whatever it raises, one ValueError naming the
        template's file. seconds: stop it then (in the main thread, where a signal can)."""
        timed = seconds is not None and threading.current_thread() is threading.main_thread()
        if timed:
            def expired(signum, frame):
                raise TimeoutError(f"the rendering ran past {seconds} s")
            previous = signal.signal(signal.SIGALRM, expired)
            signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            return work()
        except Exception as e:  # the template is the model directory's code: any error is its error
            raise ValueError(f"{self.template_source}: chat template: {one_line(e)}") from None
        finally:
            if timed:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)


def one_line(e):
    """An exception's message on one line (jinja2's and the tokenizers library's may hold several)."""
    return " ".join(str(e).split()) or type(e).__name__
