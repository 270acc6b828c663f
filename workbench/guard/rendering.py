"""Turn the guard's decision about a table into what is shown: banner plus masked table or schema.

Every output format the patched pandas methods produce goes through `guarded_output`: plain
text, HTML, Markdown, LaTeX and the JSON table schema. The banner says how many cells were
masked and why; it never quotes a masked value.

While the guard renders, `rendering()` is in effect: the patched pandas methods then behave as
the originals, so rendering the masked table does not loop back into the guard, and tables
from registered reviewed types (see `workbench.guard.registry`) are shown as they are.
"""

from __future__ import annotations

import contextlib
import html
from contextvars import ContextVar
from typing import Any, Callable, Iterator, Literal

import pandas as pd

from workbench.guard.masking import MASK, WITHHELD, GuardDecision, Table, guard_table, summarize_schema
from workbench.guard.settings import GuardSettings, current_settings

Format = Literal["plain", "html", "markdown", "latex", "json"]

# Where the banner sends the analyst for a table that may be released.
REVIEWED_TABLE_HINT = "workbench.disclosure.protect_tables(...)"

BANNER_CLASS = "workbench-guard-banner"
_BANNER_STYLE = (
    "border-left:4px solid #b45309;background:#fff7ed;color:#431407;"
    "padding:6px 10px;margin:4px 0;font-family:sans-serif;font-size:13px"
)

_inside_guard: ContextVar[bool] = ContextVar("workbench_guard_rendering", default=False)


def is_rendering() -> bool:
    """True while the guard (or a registered reviewed type) is rendering: pass through to pandas."""
    return _inside_guard.get()


@contextlib.contextmanager
def rendering() -> Iterator[None]:
    token = _inside_guard.set(True)
    try:
        yield
    finally:
        _inside_guard.reset(token)


def decide(data: Table, settings: GuardSettings | None = None) -> GuardDecision:
    settings = settings or current_settings()
    return guard_table(data, settings.rule, settings.level, aggregate_only=settings.aggregate_only)


# --- banner ---------------------------------------------------------------------------------

def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def banner_sentences(decision: GuardDecision, settings: GuardSettings, notes: tuple[str, ...] = ()) -> list[str]:
    """The banner, one sentence per item. Counts of masked cells only, never their values."""
    policy = settings.policy_name
    sentences: list[str] = []
    if settings.problem:
        sentences.append(
            f"workbench guard: no valid policy is in force ({settings.problem}), so only the schema is shown. "
            "Set one with %workbench policy NAME or workbench.guard.activate(policy=...)."
        )
    elif decision.action == "summarize":
        summary = decision.summary
        rows = summary.row_count_text(settings.rule) if summary else "?"
        if decision.unreadable:
            sentences.append(f"workbench guard: {'; '.join(decision.reasons)}, so only its schema is shown.")
        else:
            sentences.append(
                f"workbench guard: student-level data is not shown row by row in a request at the {settings.level} "
                f"level (policy {policy}): {'; '.join(decision.reasons)}."
            )
        if summary is not None:
            sentences.append(f"Schema only: {rows}, {len(summary.columns) + summary.hidden_labels} columns.")
        if not decision.unreadable:
            sentences.append(f"Aggregate it (counts by group), then use {REVIEWED_TABLE_HINT} for a reviewed table.")
    else:
        report = decision.report
        if report.masked_cells:
            text = (
                f"workbench guard: {_plural(report.masked_cells, 'cell')} masked ({MASK}) under policy {policy}: "
                f"{_plural(report.small_cells, 'small count')} ({settings.rule_text})"
            )
            if report.total_cells:
                text += f" and {report.total_cells} more that a row or column total would give them away by"
            sentences.append(text + ".")
        if report.withheld_columns:
            columns = ", ".join(report.withheld_columns)
            sentences.append(
                f"workbench guard: {columns} {WITHHELD}: aggregate-only under policy {policy}, never shown per student."
            )
        if report.masked_cells:
            sentences.append(
                f"This is an automatic mask, not a reviewed table: use {REVIEWED_TABLE_HINT} to produce one."
            )
    sentences.extend(notes)
    return sentences


def banner(decision: GuardDecision, settings: GuardSettings, fmt: Format, notes: tuple[str, ...] = ()) -> str:
    sentences = banner_sentences(decision, settings, notes)
    if fmt == "html":
        body = "<br>".join(html.escape(sentence) for sentence in sentences)
        return f'<div class="{BANNER_CLASS}" style="{_BANNER_STYLE}">{body}</div>'
    if fmt == "markdown":
        return "\n".join(f"> {sentence}" for sentence in sentences) + "\n\n"
    if fmt == "latex":
        return "".join(f"% {sentence}\n" for sentence in sentences)
    return "\n".join(sentences) + "\n"


# --- schema summary -------------------------------------------------------------------------

def _summary_body(decision: GuardDecision, fmt: Format) -> Any:
    frame = decision.summary.to_frame() if decision.summary else pd.DataFrame(columns=["part", "name", "dtype"])
    with rendering():
        if fmt == "html":
            return frame.to_html(index=False)
        if fmt == "json":
            return frame._repr_data_resource_()
        text = frame.to_string(index=False)
    if fmt == "markdown":
        return "\n".join(f"    {line}" for line in text.splitlines()) + "\n"
    if fmt == "latex":
        return "\\begin{verbatim}\n" + text + "\n\\end{verbatim}\n"
    return text


def _unreadable(data: Table, exc: Exception) -> GuardDecision:
    reason = f"the guard could not check this table ({type(exc).__name__})"
    try:
        summary = summarize_schema(data)
    except Exception:  # noqa: BLE001
        summary = None
    return GuardDecision("summarize", None, summary=summary, reasons=(reason,), unreadable=True)


def _join(banner_text: str, body: Any, fmt: Format) -> Any:
    if body is None:
        return None
    if fmt == "json":
        return body
    if fmt == "html" and body.lstrip().lower().startswith("<!doctype"):
        marker = body.lower().find("<body>")
        if marker >= 0:
            cut = marker + len("<body>")
            return body[:cut] + banner_text + body[cut:]
    return banner_text + body


def guarded_output(
    data: Table,
    fmt: Format,
    render: Callable[[Table], Any],
    *,
    notes: list[str] | None = None,
    settings: GuardSettings | None = None,
) -> Any:
    """What to show for `data` in `fmt`. `render(table)` draws a table with the original pandas
    method (it runs inside `rendering()`); it is called with `data` itself when nothing changes.
    `render` may append to `notes` (say, that custom formatting was dropped); they end the banner."""
    notes = notes if notes is not None else []
    settings = settings or current_settings()
    try:
        decision = decide(data, settings)
    except Exception as exc:  # noqa: BLE001 - a table the guard cannot read is not shown
        decision = _unreadable(data, exc)
    if decision.action == "show":
        with rendering():
            return render(data)
    if decision.action == "summarize":
        body = _summary_body(decision, fmt)
    else:
        with rendering():
            body = render(decision.data)
    return _join(banner(decision, settings, fmt, tuple(notes)), body, fmt)
