"""Charts a partner reads: every series in the legend, a description for screen readers."""

from __future__ import annotations

from PIL import Image

from workbench.charts import Chart, bar_chart, describe_chart, save_png


def test_the_legend_keeps_every_swatch_when_the_first_group_is_suppressed(tmp_path):
    figure = bar_chart(["K", "1", "2"], [None, 0.2, 0.3], [True, False, False], title="t", value_label="percent",
                       comparison=[0.1, 0.2, 0.3], category_label="Grade")
    legend = figure.axes[0].get_legend()
    labels = [text.get_text() for text in legend.get_texts()]
    assert labels == ["Students in this report", "District", "not reported (suppressed or coded)"]
    assert all(handle.get_visible() for handle in legend.legend_handles)
    assert figure.axes[0].get_ylabel() == "Grade" and figure.axes[0].get_xlabel() == "percent"


def test_a_published_chart_carries_its_description(tmp_path):
    figure = bar_chart(["6", "7"], [0.176, None], [False, True], title="Chronically absent", value_label="percent")
    text = describe_chart(["6", "7"], ["17.6%", "*"], "Chronically absent, 2025-2026", ["23.6%", "24.4%"])
    assert text == ("Bar chart, Chronically absent, 2025-2026. 6: 17.6% (district 23.6%); "
                    "7: * (district 24.4%).")
    path = save_png(figure, tmp_path / "c.png", text)
    with Image.open(path) as image:
        assert image.info.get("Description") == text
    chart = Chart(path, text)
    assert 'alt="Bar chart, Chronically absent' in chart._repr_html_()
    assert chart._repr_png_() == path.read_bytes()
