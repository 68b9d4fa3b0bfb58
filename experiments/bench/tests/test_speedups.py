"""experiments/bench/speedups.py: each variant switches off what it names, and the table is its JSON."""
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bridgekit import fast

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "experiments" / "bench"))
import speedups  # noqa: E402


def test_each_variant_switches_off_a_keyword_fast_sample_has():
    keywords = inspect.signature(fast.sample).parameters
    for variant, patch in speedups.PATCHES.items():
        if patch.startswith("fast.sample = functools.partial"):
            name = patch.split("partial(fast.sample, ")[1].split("=")[0]
            assert name in keywords and keywords[name].default is True, variant


def test_the_launcher_applies_the_patch_before_the_script_runs(tmp_path):
    script = tmp_path / "show.py"
    script.write_text("import sys\nfrom bridgekit import fast\nprint(fast.sample.keywords, sys.argv[1:])\n")
    cmd = speedups.launcher(speedups.PATCHES["rows stay"], [str(script), "--x", "1"], ROOT)
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "{'drop_rows': False} ['--x', '1']"


def data(machine="cpu A", rows=(("w", "all on", 10.0), ("w", "packed off", 15.0))):
    return dict(machine=machine, threads=2, torch="2.13.0", git_commit="abcdef0123", python="3.11",
                rows=[dict(workload=w, variant=v, seconds=s) for w, v, s in rows])


def test_the_table_is_the_json_with_each_ratio_to_all_on(tmp_path):
    after = tmp_path / "after.json"
    after.write_text(json.dumps(data()))
    before = tmp_path / "before.json"
    before.write_text(json.dumps(data(rows=[("w", "before (1234567), all on", 12.5)])))
    text = speedups.section(after, before)
    assert "| w | all on | 10.0 |  |" in text and "| w | packed off | 15.0 | 1.50 |" in text
    assert "| w | before (1234567), all on | 12.5 | 1.25 |" in text and "commit abcdef0" in text
    doc = tmp_path / "speed.md"
    doc.write_text(f"a\n{speedups.BEGIN}\nold\n{speedups.END}\nb\n")
    args = ["--doc", str(doc), "--results", str(after), "--before", str(before)]
    assert speedups.main(args + ["--check"]) == 1
    assert speedups.main(args) == 0 and speedups.main(args + ["--check"]) == 0
    assert doc.read_text() == "a\n" + text + "\nb\n"


def test_before_and_after_on_different_machines_is_an_error():
    with pytest.raises(ValueError, match="different machines"):
        speedups.table(data(), data(machine="cpu B"))


def test_a_run_past_the_timeout_is_stopped_and_shown_as_at_least_that_long(tmp_path):
    script = tmp_path / "evaluate.py"
    script.write_text("import time\ntime.sleep(30)\n")
    assert speedups.measure([str(script)], "all on", tmp_path, ROOT, timeout=1) is None
    d = data(rows=[("w", "all on", 10.0), ("w", "--compile", None)])
    d["timeout"] = 400
    assert "| w | --compile | > 400 | > 40.00 |" in speedups.table(d)


def test_the_committed_table_is_what_the_committed_measurements_give():
    assert speedups.main(["--doc", str(ROOT / "docs" / "speed.md"), "--check"]) == 0
