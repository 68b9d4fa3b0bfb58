"""experiments/bench/once.sh, sourced by experiments/bench/speed.sh and experiments/bench/speed_machine.sh: a stage's file is written whole
or not at all and is skipped once written; a folder measured on one machine refuses another."""
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def sh(script, cwd, env=None):
    return subprocess.run(["bash", "-c", f"source {ROOT / 'experiments' / 'bench' / 'once.sh'}; {script}"], cwd=cwd,
                          capture_output=True, text=True, env=env)


def test_once_writes_the_file_whole_and_skips_it_when_run_again(tmp_path):
    r = sh("once out.md echo first", tmp_path)
    assert r.returncode == 0 and (tmp_path / "out.md").read_text() == "first\n"
    r = sh("once out.md echo second", tmp_path)
    assert "out.md: done" in r.stdout and (tmp_path / "out.md").read_text() == "first\n"


def test_a_stage_that_fails_leaves_no_file_and_runs_again(tmp_path):
    r = sh("set -e; once out.md bash -c 'echo half; exit 3'", tmp_path)
    assert r.returncode == 3 and not (tmp_path / "out.md").exists()
    assert sh("once out.md echo whole", tmp_path).returncode == 0
    assert (tmp_path / "out.md").read_text() == "whole\n"


def test_a_folder_measured_on_another_machine_is_refused(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python").write_text("#!/usr/bin/env bash\necho 'CPU B, 2 cores'\n")
    (fake / "python").chmod(0o755)
    env = {"PATH": f"{fake}:/usr/bin:/bin"}
    res = tmp_path / "res"
    res.mkdir()
    assert sh(f"same_machine {res}", tmp_path, env).returncode == 0            # first run: written
    assert (res / "machine.txt").read_text() == "CPU B, 2 cores\n"
    assert sh(f"same_machine {res}", tmp_path, env).returncode == 0            # the same machine again
    (res / "machine.txt").write_text("CPU A, 2 cores\n")
    r = sh(f"same_machine {res}; echo went on", tmp_path, env)
    assert r.returncode == 2 and "went on" not in r.stdout
    assert "holds measurements of CPU A, 2 cores, and this is CPU B, 2 cores" in r.stderr
    assert (res / "machine.txt").read_text() == "CPU A, 2 cores\n"             # left as it was
