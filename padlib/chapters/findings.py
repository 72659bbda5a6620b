"""The book's four verdicts, defined once, and the findings box that opens each chapter.

A chapter's readings build one :class:`Finding` per claim from its tables (the chapter modules'
``chapter_findings_box`` functions). The same rows are shown twice: as the box under the chapter title
(:func:`show_findings`, moved there by the book build) and, one section at a time, under the figure they rest on
(:func:`section_markdown`). Both render the same fields, so a box line and its section cannot disagree, and the
site build checks that they do not (``padlib.chapters.site.verdict_mismatches``).

A verdict comes from a pre-specified primary test (:func:`judge` for one interval, :func:`judge_all` for a
claim made of every model or every axis), never from a share of units passing.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..errors import PadlibError
from ..stats import equivalence_excludes

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive"
NOT_TESTABLE = "not testable here"
VERDICTS = (SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE)

MEANINGS = {
    SUPPORTED: "the pre-specified primary test resolves the claimed direction (95% interval, multiplicity-adjusted "
               "p below 0.05 where the claim has several primary tests)",
    CONTRADICTED: "an equivalence test excludes the claimed effect (the whole interval lies short of it), or the "
                  "primary test resolves the opposite direction",
    INCONCLUSIVE: "the design cannot tell; the line gives the smallest effect it resolves (80% power) beside the "
                  "claimed one",
    NOT_TESTABLE: "the claim's premise is absent here (for example no deficit to shrink), or the design does not "
                  "reach the claim's setting; the line says what would be needed",
}

MIME = "application/vnd.padlib.findings+json"  # the box's rows, machine-readable, beside its Markdown


def legend_markdown() -> str:
    """The verdict legend, one line per word, as shown on the introduction and under every findings box."""
    return "\n".join(f"- **{v}**: {MEANINGS[v]}." for v in VERDICTS)


SHORT_MEANINGS = {
    SUPPORTED: "the primary test resolves the claimed direction",
    CONTRADICTED: "an equivalence test excludes the claimed effect, or the opposite direction is resolved",
    INCONCLUSIVE: "the design cannot tell (its smallest detectable effect is given)",
    NOT_TESTABLE: "the premise is absent or the design does not reach the claim's setting",
}


def short_legend() -> str:
    """The legend in one line, for under every findings box."""
    return "<small>Verdicts: " + "; ".join(f"**{v}**, {SHORT_MEANINGS[v]}" for v in VERDICTS) + ".</small>"


def judge(low: float, high: float, claimed: float, p: float | None = None, alpha: float = 0.05) -> str:
    """The verdict of one primary test from its interval.

    ``claimed`` is the claimed effect, signed (its sign is the claimed direction; its size, the paper's number
    or our declared smallest effect of interest, is what the equivalence test uses). ``p``, when given, is the
    test's multiplicity-adjusted p: an interval that excludes 0 counts only with ``p <= alpha``.
    supported: the interval lies on the claimed side of 0; contradicted: it lies on the other side, or wholly
    short of the claimed effect (:func:`padlib.stats.equivalence_excludes`); inconclusive otherwise.
    """
    if not (math.isfinite(low) and math.isfinite(high)) or not math.isfinite(claimed) or claimed == 0:
        raise PadlibError(f"judge needs a finite interval and a non-zero claimed effect, got [{low}, {high}], "
                          f"claimed {claimed}")
    significant = p is None or p <= alpha
    sign = 1 if claimed > 0 else -1
    if significant and sign * low > 0 and sign * high > 0:
        return SUPPORTED
    if significant and sign * low < 0 and sign * high < 0:
        return CONTRADICTED
    if equivalence_excludes(low, high, claimed):
        return CONTRADICTED
    return INCONCLUSIVE


def judge_all(verdicts) -> str:
    """The verdict of a claim made of every unit (every model, every axis): supported when every unit's primary
    test supports it, contradicted when any unit contradicts it (one counterexample is enough), otherwise
    inconclusive. Not testable here when no unit could be tested."""
    verdicts = [v for v in verdicts if v != NOT_TESTABLE]
    for v in verdicts:
        if v not in VERDICTS:
            raise PadlibError(f"verdict must be one of {VERDICTS}, got {v!r}")
    if not verdicts:
        return NOT_TESTABLE
    if all(v == SUPPORTED for v in verdicts):
        return SUPPORTED
    if any(v == CONTRADICTED for v in verdicts):
        return CONTRADICTED
    return INCONCLUSIVE


@dataclass
class Finding:
    """One claim and its verdict, with the numbers a reader needs to weigh it.

    ``claimed``: the claimed effect (the paper's number, or our stated reading of its words);
    ``observed``: the observed effect with its interval; ``detectable``: the smallest effect the design
    resolves at 80% power (required for *inconclusive*); ``needed``: what a test would need (required for
    *not testable here*); ``scale``: the scale of the evidence (pretrained models and families, or small
    networks trained here); ``test``: the primary test and its adjusted p; ``note``: anything else;
    ``section``: the heading anchor of the figure it rests on."""

    verdict: str
    claim: str
    claimed: str
    observed: str
    scale: str
    detectable: str = ""
    needed: str = ""
    test: str = ""
    note: str = ""
    section: str = ""

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise PadlibError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")
        if ". " in self.claim or self.claim.endswith("."):
            raise PadlibError(f"a claim is one sentence without a full stop inside, got {self.claim!r}")
        if self.verdict == INCONCLUSIVE and not self.detectable:
            raise PadlibError(f"an inconclusive finding states the smallest effect its design resolves ({self.claim!r})")
        if self.verdict == NOT_TESTABLE and not self.needed:
            raise PadlibError(f"a finding not testable here says what would be needed ({self.claim!r})")
        if self.verdict != NOT_TESTABLE and not self.observed:
            raise PadlibError(f"a tested finding shows its observed effect ({self.claim!r})")

    def evidence(self) -> str:
        """The numbers as one run of sentences: claimed, observed, detectable or needed, the test, the scale."""
        parts = [f"Claimed: {self.claimed}"]
        if self.observed:
            parts.append(f"observed: {self.observed}")
        if self.detectable:
            parts.append(f"smallest detectable effect (80% power): {self.detectable}")
        text = "; ".join(parts) + "."
        if self.needed:
            text += f" Not testable here: {self.needed}."
        if self.test:
            text += f" Primary test: {self.test}."
        text += f" Evidence: {self.scale}."
        if self.note:
            text += f" {self.note[:1].upper() + self.note[1:]}{'' if self.note.endswith('.') else '.'}"
        return text


def findings_markdown(findings: list[Finding], title: str = "Findings", legend: bool = True) -> str:
    """The findings box as MyST Markdown: an admonition with one bullet per finding, verdict first, and the
    verdict legend under it."""
    if not findings:
        raise PadlibError("a findings box needs at least one finding")
    lines = [f"```{{admonition}} {title}", ":class: tip findings", ""]
    for f in findings:
        link = f' (<a href="#{f.section}">figure</a>)' if f.section else ""
        lines.append(f"- **{f.verdict}**: {f.claim}. {f.evidence()}{link}")
    if legend:
        lines += ["", short_legend()]
    lines.append("```")
    return "\n".join(lines)


def findings_rows(findings: list[Finding]) -> list[dict]:
    """The box's rows as plain dicts (what the introduction's table reads back from an executed chapter)."""
    return [asdict(f) for f in findings]


def show_findings(findings: list[Finding], title: str = "Findings") -> None:
    """Display the findings box in a notebook: its Markdown, with its rows as JSON beside it for the site build."""
    from IPython.display import display
    display({"text/markdown": findings_markdown(findings, title), MIME: {"findings": findings_rows(findings)}},
            raw=True)


def section_markdown(findings: list[Finding], section: str | None = None) -> str:
    """The findings box's lines for one section (all given, with ``section=None``), to show under the figure
    they rest on: the same :class:`Finding` rows and the same evidence text, so the section and the box cannot
    disagree. Empty when none cites the section."""
    lines = []
    for f in findings:
        if section is not None and f.section != section:
            continue
        lines.append(f"**{f.verdict[:1].upper() + f.verdict[1:]}.** *{f.claim}.* {f.evidence()}")
    return "\n\n".join(lines)

