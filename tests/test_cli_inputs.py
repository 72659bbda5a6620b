"""Bad command lines fail fast and cleanly: one line on stderr, ``error: ...`` naming the user's flag, value or file,
exit code 2, no traceback, nothing loaded and no user file touched. Results are written all at once (a crash or
Ctrl-C leaves the old file), and Ctrl-C ends a command with one line and exit code 130.

Every command runs in-process through :func:`padlib.cli.main`; whatever would start real work (loading or
building a model, scanning, executing the book) is replaced by a function that fails the test, so a bad value
that slipped past the checks shows up as an AssertionError, not as a slow run."""
from __future__ import annotations

import hashlib
import os
import stat

import pytest

from padlib import cli
from padlib._files import atomic_write
from padlib.chapters import site

WORK = ["load_model", "_load_for_audit", "build_meta_model", "zoo_audit", "ablation_report", "report", "scan_pans",
        "probe_images", "data_free_pans", "mean_kernel_asymmetry", "border_reach"]


@pytest.fixture(autouse=True)
def no_work(monkeypatch):
    """Any real work fails the test: the bad input must be refused before it."""
    def started(*args, **kwargs):
        raise AssertionError("work started before the bad input was refused")

    for name in WORK:
        monkeypatch.setattr(cli, name, started)
    for name in ("execute_chapters", "build_site", "write_sample_report"):
        monkeypatch.setattr(site, name, started)


@pytest.fixture
def files(tmp_path):
    """A user's existing result file, a plain file, and a folder that cannot be written into."""
    (tmp_path / "mine.csv").write_text("layer,channel\nmine,1\n")
    (tmp_path / "mine.json").write_text('{"mine": 1}\n')
    (tmp_path / "notes.txt").write_text("not a folder\n")
    (tmp_path / "locked").mkdir()
    os.chmod(tmp_path / "locked", stat.S_IRUSR | stat.S_IXUSR)
    yield tmp_path
    os.chmod(tmp_path / "locked", stat.S_IRWXU)


def sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def one_line_error(capsys, argv) -> str:
    """Run ``padlib ARGV``; the result must be exit code 2 and exactly one ``error:`` line on stderr."""
    rc = cli.main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line: {err!r}"
    assert err.startswith("error: ")
    return err.strip()


BAD = [  # (command line, what the one line must say); {tmp} is a fresh folder holding the `files` fixture
    (["audit", "mobilenet_v2", "--size", "0"], "--size must be a whole number of pixels >= 8, got 0"),
    (["audit", "mobilenet_v2", "--size", "big"], "--size must be a whole number of pixels >= 8, got big"),
    (["audit", "mobilenet_v2", "--distance", "-5"], "--distance must be a whole number >= 0, got -5"),
    (["kernels", "mobilenet_v2", "--size", "0"], "--size must be a whole number of pixels >= 8, got 0"),
    (["kernels", "mobilenet_v2", "--tau", "-1"], "--tau must be a number >= 0, got -1"),
    (["kernels", "mobilenet_v2", "--tau", "nan"], "--tau must be a number >= 0, got nan"),
    (["kernels", "mobilenet_v2", "--seed", "-1"], "--seed must be a whole number from 0 to 4294967295, got -1"),
    (["scan", "mobilenet_v2", "--seed", "-1"], "--seed must be a whole number from 0 to 4294967295, got -1"),
    (["scan", "mobilenet_v2", "--images", "0"], "--images must be a whole number >= 1, got 0"),
    (["scan", "mobilenet_v2", "--images", "2.5"], "--images must be a whole number >= 1, got 2.5"),
    (["scan", "mobilenet_v2", "--size", "4"], "--size must be a whole number of pixels >= 8, got 4"),
    (["scan", "mobilenet_v2", "--fpr", "2"], "--fpr must be a number between 0 and 1 (exclusive), e.g. 0.01, got 2"),
    (["scan", "mobilenet_v2", "--fpr", "0"], "--fpr must be a number between 0 and 1"),
    (["scan", "mobilenet_v2", "--batch-size", "0"], "--batch-size must be a whole number >= 1, got 0"),
    (["scan", "mobilenet_v2", "--out", "{tmp}/mine.csv"], "--out file '{tmp}/mine.csv' already exists; pass --force"),
    (["scan", "mobilenet_v2", "--out", "{tmp}/mine.json"], "--out file '{tmp}/mine.json' already exists"),
    (["scan", "mobilenet_v2", "--out", "{tmp}/pans.txt"], "--out must end in .csv or .json"),
    (["scan", "mobilenet_v2", "--image-dir", "{tmp}/no_photos"], "--image-dir '{tmp}/no_photos' does not exist"),
    (["ablate", "mobilenet_v2", "--images", "0"], "--images must be a whole number >= 1, got 0"),
    (["ablate", "mobilenet_v2", "--scan-images", "0"], "--scan-images must be a whole number >= 1, got 0"),
    (["ablate", "mobilenet_v2", "--controls", "0"], "--controls must be a whole number >= 1, got 0"),
    (["ablate", "mobilenet_v2", "--batch-size", "-8"], "--batch-size must be a whole number >= 1, got -8"),
    (["ablate", "mobilenet_v2", "--seed", "-1"], "--seed must be a whole number from 0 to 4294967295, got -1"),
    (["ablate", "mobilenet_v2", "--out", "{tmp}/notes.txt"], "--out folder '{tmp}/notes.txt' is a file"),
    (["ablate", "mobilenet_v2", "--out", "{tmp}/notes.txt/tables"], "'{tmp}/notes.txt' is a file, not a folder"),
    (["ablate", "mobilenet_v2", "--class-index", "{tmp}/none.txt"], "--class-index '{tmp}/none.txt' does not exist"),
    (["report", "mobilenet_v2", "--images", "1"], "--images must be a whole number >= 8, got 1"),
    (["report", "mobilenet_v2", "--seed", "-1"], "--seed must be a whole number from 0 to 4294967295, got -1"),
    (["report", "mobilenet_v2", "--positions", "2"],
     "--positions must be 0 (no objects-at-every-position stage) or a whole number from 3 to 15, got 2"),
    (["report", "mobilenet_v2", "--reach", "1"],
     "--reach must be 0 (no border-reach stage) or a whole number of photographs from 2 to 64, got 1"),
    (["report", "mobilenet_v2", "--reach", "many"], "--reach must be 0 (no border-reach stage)"),
    (["report", "mobilenet_v2", "--positions", "16"], "--positions must be 0 (no objects-at-every-position stage)"),
    (["report", "mobilenet_v2", "--positions", "five"], "--positions must be 0 (no objects-at-every-position stage)"),
    (["report", "mobilenet_v2", "--size", "8", "--positions", "9"], "--positions=9: 9 positions do not fit"),
    (["report", "mobilenet_v2", "--out", "{tmp}/missing/r.html"],
     "cannot write --out file '{tmp}/missing/r.html': folder '{tmp}/missing' does not exist"),
    (["report", "mobilenet_v2", "--out", "{tmp}/notes.txt/r.html"], "'{tmp}/notes.txt' is a file, not a folder"),
    (["report", "mobilenet_v2", "--out", "{tmp}/locked/r.html"],
     "cannot write --out file '{tmp}/locked/r.html': no permission to write in folder '{tmp}/locked'"),
    (["zoo-audit", "--workers", "0"], "--workers must be a whole number >= 1, got 0"),
    (["zoo-audit", "--limit", "0"], "--limit must be a whole number >= 1, got 0"),
    (["zoo-audit", "--distance", "-1"], "--distance must be a whole number >= 0, got -1"),
    (["zoo-audit", "--limit", "1", "--out", "{tmp}/zoo.json"], "--out must end in .csv, got '{tmp}/zoo.json'"),
    (["zoo-audit", "--limit", "1", "--out", "{tmp}/mine.csv"], "'{tmp}/mine.csv' already exists; pass --force"),
    (["book", "--build-only", "--out", "{tmp}/notes.txt"], "--out folder '{tmp}/notes.txt' is a file"),
    (["book", "--only", "42", "--out", "{tmp}/site"], "no chapter matches '42'"),
    (["book", "-p", "n_images", "[1", "--out", "{tmp}/site"], "-p n_images '[1': the value is not valid YAML"),
    (["overlap", "craft_vgg16_bn", "--tile", "1"], "--tile must be a whole number of pixels >= 2, got 1"),
    (["overlap", "craft_vgg16_bn", "--tile", "big"], "--tile must be a whole number of pixels >= 2, got big"),
    (["overlap", "craft_vgg16_bn", "--tolerance", "0"],
     "--tolerance must be a number between 0 and 1 (exclusive), e.g. 0.01, got 0"),
    (["overlap", "craft_vgg16_bn", "--tolerance", "1%"], "--tolerance must be a number between 0 and 1"),
    (["overlap", "craft_vgg16_bn", "--tolerance", "1"], "--tolerance must be a number between 0 and 1"),
    (["overlap", "craft_vgg16_bn", "--images", "0"], "--images must be a whole number >= 1, got 0"),
    (["overlap", "craft_vgg16_bn", "--tiles", "0"], "--tiles must be a whole number >= 1, got 0"),
    (["overlap", "craft_vgg16_bn", "--output", " "], "--output must be a key (e.g. out) or an index (e.g. 0), got ' '"),
    (["overlap", "craft_vgg16_bn", "--padding", "zeros"], "--padding: invalid choice: 'zeros'"),
    (["overlap", "craft_vgg16_bn", "--tile", "256", "--size", "256"],
     "--tile 256 must be smaller than the images (--size 256)"),
    (["overlap", "craft_vgg16_bn", "--out", "{tmp}/mine.csv"], "--out file '{tmp}/mine.csv' already exists; pass --force"),
    (["overlap", "craft_vgg16_bn", "--out", "{tmp}/reach.json"], "--out must end in .csv, got '{tmp}/reach.json'"),
    (["overlap", "craft_vgg16_bn", "--image-dir", "{tmp}/no_photos"], "--image-dir '{tmp}/no_photos' does not exist"),
    (["overlap", "no_such_model_xyz"], "unknown model 'no_such_model_xyz'"),
    (["scan", "no_such_model_xyz"], "unknown model 'no_such_model_xyz'"),
    (["audit", "resnet18={tmp}/none.pth"], "checkpoint '{tmp}/none.pth' does not exist"),
    (["scan", "mobilenet_v2", "--reference", "nope"], "--reference: invalid choice: 'nope'"),
    (["scan"], "the following arguments are required: model"),
    (["no-such-command"], "invalid choice: 'no-such-command'"),
]


@pytest.mark.parametrize("argv, says", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_and_refused_before_any_work(argv, says, files, capsys):
    tmp = str(files)
    if "{tmp}/locked" in " ".join(argv) and os.access(files / "locked", os.W_OK):
        pytest.skip("this user may write into a read-only folder (root): see the simulated test below")
    before = {p: sha(p) for p in files.iterdir() if p.is_file()}
    line = one_line_error(capsys, [a.replace("{tmp}", tmp) for a in argv])
    assert says.replace("{tmp}", tmp) in line
    assert {p: sha(p) for p in files.iterdir() if p.is_file()} == before  # the user's files are untouched
    assert not (files / "site").exists() and not (files / "missing").exists()  # and no folder was made


def test_zoo_audit_refuses_to_overwrite_the_json_beside_its_csv(files, capsys):
    (files / "zoo.json").write_text("mine")
    line = one_line_error(capsys, ["zoo-audit", "--limit", "1", "--out", str(files / "zoo.csv")])
    assert f"'{files / 'zoo.json'}' already exists; pass --force" in line
    assert (files / "zoo.json").read_text() == "mine" and not (files / "zoo.csv").exists()


def test_an_unwritable_out_folder_is_refused_even_where_permissions_do_not_bind(files, capsys, monkeypatch):
    """As root a read-only folder is writable, so the refusal is shown with os.access answering as for a user."""
    real = os.access
    locked = str(files / "locked")
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if os.fspath(p) == locked else real(p, mode, **kw))
    for argv, says in [(["report", "mobilenet_v2", "--out", f"{locked}/r.html"], "--out file"),
                       (["scan", "mobilenet_v2", "--out", f"{locked}/p.csv"], "--out file"),
                       (["overlap", "craft_vgg16_bn", "--out", f"{locked}/o.csv"], "--out file"),
                       (["ablate", "mobilenet_v2", "--out", f"{locked}/tables"], "--out folder"),
                       (["zoo-audit", "--limit", "1", "--out", f"{locked}/zoo.csv"], "--out file"),
                       (["book", "--out", f"{locked}/site"], "--out folder")]:
        line = one_line_error(capsys, argv)
        assert says in line and f"no permission to write in folder '{locked}'" in line


def test_an_existing_folder_as_out_file_is_refused(files, capsys):
    (files / "page.html").mkdir()
    line = one_line_error(capsys, ["report", "mobilenet_v2", "--out", str(files / "page.html"), "--force"])
    assert f"--out file '{files / 'page.html'}' is a folder; pass a file name" in line


def test_ctrl_c_is_one_line_and_exit_code_130(monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "load_model", interrupted)  # as if the user pressed Ctrl-C while the model loads
    assert cli.main(["kernels", "mobilenet_v2"]) == 130
    err = capsys.readouterr().err
    assert err == "interrupted\n"
    monkeypatch.setattr(cli, "_cmd_models", interrupted)  # and in any command
    assert cli.main(["models"]) == 130 and capsys.readouterr().err == "interrupted\n"


def test_python_m_padlib_and_the_console_script_go_through_main():
    import tomllib
    from pathlib import Path

    root = Path(cli.__file__).resolve().parents[1]
    assert tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]["padlib"] == "padlib.cli:main"
    assert "sys.exit(main())" in (root / "padlib" / "__main__.py").read_text()


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


@pytest.mark.parametrize("stop", [RuntimeError("disk full"), KeyboardInterrupt()], ids=["error", "ctrl-c"])
def test_atomic_write_leaves_the_old_file_and_no_temporary_file_when_stopped(tmp_path, stop):
    target = tmp_path / "result.csv"
    target.write_text("old result\n")
    before = sha(target)
    with pytest.raises(type(stop)):
        with atomic_write(target) as f:
            f.write("half of a new res")
            assert leftovers(tmp_path)  # the new text goes to a temporary file beside the target
            raise stop
    assert sha(target) == before and leftovers(tmp_path) == []
    with pytest.raises(type(stop)):
        with atomic_write(tmp_path / "new.csv", "wb") as f:
            f.write(b"half")
            raise stop
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.csv"]  # no new file, no temporary one


def test_atomic_write_replaces_the_target_in_one_step(tmp_path):
    target = tmp_path / "result.csv"
    target.write_text("old result\n")
    with atomic_write(target, newline="") as f:
        f.write("new result\n")
        assert target.read_text() == "old result\n"  # readers see the old file until the block ends
    assert target.read_text() == "new result\n" and leftovers(tmp_path) == []
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask()  # as a plain open() would have made it


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_results_are_written_through_atomic_write(monkeypatch, tmp_path):
    """save_report and the zoo audit write through atomic_write: a failure while writing leaves the old file."""
    import pandas as pd

    from padlib.experiments import zoo
    from padlib.viz import report as viz_report

    page = tmp_path / "r.html"
    page.write_text("my page")
    monkeypatch.setattr(viz_report, "report_html", lambda rep: "<html>new</html>")
    assert viz_report.save_report(None, page, force=True) == str(page) and page.read_text() == "<html>new</html>"

    def failing_to_csv(self, f, **kw):
        f.write("model,fam")
        raise OSError("disk full")

    csv = tmp_path / "zoo.csv"
    csv.write_text("mine")
    monkeypatch.setattr(zoo, "audit_zoo_model", lambda name, max_distance=32: {"model": name, "status": "ok",
                                                                               "seconds": 0.0, "cpu_seconds": 0.0})
    monkeypatch.setattr(pd.DataFrame, "to_csv", failing_to_csv)
    with pytest.raises(OSError, match="disk full"):
        zoo.zoo_audit(["resnet18"], progress=False, out_csv=csv)
    assert csv.read_text() == "mine" and leftovers(tmp_path) == []
