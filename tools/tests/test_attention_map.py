"""tools/attention_map.py: its arguments are refused in one line before the model loads (the map
itself is drawn in tests/scripts/test_02_sample.py)."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import attention_map  # noqa: E402
import sample  # noqa: E402


@pytest.fixture
def no_model(monkeypatch):
    monkeypatch.setattr(sample, "setup", lambda args: pytest.fail("loaded the model before checking the arguments"))


def test_more_than_one_prompt_is_refused_not_dropped(tmp_path, no_model):
    with pytest.raises(ValueError, match="the map draws one prompt's group, got 2 prompts"):
        attention_map.main(["--prompt", "a", "--prompt", "b", "--out", str(tmp_path / "m.png")])


@pytest.mark.parametrize("name, needle", [
    ("m", "ends in .png, .pdf, .svg"),        # matplotlib would write m.png
    ("m.txt", "ends in .png, .pdf, .svg"),
    ("no/m.png", "does not exist"),
])
def test_a_bad_figure_name_is_refused_before_the_model_loads(tmp_path, no_model, name, needle):
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match=needle):
        attention_map.main(["--prompt", "a", "--out", str(tmp_path / name)])
