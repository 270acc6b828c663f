"""Charts for releases: bars for published values, a visible mark where a value is suppressed.

A suppressed value must not be drawn at all (its height would leak it), but a missing bar reads
as zero; so the slot gets a hatched, value-free placeholder of fixed height and the label
"suppressed". Charts are written as PNG with fixed metadata so re-running a request gives the
same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display here, and the same output under Jupyter, papermill and CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

PNG_METADATA = {"Software": None}
PUBLISHED_COLOR = "#2f6f9f"
COMPARISON_COLOR = "#b9b9b9"
SUPPRESSED_TEXT = "suppressed"
NOT_APPLICABLE = "n/a"  # a group with no student in the measure (workbench.disclosure.rates)


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float | None],
    suppressed: Sequence[bool],
    *,
    title: str,
    value_label: str,
    percent: bool = True,
    masked_labels: Sequence[str] | None = None,
    comparison: Sequence[float | None] | None = None,
    comparison_label: str = "District",
    series_label: str = "Students in this report",
    category_label: str | None = None,
):
    """A horizontal bar chart; suppressed entries get a labelled placeholder, never a bar.

    `masked_labels` is the text shown in each placeholder (a suppression mark or a coded range
    such as "<=5%"); by default "suppressed".
    """
    labels = [str(label) for label in labels]
    if not (len(labels) == len(values) == len(suppressed)):
        raise ValueError("labels, values and suppressed must have the same length")
    scale = 100.0 if percent else 1.0
    shown = [None if hidden or v is None or pd.isna(v) else float(v) * scale for v, hidden in zip(values, suppressed)]
    positions = np.arange(len(labels))
    height = 0.38 if comparison is not None else 0.7
    figure, axes = plt.subplots(figsize=(7.5, 0.45 * len(labels) + 1.6), dpi=110)
    top = max([v for v in shown if v is not None] + [1.0])
    if comparison is not None:
        district = [None if v is None or pd.isna(v) else float(v) * scale for v in comparison]
        top = max([top] + [v for v in district if v is not None])
        axes.barh(positions + height / 2, [v or 0 for v in district], height, color=COMPARISON_COLOR, label=comparison_label)
        offset = -height / 2
    else:
        offset = 0.0
    published = [v if v is not None else 0 for v in shown]
    bars = axes.barh(positions + offset, published, height, color=PUBLISHED_COLOR, label=series_label)
    placeholder = top * 0.12
    masked_labels = list(masked_labels) if masked_labels is not None else [SUPPRESSED_TEXT] * len(labels)
    for position, value, bar, masked in zip(positions, shown, bars, masked_labels):
        if value is None and masked == NOT_APPLICABLE:
            # Nothing is hidden here: no placeholder, which would read as a suppressed value.
            bar.set_visible(False)
            axes.text(top * 0.01, position + offset, "n/a (no students in this measure)", va="center", fontsize=8,
                      color="#555555")
        elif value is None:
            bar.set_visible(False)
            axes.barh(position + offset, placeholder, height, color="white", edgecolor="#8a8a8a", hatch="///")
            text = SUPPRESSED_TEXT if masked in ("*", "\u2020", "") else masked
            axes.text(placeholder + top * 0.01, position + offset, text, va="center", fontsize=8, color="#555555")
        else:
            axes.text(value + top * 0.01, position + offset, f"{value:.1f}%" if percent else f"{value:,.0f}", va="center", fontsize=8)
    axes.set_yticks(positions, labels)
    axes.invert_yaxis()
    axes.set_xlim(0, top * 1.18)
    axes.set_xlabel(value_label)
    if category_label:
        axes.set_ylabel(category_label)
    axes.set_title(title, fontsize=11, loc="left")
    axes.spines[["top", "right"]].set_visible(False)
    # Legend entries are drawn from their own swatches: taken from the bars, the series' swatch
    # vanished whenever its first bar was a suppressed (hidden) one.
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=PUBLISHED_COLOR, label=series_label)]
    if comparison is not None:
        handles.append(Patch(facecolor=COMPARISON_COLOR, label=comparison_label))
    if any(v is None and m != NOT_APPLICABLE for v, m in zip(shown, masked_labels)):
        handles.append(Patch(facecolor="white", edgecolor="#8a8a8a", hatch="///", label="not reported (suppressed or coded)"))
    axes.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=len(handles), fontsize=8,
                frameon=False)
    figure.tight_layout()
    return figure


def describe_chart(labels: Sequence[str], shown: Sequence[str], title: str,
                   comparison: Sequence[str] | None = None, comparison_label: str = "district") -> str:
    """The chart in words, for its alt text: each category with the value the table shows."""
    parts = []
    for index, (label, text) in enumerate(zip(labels, shown)):
        entry = f"{label}: {text or 'not reported'}"
        if comparison is not None and comparison[index]:
            entry += f" ({comparison_label} {comparison[index]})"
        parts.append(entry)
    return f"Bar chart, {title}. " + "; ".join(parts) + "."


def save_png(figure, path: str | Path, description: str | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = dict(PNG_METADATA)
    if description:
        metadata["Description"] = description
    figure.savefig(path, format="png", metadata=metadata)
    plt.close(figure)
    return path


class Chart:
    """A published chart as a notebook shows it: the image with its alt text and caption."""

    def __init__(self, path: Path, description: str):
        self.path = Path(path)
        self.description = description

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:  # what a plain-text reader gets: the description, no memory address
        return self.description

    def _repr_png_(self) -> bytes:
        return self.path.read_bytes()

    def _repr_html_(self) -> str:
        import base64
        import html

        data = base64.b64encode(self.path.read_bytes()).decode()
        alt = html.escape(self.description, quote=True)
        return (f'<figure style="margin:0"><img src="data:image/png;base64,{data}" alt="{alt}" '
                f'style="max-width:100%;height:auto"/></figure>')
