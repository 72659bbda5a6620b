"""Every chapter executes headless in smoke mode; the site built from them is complete, offline and renders.

This is the newcomer path in miniature: papermill runs each notebook with ``smoke=True``, Jupyter Book
builds the site strictly, and a headless Chromium opens the pages that hold widgets.
"""
import json
import time
from pathlib import Path

import pytest


from .browser import Browser, find_chromium
from padlib.chapters import site as site_build

CHAPTERS = site_build.chapters()


@pytest.fixture(scope="session")
def smoke_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("smoke-book")


def test_table_of_contents_lists_the_five_chapters_in_order():
    assert [nb.stem[:2] for nb in CHAPTERS] == ["01", "02", "03", "04", "05"]
    assert all(nb.exists() for nb in CHAPTERS)


@pytest.mark.parametrize("notebook", CHAPTERS, ids=[nb.stem for nb in CHAPTERS])
def test_committed_notebook_has_parameters_first_and_no_outputs(notebook):
    nb = json.loads(notebook.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "parameters" in code[0].get("metadata", {}).get("tags", [])
    for name in ("smoke", "seed", "device"):
        assert f"{name} =" in "".join(code[0]["source"])
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "commit without outputs"


@pytest.fixture(scope="session")
def ch5_runs(smoke_dir):
    """Chapter 5's smoke plan trained by the ``padlib train`` command, one run per call, into a runs folder."""
    from padlib import cli
    from padlib.experiments.ch5_schemes import seed_plan

    folder = smoke_dir / "ch5-runs"
    plan = seed_plan(["zero", "replicate", "circular", "partial", "padding_module"], [0, 1],
                     ["padding_module", "partial"], n_other=2, epochs=2, longer_seeds=1)  # the notebook's smoke plan
    for scheme, seed, epochs in plan:
        assert cli.main(["train", "--scheme", scheme, "--seed", str(seed), "--epochs", f"{epochs:g}", "--width", "4",
                         "--n-train", "256", "--n-test", "200", "--n-eval", "100", "--out", str(folder)]) == 0
    return folder


@pytest.mark.site
@pytest.mark.parametrize("notebook", CHAPTERS, ids=[nb.stem for nb in CHAPTERS])
def test_chapter_executes_in_smoke_mode(notebook, smoke_dir, request):
    """Every chapter in smoke mode; chapter 5 from a folder of runs that ``padlib train`` trained (its inline
    training is what ``make book`` runs; the runs are its networks bit for bit, tests/test_train_runs.py)."""
    out = smoke_dir / "executed" / "notebooks" / notebook.name
    params = {"smoke": True}
    if notebook.stem.startswith("05"):
        params["runs_dir"] = str(request.getfixturevalue("ch5_runs"))
    seconds = site_build.execute_notebook(notebook, out, params)
    print(f"{notebook.stem}: {seconds:.1f} s")
    nb = json.loads(out.read_text())
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and "remove-cell" in injected[0]["metadata"]["tags"]
    if "runs_dir" in params:  # the page says where its networks came from, and the box states that scale
        text = json.dumps([c.get("outputs", []) for c in nb["cells"]])
        assert "15 runs read from the runs folder (of 15 in it), trained by padlib train in 1 process each" in text
        assert "small networks trained from scratch by padlib train (read from a runs folder)" in text
        assert "trained here" not in text


@pytest.fixture(scope="session")
def site(smoke_dir):
    missing = [nb.name for nb in CHAPTERS if not (smoke_dir / "executed" / "notebooks" / nb.name).exists()]
    if missing:
        pytest.fail(f"chapters failed to execute: {missing}")
    site_build.write_sample_reports(smoke_dir / "executed", smoke=True)
    return site_build.build_site(smoke_dir / "executed", smoke_dir)


@pytest.mark.site
def test_site_has_every_page_with_figures_and_no_outside_references(site):
    assert site_build.site_problems(site) == []
    text = (site / "notebooks" / f"{CHAPTERS[0].stem}.html").read_text()
    assert "injected-parameters" not in text  # papermill's cell is hidden


@pytest.mark.site
def test_introduction_links_the_example_report_and_shows_its_summary(site):
    import re

    intro = (site / "book" / "intro.html").read_text()
    href = re.search(rf'href="([^"]*{site_build.SAMPLE_REPORT}\.html)"', intro).group(1)
    assert (site / "book" / href).resolve() == (site / "_static" / f"{site_build.SAMPLE_REPORT}.html").resolve()
    assert "Padding: " in intro and "PANs: " in intro and "padlib:sample-report" not in intro
    page = (site / "_static" / f"{site_build.SAMPLE_REPORT}.html").read_text()
    assert page.count('src="data:image/png;base64,') == 4 and "https://" not in page
    # the dense example is left out of smoke builds (35 s of CRAFT): its place gives the command
    assert site_build.SAMPLE_REPORTS[site_build.DENSE_SAMPLE_MODEL][1] is None
    dense = site_build.DENSE_SAMPLE_MODEL
    assert f"No example report for <code class=\"docutils literal notranslate\"><span class=\"pre\">{dense}" in intro


def test_the_second_example_section_links_its_page_and_shows_its_summary(tmp_path):
    """The introduction's dense example, from a page and summary as the full build writes them."""
    executed, static = tmp_path / "executed", tmp_path / "static"
    executed.mkdir()
    static.mkdir()
    for model, text in ((site_build.SAMPLE_REPORT_MODEL, "Padding: all even."),
                        (site_build.DENSE_SAMPLE_MODEL, "Border reach (32 tiles): tiles of 224 px ...")):
        name = site_build.sample_report_name(model)
        (executed / f"{name}.html").write_text("<html>page</html>")
        (executed / f"{name}.json").write_text(json.dumps({
            "model": model, "n_images": 16, "input_size": 224, "seconds": 104.2, "summary": [text],
            "recommendations": ["Run tile by tile ..."], "output": "output=region_score (dense, 1 x 112 x 112)"}))
    md = site_build.sample_report_markdown(executed, static)
    first, second = md.split("\n\nA second example, ")
    assert first.startswith("The example, `mobilenet_v2`, an ImageNet classifier")
    assert second.startswith("`craft_vgg16_bn`, EasyOCR's CRAFT text detector")
    assert "output compared: output=region_score (dense, 1 x 112 x 112); built with this site in 104 s" in second
    assert '<a href="../_static/padding-report-craft_vgg16_bn.html">open the report</a>' in second
    assert "- Border reach (32 tiles): tiles of 224 px ..." in second
    assert (static / "padding-report-craft_vgg16_bn.html").exists()


@pytest.mark.site
def test_widgets_render_and_figures_load_in_headless_chromium(site):
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no chromium on PATH (Debian package 'chromium'; .ci/run installs it)")
    pages = [p for p in sorted(site.glob("notebooks/*.html")) if "application/vnd.jupyter.widget-view+json" in p.read_text()]
    assert pages, "no chapter page holds a widget"
    with Browser(chromium) as browser:
        for page in pages:
            views = page.read_text().count("application/vnd.jupyter.widget-view+json")
            browser.open(page.as_uri())
            assert browser.wait_for('document.readyState === "complete"', 30)
            rendered = browser.wait_for(
                f'document.querySelectorAll(".widget-subarea > .jupyter-widgets, .widget-subarea > .lm-Widget").length >= {views} '
                f'&& document.querySelectorAll(".widget-subarea > *").length', 30)
            assert rendered and rendered >= views, f"{page.name}: {rendered} of {views} widgets rendered"
            images = browser.evaluate("Array.from(document.images).map(i => [i.src, i.complete && i.naturalWidth > 0])")
            assert images, f"{page.name}: no images"
            broken = [src for src, ok in images if not ok]
            assert not broken, f"{page.name}: images failed to load: {broken[:3]}"


def test_kernel_polls_are_sliced_and_keep_the_overall_timeout(monkeypatch):
    """A missed zmq wake-up costs at most one slice: a message that becomes ready after the first slice is
    returned; with none, Empty comes after the caller's timeout, not before."""
    import asyncio
    from queue import Empty

    from jupyter_client.channels import AsyncZMQSocketChannel

    calls = []

    async def fake(self, timeout=None):
        calls.append(timeout)
        if len(calls) == 3 and self == "ready later":
            return {"msg": 1}
        await asyncio.sleep(0)
        raise Empty

    monkeypatch.setattr(AsyncZMQSocketChannel, "get_msg", fake)
    monkeypatch.setattr(site_build, "POLL_SLICE_SECONDS", 0.01)
    with site_build._sliced_kernel_polls():
        assert asyncio.run(AsyncZMQSocketChannel.get_msg("ready later", timeout=None)) == {"msg": 1}
        assert calls == [0.01] * 3  # a wait without timeout polls in slices too
        calls.clear()
        t0 = time.monotonic()
        with pytest.raises(Empty):
            asyncio.run(AsyncZMQSocketChannel.get_msg("never", timeout=0.05))
        assert time.monotonic() - t0 >= 0.04 and len(calls) >= 4
    assert AsyncZMQSocketChannel.get_msg is fake  # restored


def _executed_notebook(tmp_path):
    """A small executed chapter: a title cell, code with stderr, a tqdm bar (stream and widget), the findings cell."""
    bar = "scan:  40%|####      | 4/10 [00:01<00:02,  3.1img/s]"
    cells = [
        {"cell_type": "markdown", "id": "t", "metadata": {}, "source": "# 9. A chapter\n\nIntro text."},
        {"cell_type": "code", "id": "a", "metadata": {}, "execution_count": 1, "source": "work()", "outputs": [
            {"output_type": "stream", "name": "stderr", "text": "UserWarning: something\n"},
            {"output_type": "stream", "name": "stderr", "text": bar + "\r"},
            {"output_type": "display_data", "metadata": {}, "data": {
                "text/plain": bar, "application/vnd.jupyter.widget-view+json": {"model_id": "x", "version_major": 2,
                                                                                 "version_minor": 0}}},
            {"output_type": "stream", "name": "stdout", "text": "a result: 40% of 10 [kept]\n"}]},
        {"cell_type": "code", "id": "f", "metadata": {"tags": ["findings"]}, "execution_count": 2, "source": "box()",
         "outputs": [{"output_type": "display_data", "metadata": {}, "data": {"text/markdown": "```{admonition} Findings\n```"}}]},
    ]
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def test_prepare_for_site_drops_machinery_and_puts_the_findings_under_the_title(tmp_path):
    path = _executed_notebook(tmp_path)
    done = site_build.prepare_for_site(path)
    assert done == {"stderr": 2, "progress": 1, "findings": True, "collapsed": 1}
    nb = json.loads(path.read_text())
    assert [c["id"] for c in nb["cells"]] == ["t", "f", "t-intro", "a"]
    assert nb["cells"][3]["metadata"]["tags"] == ["hide-input"]  # the code is a click away, its result shown
    assert nb["cells"][1]["metadata"]["tags"] == ["findings", "remove-input"]  # not collapsed: removed
    assert nb["cells"][0]["source"] == "# 9. A chapter\n" and nb["cells"][2]["source"].startswith("Intro text.")
    assert "remove-input" in nb["cells"][1]["metadata"]["tags"]
    assert [o["text"] for o in nb["cells"][3]["outputs"]] == ["a result: 40% of 10 [kept]\n"]  # not a bar


def test_page_problems_name_each_kind_of_machinery():
    clean = '<h1>T</h1><div class="tip findings admonition">box</div><div class="cell_input">code</div>'
    assert site_build.page_problems(clean, "p") == []
    late = '<div class="cell_input">code</div><div class="tip findings admonition">box</div>'
    assert site_build.page_problems(late, "p") == ["p: the findings box comes after the first code cell"]
    dirty = ('<div class="cell_input">x</div><div class="output stderr"><pre>scan:  40%|####  | 4/10 [00:01]</pre></div>'
             '<pre>Traceback (most recent call last):</pre><p>see shared/papers.md</p>')
    problems = site_build.page_problems(dirty, "p")
    assert {p.split(": ", 1)[1] for p in problems} == {
        "progress-bar text on the page", "a stderr block", "a traceback", "refers to a file a reader cannot see",
        "no findings box"}


def test_section_markdown_repeats_the_box_lines_that_cite_a_section():
    from padlib.chapters.findings import Finding, section_markdown

    box = [Finding("supported", "Trained networks have PANs", "more than random init", "12% vs 1%", "4 models",
                   section="sec-a"),
           Finding("not testable here", "PANs are 2%", "about 2%", "", "4 models", needed="the paper's threshold",
                   section="sec-b")]
    assert section_markdown(box, "sec-a") == ("**Supported.** *Trained networks have PANs.* Claimed: more than "
                                              "random init; observed: 12% vs 1%. Evidence: 4 models.")
    assert section_markdown(box, "sec-b") == ("**Not testable here.** *PANs are 2%.* Claimed: about 2%. Not testable "
                                              "here: the paper's threshold. Evidence: 4 models.")
    assert section_markdown(box, "elsewhere") == ""


def test_findings_markdown_is_an_admonition_with_one_line_per_claim_and_the_legend():
    from padlib.errors import PadlibError
    from padlib.chapters.findings import Finding, findings_markdown

    md = findings_markdown([Finding("supported", "Claim one", "+1", "+2 [+1, +3]", "3 models", section="sec-one"),
                            Finding("inconclusive", "Claim two", "+1", "+0.1 [-1, +1.2]", "3 models",
                                    detectable="1.4")])
    lines = md.splitlines()
    assert lines[0] == "```{admonition} Findings" and lines[1] == ":class: tip findings" and lines[-1] == "```"
    assert lines[3] == ('- **supported**: Claim one. Claimed: +1; observed: +2 [+1, +3]. Evidence: 3 models. '
                        '(<a href="#sec-one">figure</a>)')
    assert lines[4] == ("- **inconclusive**: Claim two. Claimed: +1; observed: +0.1 [-1, +1.2]; smallest detectable "
                        "effect (80% power): 1.4. Evidence: 3 models.")
    assert "**not testable here**" in lines[-2] and "**contradicted**" in lines[-2]
    with pytest.raises(PadlibError, match="verdict must be one of"):
        Finding("holds", "c", "+1", "+1", "s")
    with pytest.raises(PadlibError, match="smallest effect"):
        Finding("inconclusive", "c", "+1", "+0 [-1, 1]", "s")
    with pytest.raises(PadlibError, match="what would be needed"):
        Finding("not testable here", "c", "+1", "", "s")
    with pytest.raises(PadlibError, match="observed effect"):
        Finding("supported", "c", "+1", "", "s")
    with pytest.raises(PadlibError, match="full stop"):
        Finding("supported", "Claim. More", "+1", "+1", "s")
    with pytest.raises(PadlibError, match="at least one"):
        findings_markdown([])


@pytest.mark.site
def test_chapter_pages_open_with_their_findings_and_fit_the_page_in_headless_chromium(site):
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no chromium on PATH (Debian package 'chromium'; .ci/run installs it)")
    with Browser(chromium) as browser:
        browser.call("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)
        for page in sorted(site.glob("notebooks/*.html")) + [site / "book" / "intro.html"]:
            browser.open(page.as_uri())
            assert browser.wait_for('document.readyState === "complete"', 30)
            tops = browser.evaluate(  # the first code cell's own box: its input may be collapsed (hide-input)
                "(() => { const b = document.querySelector('div.admonition.findings');"
                " const c = document.querySelector('div.cell:not(.tag_findings)');"
                " return [b ? b.getBoundingClientRect().top : null, c ? c.getBoundingClientRect().top : null]; })()")
            if page.name != "intro.html":
                assert tops[0] is not None, f"{page.name}: no findings box"
                assert tops[1] is None or tops[0] < tops[1], f"{page.name}: findings box below the first code cell"
            wide = browser.evaluate(
                "Array.from(document.querySelectorAll('div.cell_output pre'))"
                ".filter(p => p.scrollWidth > p.clientWidth + 2).map(p => p.textContent.slice(0, 60))")
            assert not wide, f"{page.name}: output lines wider than the page: {wide[:2]}"
            wide_tables = browser.evaluate(  # a table that scrolls sideways or runs past the text column
                "(() => { const main = document.querySelector('article') || document.querySelector('main') || document.body;"
                " const right = main.getBoundingClientRect().right;"
                " return Array.from(document.querySelectorAll('table, div.highlight pre'))"
                ".filter(t => !t.closest('div.cell_input'))"
                ".filter(t => t.scrollWidth > t.clientWidth + 2 || t.getBoundingClientRect().right > right + 2)"
                ".map(t => t.textContent.trim().slice(0, 60)); })()")
            assert not wide_tables, f"{page.name}: tables or code wider than the page: {wide_tables[:2]}"
            shown = browser.evaluate(  # code is collapsed on the site: no cell source visible before a click
                "Array.from(document.querySelectorAll('div.cell_input'))"
                ".filter(c => !c.closest('details:not([open])')).length")
            assert shown == 0, f"{page.name}: {shown} code cells shown expanded"


def test_findings_summary_collects_every_chapter_box_with_its_numbers(tmp_path):
    from padlib.chapters.findings import MIME, Finding, findings_markdown, findings_rows

    for i, nb in enumerate(site_build.chapters()):
        box = [Finding("inconclusive", f"Claim {i}", "+1.2% | paper", "+0.3 [-0.2, +0.8]", "5 seeds", detectable="0.9")]
        data = {"text/markdown": findings_markdown(box), MIME: {"findings": findings_rows(box)}} if i != 2 else \
            {"text/markdown": findings_markdown(box)}  # a box without its rows: read back from the Markdown
        cells = [{"cell_type": "code", "id": "f", "metadata": {"tags": ["findings"]}, "source": "", "outputs": [
            {"output_type": "display_data", "metadata": {}, "data": data}]}] if i else []
        (tmp_path / nb.name).write_text(json.dumps({"cells": cells}))
    table = site_build.findings_summary(tmp_path).splitlines()
    assert table[0].startswith("| Verdict | Claim | Claimed | Observed |") and table[1].startswith("|---|")
    assert table[2].startswith("| | (no findings")
    assert table[3] == (f"| **inconclusive** | Claim 1 | +1.2% / paper | +0.3 [-0.2, +0.8] | 0.9 | "
                        f"{{doc}}`2 <../notebooks/{site_build.chapters()[1].stem}>` |")
    assert table[4].startswith("| **inconclusive** | Claim 2 |")
    assert any(line.startswith("- **not testable here**") for line in table)  # the legend follows the table
    assert "<!-- padlib:findings-summary -->" in (site_build.REPO / "book" / "intro.md").read_text()


def _page(box_items, sections):
    box = "".join(f"<li><p><strong>{v}</strong>: {c}. Claimed: x.</p></li>" for v, c in box_items)
    return (f'<h1>T</h1><div class="tip findings admonition"><ul>{box}</ul><p>legend</p></div>'
            + "".join(sections))


def test_verdict_mismatches_compares_each_box_line_with_its_section():
    ok = _page([("supported", "A claim"), ("not testable here", "B claim")],
               ["<p><strong>Supported.</strong> <em>A claim.</em> Claimed: x.</p>",
                "<p><strong>Not testable here.</strong> <em>B claim.</em> Claimed: x.</p>"])
    assert site_build.verdict_mismatches(ok, "p") == []
    differs = _page([("supported", "A claim")], ["<p><strong>Inconclusive.</strong> <em>A claim.</em> x</p>"])
    assert site_build.verdict_mismatches(differs, "p") == [
        "p: the box says 'supported' on 'a claim', its section says inconclusive"]
    missing = _page([("supported", "A claim")], [])
    assert site_build.verdict_mismatches(missing, "p") == ["p: no section shows the verdict on 'a claim'"]
    extra = _page([("supported", "A claim")], ["<p><strong>Supported.</strong> <em>A claim.</em> x</p>",
                                                "<p><strong>Contradicted.</strong> <em>Other claim.</em> x</p>"])
    assert site_build.verdict_mismatches(extra, "p") == [
        "p: a section's verdict on 'other claim' is not in the findings box"]
    hidden = _page([("supported", "A claim")],
                   ["<details><summary>s</summary><p><strong>Supported.</strong> <em>A claim.</em> x</p></details>"])
    assert site_build.verdict_mismatches(hidden, "p") == ["p: the verdict on 'a claim' sits in a collapsed block"]
    assert site_build.verdict_mismatches("<p>no box</p>", "p") == ["p: no findings box"]


def test_prepare_for_site_keeps_the_findings_of_a_notebook_without_a_title(tmp_path):
    path = _executed_notebook(tmp_path)
    nb = json.loads(path.read_text())
    nb["cells"][0]["source"] = "Intro text only."
    path.write_text(json.dumps(nb))
    assert site_build.prepare_for_site(path)["findings"]
    assert [c["id"] for c in json.loads(path.read_text())["cells"]] == ["f", "t", "a"]
