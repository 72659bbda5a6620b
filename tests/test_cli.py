"""The command line lists its commands and turns bad input into one-line errors with exit code 2 (run in this
process; the console script's own process is tested in tests/test_package.py)."""
import contextlib
import io
from types import SimpleNamespace

from padlib import cli


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(args))
        except SystemExit as e:  # argparse's --help and usage errors
            code = e.code
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def test_help_lists_commands():
    out = run("--help")
    assert out.returncode == 0
    for command in ("models", "book", "bench", "train", "train-detector"):
        assert command in out.stdout


def test_models_lists_the_offline_zoo():
    out = run("models")
    assert out.returncode == 0 and "tf_efficientnet_lite2" in out.stdout and "mobilenet_v2" in out.stdout


def test_unknown_chapter_is_a_clean_error():
    out = run("book", "--only", "42")
    assert out.returncode == 2
    assert out.stderr.startswith("error: no chapter matches '42'")
    assert "Traceback" not in out.stderr


def test_book_refuses_to_empty_a_folder_it_did_not_make(tmp_path):
    mine = tmp_path / "my_site"
    (mine / "html").mkdir(parents=True)
    (mine / "html" / "notes.txt").write_text("mine")
    out = run("book", "--build-only", "--out", str(mine))
    assert out.returncode == 2 and "not made by padlib" in out.stderr and "Traceback" not in out.stderr
    assert (mine / "html" / "notes.txt").read_text() == "mine"


def test_book_build_only_names_the_chapters_not_executed_yet(tmp_path):
    out = run("book", "--build-only", "--out", str(tmp_path / "fresh"))
    assert out.returncode == 2 and "not executed yet" in out.stderr and "01_detecting_pans" in out.stderr
    assert (tmp_path / "fresh" / ".padlib-build").exists()  # a new folder becomes a padlib build folder
