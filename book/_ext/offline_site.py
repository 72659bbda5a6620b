"""Sphinx extension: keep the built site free of outside requests.

Jupyter Book 1 always loads sphinx-thebe, whose pages reference thebe on a CDN and a public Binder even
when launch buttons are off. This book has no live kernels, so the thebe scripts and config are dropped.
"""
import re
from pathlib import Path

THEBE_CONFIG = re.compile(r'<script type="text/x-thebe-config">.*?</script>\s*(<script>kernelName = [^<]*</script>)?',
                          re.S)


def _is_thebe(script) -> bool:
    """A thebe script: by its file name, or a short inline body that sets thebe up. Never by a substring of a
    large inline body (a widget state's base64 images can spell "thebe" by chance)."""
    body = str((getattr(script, "attributes", None) or {}).get("body", "") or "")
    if body:
        return len(body) < 5000 and "thebe" in body.lower()
    return "thebe" in str(script).lower()


def _strip_thebe(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if scripts is not None:
        scripts[:] = [s for s in scripts if not _is_thebe(s)]
    css = context.get("css_files")
    if css is not None:
        css[:] = [c for c in css if "thebe" not in str(c).lower()]
    if "body" in context:
        context["body"] = THEBE_CONFIG.sub("", context["body"])


def _remove_thebe_files(app, exception):
    if exception is None and app.builder.format == "html":
        for f in Path(app.outdir, "_static").glob("sphinx-thebe.*"):
            f.unlink()


def setup(app):
    app.connect("html-page-context", _strip_thebe, priority=900)
    app.connect("build-finished", _remove_thebe_files)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
