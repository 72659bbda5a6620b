"""The book build: execute every chapter notebook headless with papermill, then build the static site.

Notebooks are committed without outputs. ``execute_chapters`` writes executed copies under ``_build``;
``build_site`` stages them with ``_config.yml`` and ``book/`` and runs Jupyter Book 1 in strict mode.
Nothing here touches the committed notebooks.
"""
from __future__ import annotations

import contextlib
import html as html_lib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..chapters.findings import MIME as FINDINGS_MIME
from ..chapters.findings import legend_markdown
from .._craft import region_score
from .._malloc import MALLOC_ENV
from ..errors import PadlibError, check_new_folder
from ..model_report import default_report_path, report
from ..viz.report import save_report

REPO = Path(__file__).resolve().parents[2]
TOC = REPO / "book" / "_toc.yml"
VENDOR_SRC = REPO / "book" / "vendor" / "node_modules"
VENDOR_DST = REPO / "book" / "_static" / "offline"  # not "vendor": the theme ships a _static/vendor


# Hosts the site must never load from; the vendored scripts carry some of them as defaults, patched below.
CDN_HOSTS = ("cdn.jsdelivr.net", "unpkg.com", "cdnjs.cloudflare.com", "fonts.googleapis.com", "fonts.gstatic.com",
             "code.jquery.com", "ajax.googleapis.com", "cdn.plot.ly", "binder", "thebe.", "colab.research.google")


OFFLINE_WIDGET_MODULES = "./widget-modules-are-not-fetched-offline/"


def chapters() -> list[Path]:
    """The chapter notebooks in book order, read from the table of contents."""
    entries = re.findall(r"file:\s*(notebooks/[\w\-]+)", TOC.read_text())
    return [REPO / f"{e}.ipynb" for e in entries]


def find_chapter(key: str) -> Path:
    """A chapter by number ('1', '01') or by (part of) its file name."""
    for i, nb in enumerate(chapters(), 1):
        if key.lstrip("0") == str(i) or key in nb.stem:
            return nb
    raise PadlibError(f"no chapter matches '{key}'; chapters: {', '.join(nb.stem for nb in chapters())}")


def _kernel_env() -> dict:
    # Prefer this environment's kernel spec over any user-level 'python3' spec pointing at another Python.
    env = dict(os.environ)
    env["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(Path(sys.prefix) / "share" / "jupyter"),
                                                        env.get("JUPYTER_PATH", "")]))
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    env.pop("MPLBACKEND", None)  # a non-interactive backend set for the caller would swallow every figure
    for k, v in MALLOC_ENV.items():  # the kernel keeps freed memory for reuse (padlib._malloc: faster forwards)
        env.setdefault(k, v)
    return env


POLL_SLICE_SECONDS = 1.0


@contextlib.contextmanager
def _sliced_kernel_polls():
    """Wait for kernel messages in short polls instead of one long one.

    nbclient waits for a cell's reply with one poll of the zmq socket lasting the whole cell timeout; now and
    then the asyncio poller misses the wake-up (seen here on a widget cell: kernel idle, client waiting; the
    open upstream report is jupyter/nbclient#312), and the build would hang until the timeout. Polling in
    ``POLL_SLICE_SECONDS`` slices bounds a missed wake-up to one slice; the overall timeout is kept.
    """
    from queue import Empty

    from jupyter_client.channels import AsyncZMQSocketChannel

    original = AsyncZMQSocketChannel.get_msg

    async def get_msg(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            step = POLL_SLICE_SECONDS if left is None else min(left, POLL_SLICE_SECONDS)
            try:
                return await original(self, timeout=step)
            except Empty:
                if left is not None and left <= POLL_SLICE_SECONDS:
                    raise

    AsyncZMQSocketChannel.get_msg = get_msg
    try:
        yield
    finally:
        AsyncZMQSocketChannel.get_msg = original


def execute_notebook(notebook: Path, output: Path, parameters: dict | None = None, timeout: int = 1800) -> float:
    """Run one notebook with papermill (parameters injected after its ``parameters`` cell); return seconds.

    The injected cell is tagged ``remove-cell`` so the site hides it; widget state is saved for the site.
    """
    import papermill

    output.parent.mkdir(parents=True, exist_ok=True)
    old = dict(os.environ)
    new = _kernel_env()  # the kernel inherits this process's environment
    os.environ.clear()
    os.environ.update(new)
    t0 = time.perf_counter()
    try:
        with _sliced_kernel_polls():
            papermill.execute_notebook(
                str(notebook), str(output), parameters=parameters or {}, kernel_name="python3",
                cwd=str(notebook.parent), progress_bar=False, log_output=False, execution_timeout=timeout,
            )
    finally:
        os.environ.clear()
        os.environ.update(old)
        if output.exists():
            _tag_injected_cell(output)
    return time.perf_counter() - t0


def _tag_injected_cell(path: Path) -> None:
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    path.write_text(json.dumps(nb, indent=1))


def execute_chapters(out_dir: Path, smoke: bool = False, only: list[str] | None = None,
                     parameters: dict | None = None) -> list[dict]:
    """Execute the chapters (all, or those in ``only``) into ``out_dir/notebooks``; one record per chapter."""
    selected = [find_chapter(k) for k in only] if only else chapters()
    records = []
    for nb in selected:
        params = dict(parameters or {})
        if smoke:
            params["smoke"] = True
        out = Path(out_dir) / "notebooks" / nb.name
        print(f"executing {nb.relative_to(REPO)}{' (smoke)' if smoke else ''} ...", flush=True)
        seconds = execute_notebook(nb, out, params)
        print(f"  done in {seconds:.0f} s", flush=True)
        records.append({"notebook": nb.stem, "seconds": round(seconds, 1), "output": str(out)})
    return records


def vendor_assets() -> Path:
    """Copy the npm-installed browser assets into ``book/_static/offline``, pointing their CDN defaults home."""
    if not VENDOR_SRC.exists():
        raise PadlibError(f"{VENDOR_SRC} is missing: run `make setup` (it runs `npm ci` in book/vendor)")
    if VENDOR_DST.exists():
        shutil.rmtree(VENDOR_DST)
    VENDOR_DST.mkdir(parents=True)
    shutil.copy(VENDOR_SRC / "requirejs" / "require.js", VENDOR_DST / "require.js")
    html_manager = VENDOR_SRC / "@jupyter-widgets" / "html-manager" / "dist"
    for f in html_manager.iterdir():
        if f.suffix not in (".map", ".txt") and f.name not in ("embed.js", "libembed-amd.js"):
            shutil.copy(f, VENDOR_DST / f.name)
    shutil.copytree(VENDOR_SRC / "mathjax" / "es5", VENDOR_DST / "mathjax")
    (VENDOR_DST / "mathjax" / "latest.js").unlink()  # a loader that fetches "the latest MathJax" from CDNs
    # Third-party widget modules (none of ours) would be fetched from a CDN: point that default at nothing.
    for f in [VENDOR_DST / "embed-amd.js", *(VENDOR_DST / "mathjax").rglob("*.js")]:
        text = f.read_text(encoding="utf-8")
        patched = text.replace("https://cdn.jsdelivr.net/npm/", OFFLINE_WIDGET_MODULES)
        patched = re.sub(r"/\* @import url\('https://fonts\.googleapis\.com[^']*'\); \*/", "", patched)  # a dead comment
        if patched != text:
            f.write_text(patched, encoding="utf-8")
    return VENDOR_DST


BUILD_MARKER = ".padlib-build"


def claim_build_dir(out_dir: Path) -> Path:
    """Make ``out_dir`` a padlib build folder, refusing one that holds things padlib did not write.

    The build replaces ``executed*/``, ``site_src/`` and ``html/`` inside it; a folder of the user's with such
    entries (and no marker from an earlier padlib build) is never emptied silently. The repository's own
    ``_build`` is always padlib's.
    """
    check_new_folder(out_dir, force=True, what="--out folder", contents="book's build")  # a file, not writable
    out_dir = Path(out_dir).resolve()
    marker = out_dir / BUILD_MARKER
    if out_dir != (REPO / "_build").resolve() and out_dir.exists() and not marker.exists() and any(out_dir.iterdir()):
        raise PadlibError(f"'{out_dir}' is not empty and was not made by padlib (no {BUILD_MARKER} file); "
                          f"the build would replace its contents: pass a new or empty --out folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    marker.touch()
    return out_dir


def missing_chapters(executed_dir: Path) -> list[str]:
    """Chapters with no executed copy under ``executed_dir`` (the site needs all of them)."""
    return [nb.name for nb in chapters() if not (Path(executed_dir) / "notebooks" / nb.name).exists()]


PROGRESS_BAR = re.compile(r"\d+%\|[^|]*\|\s*[\d.]+[kMG]?/[\d.]+[kMG]?\s*\[")  # tqdm: "desc: 40%|####  | 4/10 [00:01<..."


def _is_progress_bar(output: dict) -> bool:
    if output.get("output_type") == "stream":
        return bool(PROGRESS_BAR.search("".join(output.get("text", ""))))
    text = "".join(output.get("data", {}).get("text/plain", ""))
    return bool(PROGRESS_BAR.search(text)) and len(text.splitlines()) <= 2


VISIBILITY_TAGS = {"hide-input", "hide-cell", "remove-input", "remove-cell", "findings"}


def prepare_for_site(path: Path) -> dict:
    """Make an executed chapter read as a page of the book (the staged copy only; interactive runs keep it all).

    Drops stderr and progress bars (stream or widget) from the outputs; collapses the source of every code cell
    that has no hide/remove tag of its own (``hide-input``: a reader sees the results, the code is one click
    away); moves the cell tagged ``findings`` (its input removed) right under the chapter title, splitting the
    title off the first Markdown cell, so the reader meets the answer first. Returns what was done, for the
    build log and the tests."""
    nb = json.loads(Path(path).read_text())
    done = {"stderr": 0, "progress": 0, "findings": False, "collapsed": 0}
    for cell in nb["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.get("cell_type") == "code" and not set(tags) & VISIBILITY_TAGS:
            cell.setdefault("metadata", {}).setdefault("tags", []).append("hide-input")
            done["collapsed"] += 1
        kept = []
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream" and o.get("name") == "stderr":
                done["stderr"] += 1
            elif _is_progress_bar(o):
                done["progress"] += 1
            else:
                kept.append(o)
        if "outputs" in cell:
            cell["outputs"] = kept
    boxes = [c for c in nb["cells"] if "findings" in c.get("metadata", {}).get("tags", [])]
    if boxes:
        box = boxes[0]
        nb["cells"].remove(box)
        tags = box["metadata"].setdefault("tags", [])
        if "remove-input" not in tags:
            tags.append("remove-input")
        first = nb["cells"][0] if nb["cells"] else {}
        source = "".join(first.get("source", ""))
        titled = first.get("cell_type") == "markdown" and source.startswith("# ")
        if titled:
            title, _, rest = source.partition("\n")
            first["source"] = title + "\n"
            if rest.strip():
                nb["cells"].insert(1, {"cell_type": "markdown", "id": f"{first.get('id', 'title')}-intro",
                                       "metadata": {}, "source": rest.lstrip("\n")})
        nb["cells"].insert(1 if titled else 0, box)  # under the title, or first of all without one
        done["findings"] = True
    Path(path).write_text(json.dumps(nb, indent=1))
    return done


SUMMARY_MARKER = "<!-- padlib:findings-summary -->"
REPORT_MARKER = "<!-- padlib:sample-report -->"


def sample_report_name(model: str) -> str:
    """``padding-report-<model>``: the page (``.html``) and its summary (``.json``) beside the executed notebooks
    (the name ``padlib report`` gives a page by default, without its suffix)."""
    return os.path.splitext(default_report_path(model))[0]


SAMPLE_REPORT_MODEL = "mobilenet_v2"
SAMPLE_REPORT = sample_report_name(SAMPLE_REPORT_MODEL)
# The introduction's examples of ``padlib report``: model -> (the report's arguments, smoke: the same at its size,
# the words that introduce it). The classifier at the command's defaults; the text detector (a dense model, so
# its page has the border-reach section) with 16 probe images, since a VGG16-BN forward costs about 50 of
# mobilenet_v2's (its report with 32 images took 188 s on 2 cores, the classifier's with 128 about 60)
DENSE_SAMPLE_MODEL = "craft_vgg16_bn"
SAMPLE_REPORTS = {
    SAMPLE_REPORT_MODEL: ({}, {"images": 8, "size": 96},
                          "an ImageNet classifier, at the command's defaults"),
    DENSE_SAMPLE_MODEL: ({"images": 16, "output": region_score},
                         None,  # not in smoke builds: 35 s even at 8 images and 128 px (its dilated conv's minimum)

                         "EasyOCR's CRAFT text detector (VGG16-BN with a U-net decoder; its forward returns two "
                         "score maps at half the input's resolution and its features), a dense model, compared by "
                         "its region score map (`output=padlib._craft.region_score`: its two channels are scores, "
                         "not classes, so no argmax is read across them); its page adds the border reach of its "
                         "tiles"),
}


def write_sample_report(executed_dir: Path, smoke: bool = False, model: str = SAMPLE_REPORT_MODEL) -> float:
    """One of the introduction's examples of ``padlib report`` (:data:`SAMPLE_REPORTS`): the page and its summary
    lines and recommendations as JSON, written beside the executed notebooks. Returns seconds (0: an example that
    smoke builds leave out, whose place in the introduction then gives the command instead)."""

    t0 = time.perf_counter()
    full, quick, _ = SAMPLE_REPORTS[model]
    if smoke and quick is None:
        return 0.0
    rep = report(model, **(quick if smoke else full), progress=False)
    executed_dir = Path(executed_dir)
    executed_dir.mkdir(parents=True, exist_ok=True)
    name = sample_report_name(model)
    save_report(rep, executed_dir / f"{name}.html", force=True)  # padlib's own build output
    (executed_dir / f"{name}.json").write_text(json.dumps({
        "model": rep.model, "input_size": rep.input_size, "n_images": rep.n_images, "summary": rep.summary_lines(),
        "recommendations": [r.text for r in rep.recommendations], "seconds": rep.seconds.get("total"),
        "output": rep.output or None}, indent=1))
    return time.perf_counter() - t0


def write_sample_reports(executed_dir: Path, smoke: bool = False) -> dict:
    """Every example of :data:`SAMPLE_REPORTS`: model -> seconds."""
    return {model: write_sample_report(executed_dir, smoke, model) for model in SAMPLE_REPORTS}


def _sample_section(executed_dir: Path, static_dir: Path, model: str, first: bool) -> str:
    page = Path(executed_dir) / f"{sample_report_name(model)}.html"
    meta = Path(executed_dir) / f"{sample_report_name(model)}.json"
    if not (page.exists() and meta.exists()):
        return f"(No example report for `{model}` was built with this copy of the site; run `padlib report {model}`.)"
    shutil.copy(page, Path(static_dir) / page.name)
    data = json.loads(meta.read_text())
    what = SAMPLE_REPORTS[model][2]
    output = f"; output compared: {data['output']}" if data.get("output") else ""
    lines = [f'{"The example" if first else "A second example"}, `{data["model"]}`, {what} ({data["n_images"]} '
             f'probe images at {data["input_size"]} px{output}; built with this site in {data["seconds"]:.0f} s): '
             f'<a href="../_static/{page.name}">open the report</a>. Its summary:', ""]
    # the introduction is book/intro.html: raw HTML links are not rewritten
    lines += [f"- {line}" for line in data["summary"]]
    lines += ["", "and its recommendations:", ""]
    lines += [f"{i}. {text}" for i, text in enumerate(data["recommendations"], 1)]
    return "\n".join(lines)


def sample_report_markdown(executed_dir: Path, static_dir: Path) -> str:
    """The introduction's section on the report: for each example (:data:`SAMPLE_REPORTS`) a link to its page
    (copied into the site's static folder) and its summary, or, when it was not built, the command alone."""
    return "\n\n".join(_sample_section(executed_dir, static_dir, model, k == 0)
                        for k, model in enumerate(SAMPLE_REPORTS))


FINDING_LINE = re.compile(r"^- \*\*(?P<verdict>[^*]+)\*\*: (?P<claim>.+?)\. (?P<evidence>.*)$")


def chapter_findings(notebook: Path) -> list[dict]:
    """The findings box of one executed chapter, read back from its ``findings`` cell: the rows
    :func:`padlib.chapters.findings.show_findings` put beside the Markdown (verdict, claim, claimed, observed,
    detectable, needed, scale, ...); a box shown as Markdown only gives verdict, claim and evidence."""
    nb = json.loads(Path(notebook).read_text())
    rows = []
    for cell in nb["cells"]:
        if "findings" not in cell.get("metadata", {}).get("tags", []):
            continue
        for o in cell.get("outputs", []):
            data = o.get("data", {})
            if FINDINGS_MIME in data:
                rows += list(data[FINDINGS_MIME]["findings"])
                continue
            for line in "".join(data.get("text/markdown", "")).splitlines():
                m = FINDING_LINE.match(line)
                if m:
                    rows.append(m.groupdict())
    return rows


def _cell(text: str) -> str:
    return " ".join(str(text or "").replace("|", "/").split())


def findings_summary(notebooks_dir: Path) -> str:
    """The introduction's answers table: every chapter's findings, verdict first, with the claimed and observed
    effect and the smallest detectable effect (or what a test would need), then the verdict legend."""
    lines = ["| Verdict | Claim | Claimed | Observed | Smallest detectable effect, or what is needed | Ch. |",
             "|---|---|---|---|---|---|"]
    for i, nb in enumerate(chapters(), 1):
        rows = chapter_findings(Path(notebooks_dir) / nb.name)
        link = f"{{doc}}`{i} <../notebooks/{nb.stem}>`"
        if not rows:
            lines.append(f"| | (no findings: the chapter did not produce them) | | | | {link} |")
        for r in rows:
            last = r.get("detectable") or r.get("needed") or ""
            lines.append(f"| **{r['verdict']}** | {_cell(r['claim'])} | {_cell(r.get('claimed', ''))} | "
                         f"{_cell(r.get('observed', r.get('evidence', '')))} | {_cell(last)} | {link} |")
    return "\n".join(lines + ["", "What the verdicts mean:", "", legend_markdown()])


_VERDICT_WORD = "(?i:supported|contradicted|inconclusive|not testable here)"
BOX_ITEM = re.compile(rf"<li><p><strong>(?P<verdict>{_VERDICT_WORD})</strong>:\s*(?P<claim>[^<]+?)\.\s")
SECTION_LINE = re.compile(rf"<p><strong>(?P<verdict>{_VERDICT_WORD})\.</strong>\s*<em>(?P<claim>[^<]+?)\.</em>")


def _plain(text: str) -> str:
    return " ".join(html_lib.unescape(text).split()).lower()


def verdict_mismatches(page: str, name: str = "page") -> list[str]:
    """Where a built chapter page's findings box and its sections disagree: a box line whose claim no section
    shows under its figure, a section verdict that differs from the box's, or a section verdict that sits inside
    a collapsed block (a reader must not have to open anything to see a verdict)."""
    body = re.sub(r"<script.*?</script>", "", page, flags=re.S)
    m = re.search(r'<div class="[^"]*\bfindings\b[^"]*">', body)
    if not m:
        return [f"{name}: no findings box"]
    end = body.find("</div>", body.find("</ul>", m.end()))
    box_html, rest = body[m.start():end], body[:m.start()] + body[end:]
    box = {_plain(b["claim"]): _plain(b["verdict"]) for b in BOX_ITEM.finditer(box_html)}
    problems = []
    if not box:
        problems.append(f"{name}: the findings box has no verdict lines")
    sections = {}
    for s in SECTION_LINE.finditer(rest):
        claim, verdict = _plain(s["claim"]), _plain(s["verdict"])
        opened = rest.rfind("<details", 0, s.start())
        if opened > rest.rfind("</details>", 0, s.start()):
            problems.append(f"{name}: the verdict on '{claim}' sits in a collapsed block")
        sections.setdefault(claim, set()).add(verdict)
    for claim, verdict in box.items():
        if claim not in sections:
            problems.append(f"{name}: no section shows the verdict on '{claim}'")
        elif sections[claim] != {verdict}:
            problems.append(f"{name}: the box says '{verdict}' on '{claim}', its section says "
                            f"{' / '.join(sorted(sections[claim]))}")
    for claim in sections:
        if claim not in box:
            problems.append(f"{name}: a section's verdict on '{claim}' is not in the findings box")
    return problems


def build_site(executed_dir: Path, out_dir: Path | None = None, strict: bool = True) -> Path:
    """Stage ``_config.yml``, ``book/`` and the executed notebooks, build HTML with Jupyter Book; return html dir."""
    executed_dir = Path(executed_dir).resolve()
    out_dir = (Path(out_dir) if out_dir else REPO / "_build").resolve()
    if not (VENDOR_DST / "embed-amd.js").exists():
        vendor_assets()
    stage = out_dir / "site_src"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    shutil.copy(REPO / "_config.yml", stage / "_config.yml")
    shutil.copytree(REPO / "book", stage / "book",
                    ignore=lambda d, names: [n for n in names if Path(d) == REPO / "book" and n == "vendor"])
    missing = missing_chapters(executed_dir)
    if missing:
        raise PadlibError(f"not executed yet: {', '.join(missing)} (run `python -m padlib book`)")
    shutil.copytree(executed_dir / "notebooks", stage / "notebooks")
    for nb in sorted((stage / "notebooks").glob("*.ipynb")):
        prepare_for_site(nb)
    intro = stage / "book" / "intro.md"
    intro.write_text(intro.read_text().replace(SUMMARY_MARKER, findings_summary(stage / "notebooks"))
                     .replace(REPORT_MARKER, sample_report_markdown(executed_dir, stage / "book" / "_static")))
    html = out_dir / "html"
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(stage), "--toc", str(stage / "book" / "_toc.yml"),
           "--config", str(stage / "_config.yml"), "--path-output", str(stage)]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    proc = subprocess.run(cmd, cwd=stage, text=True, capture_output=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        raise PadlibError(f"jupyter-book build failed (exit {proc.returncode}):\n{tail}")
    if html.exists():
        shutil.rmtree(html)
    shutil.move(str(stage / "_build" / "html"), str(html))
    return html


def page_problems(text: str, name: str) -> list[str]:
    """What machinery reached one chapter page: progress bars, stderr blocks, tracebacks, references to files a
    reader cannot see; and whether the findings box comes before the first code cell."""
    problems = []
    body = re.sub(r"<script.*?</script>", "", text, flags=re.S)
    plain = re.sub(r"<[^>]+>", "", body)
    if PROGRESS_BAR.search(plain):
        problems.append(f"{name}: progress-bar text on the page")
    if re.search(r'class="[^"]*\bstderr\b', body):
        problems.append(f"{name}: a stderr block")
    if "Traceback (most recent call last)" in plain:
        problems.append(f"{name}: a traceback")
    if re.search(r"shared/|papers\.md|toolchain\.md", plain):
        problems.append(f"{name}: refers to a file a reader cannot see")
    m = re.search(r'<div class="[^"]*\bfindings\b[^"]*\badmonition\b|<div class="[^"]*\badmonition\b[^"]*\bfindings\b', body)
    box = m.start() if m else -1
    code = body.find('class="cell_input')
    if box < 0:
        problems.append(f"{name}: no findings box")
    elif 0 <= code < box:
        problems.append(f"{name}: the findings box comes after the first code cell")
    return problems


def site_problems(html_dir: Path) -> list[str]:
    """What is wrong with a built site: missing pages or figures, references to CDNs or outside resources,
    machinery on a chapter page (:func:`page_problems`)."""
    html_dir = Path(html_dir)
    problems = []
    if not (html_dir / "index.html").exists():
        problems.append("no index.html")
    for nb in chapters():
        page = html_dir / "notebooks" / f"{nb.stem}.html"
        if not page.exists():
            problems.append(f"no page for {nb.stem}")
            continue
        text = page.read_text(encoding="utf-8")
        if not re.search(r"<img[^>]+src=\"[^\"]+\.(png|svg|jpg)\"", text):
            problems.append(f"{nb.stem}: no figure")
        problems += page_problems(text, nb.stem)
        problems += verdict_mismatches(text, nb.stem)
    external_load = re.compile(r"""(?:src|href)\s*=\s*["'](?:https?:)?//(?!www\.w3\.org)[^"']+["'][^>]*""")
    for f in html_dir.rglob("*"):
        if f.suffix not in (".html", ".js", ".css", ".json", ".txt") or not f.is_file():
            continue
        text = f.read_text(encoding="utf-8", errors="replace")
        for host in CDN_HOSTS:
            if host in text:
                problems.append(f"{f.relative_to(html_dir)}: mentions {host}")
        if f.suffix == ".html":
            for m in external_load.finditer(text):
                tag_start = text.rfind("<", 0, m.start())
                tag = text[tag_start:tag_start + 6].lower()
                if tag.startswith(("<scrip", "<link", "<img", "<ifram", "<sourc", "<video", "<audio")):
                    problems.append(f"{f.relative_to(html_dir)}: loads {m.group(0)[:120]}")
    return problems

