"""The findings box that opens each chapter: one line per claim tested, generated from the computed results.

A chapter's last cell builds its :class:`Finding` rows from its tables (the chapter modules' ``*_findings_box``
functions) and shows :func:`findings_markdown` with ``display(Markdown(...))``; the book build moves that cell
(tagged ``findings``) under the chapter title, so the reader meets the answer first and the numbers cannot
drift from the tables below it.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import PadlibError

VERDICTS = ("holds", "partly", "not here")


@dataclass
class Finding:
    """One claim: the verdict (one of :data:`VERDICTS`), the claim in a few words, the key number with its
    interval in plain words, and the section (heading anchor on the chapter page) whose figure shows it."""

    verdict: str
    claim: str
    evidence: str
    section: str = ""

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise PadlibError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


def _evidence_sentence(f: Finding) -> str:
    """A finding's evidence as a sentence: it starts with a capital, unless it starts with a name (a column, a
    measure: has an underscore)."""
    first = f.evidence.split(" ", 1)[0]
    return f.evidence if "_" in first else f.evidence[:1].upper() + f.evidence[1:]


def findings_markdown(findings: list[Finding], title: str = "Findings") -> str:
    """The findings box as MyST Markdown: an admonition with one bullet per finding, verdict first."""
    if not findings:
        raise PadlibError("a findings box needs at least one finding")
    lines = [f"```{{admonition}} {title}", ":class: tip findings", ""]
    for f in findings:
        link = f' (<a href="#{f.section}">figure</a>)' if f.section else ""
        lines.append(f"- **{f.verdict}**: {f.claim}. {_evidence_sentence(f)}{link}")
    lines.append("```")
    return "\n".join(lines)


def verdict_of(share: float, all_: float = 1.0) -> str:
    """'holds' when every unit (model, layer...) passes, 'partly' when some do, 'not here' when none does."""
    if share >= all_:
        return "holds"
    return "partly" if share > 0 else "not here"


def section_markdown(findings: list[Finding], section: str | None = None) -> str:
    """The findings box's lines for one section (all given, with ``section=None``), as plain sentences to show
    under the figure they rest on: the same :class:`Finding` rows, so the section and the box cannot disagree.
    Empty when none cites the section."""
    lines = []
    for f in findings:
        if section is not None and f.section != section:
            continue
        evidence = _evidence_sentence(f)
        end = "" if evidence.endswith(".") else "."
        lines.append(f"**{f.verdict[:1].upper() + f.verdict[1:]}.** *{f.claim}.* {evidence}{end}")
    return "\n\n".join(lines)

