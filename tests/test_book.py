"""Every chapter executes headless in smoke mode; the site built from them is complete, offline and renders.

This is the newcomer path in miniature: papermill runs each notebook with ``smoke=True``, Jupyter Book
builds the site strictly, and a headless Chromium opens the pages that hold widgets.
"""
import json
import time
from pathlib import Path

import pytest

from padlib import book

from .browser import Browser, find_chromium

CHAPTERS = book.chapters()


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


@pytest.mark.site
@pytest.mark.parametrize("notebook", CHAPTERS, ids=[nb.stem for nb in CHAPTERS])
def test_chapter_executes_in_smoke_mode(notebook, smoke_dir):
    out = smoke_dir / "executed" / "notebooks" / notebook.name
    seconds = book.execute_notebook(notebook, out, {"smoke": True})
    print(f"{notebook.stem}: {seconds:.1f} s")
    nb = json.loads(out.read_text())
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and "remove-cell" in injected[0]["metadata"]["tags"]


@pytest.fixture(scope="session")
def site(smoke_dir):
    missing = [nb.name for nb in CHAPTERS if not (smoke_dir / "executed" / "notebooks" / nb.name).exists()]
    if missing:
        pytest.fail(f"chapters failed to execute: {missing}")
    return book.build_site(smoke_dir / "executed", smoke_dir)


@pytest.mark.site
def test_site_has_every_page_with_figures_and_no_outside_references(site):
    assert book.site_problems(site) == []
    text = (site / "notebooks" / f"{CHAPTERS[0].stem}.html").read_text()
    assert "injected-parameters" not in text  # papermill's cell is hidden


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
    monkeypatch.setattr(book, "POLL_SLICE_SECONDS", 0.01)
    with book._sliced_kernel_polls():
        assert asyncio.run(AsyncZMQSocketChannel.get_msg("ready later", timeout=None)) == {"msg": 1}
        assert calls == [0.01] * 3  # a wait without timeout polls in slices too
        calls.clear()
        t0 = time.monotonic()
        with pytest.raises(Empty):
            asyncio.run(AsyncZMQSocketChannel.get_msg("never", timeout=0.05))
        assert time.monotonic() - t0 >= 0.04 and len(calls) >= 4
    assert AsyncZMQSocketChannel.get_msg is fake  # restored
