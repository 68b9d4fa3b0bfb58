"""Nothing lost, nothing silent (beside test_3_nothing_lost.py): a report's --check checks the stored
summaries it reads, and not where the files were read from."""
import json
import shutil
import sys
from pathlib import Path

import pytest

from bridgekit import result_files

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments" / "studies"))  # the report writers
import report  # noqa: E402
import siblings_report  # noqa: E402


def test_a_stored_summary_that_contradicts_the_counts_is_named(tmp_path):
    data = json.loads((ROOT / "experiments" / "results" / "repro" / "base.json").read_text())
    result_files.check_summaries(data, "base.json")  # the committed file agrees with itself
    data["results"][0]["summary"]["accuracy"]["mean"] = 0.589
    (tmp_path / "base.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"base.json: width 1: summary.accuracy.mean is 0.589, but its per-problem "
                                         r"records give 0.\d+"):
        result_files.read_result(tmp_path / "base.json")
    del data["results"][1]["summary"]["maj@2"]
    with pytest.raises(ValueError, match="width 2: summary lacks 'maj@2'"):
        result_files.check_summaries(data | {"results": data["results"][1:]}, "x.json")


def copy_study(tmp_path, name):
    res = tmp_path / name
    shutil.copytree(ROOT / "experiments" / "results" / name, res)
    return res


def test_report_check_finds_a_changed_summary_and_passes_an_unchanged_copy(tmp_path):
    res = copy_study(tmp_path, "headroom")
    argv = ["--study", "headroom", "--results", str(res), "--check"]
    assert report.main(argv) == 0  # the section says the same, wherever its files were read from
    data = json.loads((res / "seed0_bridge.json").read_text())
    data["results"][2]["summary"]["accuracy"]["mean"] -= 0.4
    (res / "seed0_bridge.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=f"{res / 'seed0_bridge.json'}: width 4: summary.accuracy.mean is"):
        report.main(argv)


def test_siblings_report_checks_the_stored_summaries(tmp_path):
    res = copy_study(tmp_path, "siblings")
    siblings_report.load(res)
    data = json.loads((res / "base.json").read_text())
    data["results"][0]["summary"]["valid"]["mean"] = 0.5
    (res / "base.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="base.json: width 1: summary.valid.mean is 0.5"):
        siblings_report.load(res)
