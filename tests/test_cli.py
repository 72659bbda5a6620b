"""The command line lists its commands and turns bad input into one-line errors with exit code 2."""
import subprocess
import sys


def run(*args):
    return subprocess.run([sys.executable, "-m", "padlib", *args], capture_output=True, text=True, timeout=300)


def test_help_lists_commands():
    out = run("--help")
    assert out.returncode == 0
    for command in ("models", "book", "bench"):
        assert command in out.stdout


def test_models_lists_the_offline_zoo():
    out = run("models")
    assert out.returncode == 0 and "tf_efficientnet_lite2" in out.stdout and "mobilenet_v2" in out.stdout


def test_unknown_chapter_is_a_clean_error():
    out = run("book", "--only", "42")
    assert out.returncode == 2
    assert out.stderr.startswith("error: no chapter matches '42'")
    assert "Traceback" not in out.stderr
