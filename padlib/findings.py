"""Deprecated path: padlib.findings moved to padlib.chapters.findings. It keeps working for one release and warns once."""
from ._compat import moved_module

__getattr__, __dir__ = moved_module(__name__, {
    "Finding": "chapters.findings",
    "VERDICTS": "chapters.findings",
    "findings_markdown": "chapters.findings",
    "section_markdown": "chapters.findings",
    "verdict_of": "chapters.findings"
})
