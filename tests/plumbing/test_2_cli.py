"""cli.py: bad input ends as one line and a non-zero exit, and output paths are checked before the work."""
from pathlib import Path

import pytest

from bridgekit import cli


def test_run_turns_an_os_error_into_one_line_and_exit_1(tmp_path):
    def main():
        (tmp_path / "d").mkdir()
        (tmp_path / "d").write_text("x")  # IsADirectoryError, an OSError like PermissionError
    with pytest.raises(SystemExit) as e:
        cli.run(main)
    assert str(e.value.code).startswith("error: [Errno 21] Is a directory") and "\n" not in str(e.value.code)


def test_output_paths_are_checked_up_front(tmp_path):
    (tmp_path / "file").write_text("")
    cli.check_out_file(tmp_path / "new.json")
    cli.check_out_file(None)
    cli.check_out_dir(tmp_path / "new_dir")
    cli.check_out_dir(tmp_path)
    cli.check_out_dir(tmp_path / "new" / "parents" / "too")  # made with its parents, as training does
    cli.check_figure_out(tmp_path / "fig.PDF", False)
    for check, path, message in [
        (cli.check_out_file, tmp_path, "is a directory"),
        (cli.check_out_file, tmp_path / "no" / "x.json", "does not exist"),
        (cli.check_out_file, tmp_path / "file" / "x.json", "does not exist"),
        (cli.check_out_dir, tmp_path / "file", "is a file, not a directory"),
        (cli.check_out_dir, tmp_path / "file" / "dir", "file is a file, not a directory"),
        (lambda p: cli.check_figure_out(p, True), tmp_path / "fig", "a figure's name ends in .png, .pdf, .svg"),
        (lambda p: cli.check_figure_out(p, True), tmp_path / "fig.jpeg", "a figure's name ends in"),
    ]:
        with pytest.raises(ValueError, match=message) as e:
            check(path)
        assert "\n" not in str(e.value)
        assert not (tmp_path / "new_dir").exists() and not (tmp_path / "new").exists()  # a check makes nothing


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_directory_that_refuses_files_is_found_by_trying():
    with pytest.raises(ValueError, match="cannot write in /proc"):
        cli.check_out_file("/proc/results.json")
