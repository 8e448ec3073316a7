"""Short occurrences stay visible on long timelines (`alarms plot` and step pictures).

Widths are measured on the rendered pixels: the run of red columns across the plot's middle
where the occurrence is.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text

from jobs_pipeline.report import AlarmTimeline, alarm_timeline_figure
from jobs_pipeline.report.timeline import MIN_OCCURRENCE_POINTS, _date_number
from jobs_pipeline_tests.report.figures import texts_outside

START = datetime(2025, 12, 18, tzinfo=UTC)
DAYS = 14
LEVEL = 7.0  # the height at which widths are measured: no line or grid there


def timeline(occurrences: list[tuple[datetime, datetime]], days: int = DAYS) -> AlarmTimeline:
    index = pd.date_range(START, periods=days * 144, freq="10min")
    return AlarmTimeline(
        object_name="LAN-01",
        alarm_id=1004,
        alarm_name="Rotor overspeed",
        feature="rotor_speed",
        unit="rpm",
        operator=">",
        threshold=10.0,
        clear_threshold=None,
        sampling_period=timedelta(minutes=10),
        start=START,
        end=START + timedelta(days=days),
        values=pd.Series(0.0, index=index),
        occurrences=occurrences,
    )


def red_run(figure: Figure, moment: datetime) -> int:
    """How many pixels wide the red drawn at `moment` is, across the plot at `LEVEL`."""
    figure.canvas.draw()
    pixels = np.asarray(figure.canvas.buffer_rgba())  # type: ignore[attr-defined]
    axes = figure.axes[0]
    x, y = axes.transData.transform((_date_number(moment), LEVEL))
    row = pixels[pixels.shape[0] - 1 - round(y)].astype(int)
    red = (row[:, 0] - row[:, 1]) > 25
    column = round(x)
    assert red[column], "no red where the occurrence is"
    left, right = column, column
    while red[left - 1]:
        left -= 1
    while red[right + 1]:
        right += 1
    return right - left + 1


def ten_minutes_at(hours: float) -> tuple[datetime, datetime]:
    start = START + timedelta(hours=hours)
    return start, start + timedelta(minutes=10)


@pytest.mark.parametrize(
    ("size", "dpi"),
    [((8.0, 3.0), 80), ((7.0, 2.6), 72)],  # `alarms plot`, a step's picture
)
def test_a_ten_minute_occurrence_is_visible_on_a_fourteen_day_plot(
    size: tuple[float, float], dpi: int
) -> None:
    short = ten_minutes_at(5 * 24 + 3.2)
    long = (START + timedelta(days=9), START + timedelta(days=10))
    figure = alarm_timeline_figure(timeline([short, long]), width=size[0], height=size[1], dpi=dpi)

    # True to scale it would be a fifth of a pixel; it is at least the minimum width, and no
    # wider than that plus antialiasing.
    minimum = MIN_OCCURRENCE_POINTS * dpi / 72
    assert minimum - 0.5 <= red_run(figure, short[0] + timedelta(minutes=5)) <= minimum + 2
    # A long occurrence keeps its true width.
    axes = figure.axes[0]
    day = axes.transData.transform((1.0, 0.0))[0] - axes.transData.transform((0.0, 0.0))[0]
    assert abs(red_run(figure, long[0] + timedelta(hours=12)) - day) <= 2
    # And the short one is marked at the top of the plot, where the legend no longer sits.
    marks = [line for line in axes.get_lines() if line.get_marker() == "v"]
    assert len(marks) == 1
    assert list(marks[0].get_xdata()) == [_date_number(short[0] + timedelta(minutes=5))]


def test_ticks_on_a_fourteen_day_axis_are_hours_apart() -> None:
    figure = alarm_timeline_figure(timeline([ten_minutes_at(30.0)]))
    figure.canvas.draw()
    axis = figure.axes[0].xaxis
    ticks = np.diff(np.union1d(axis.get_majorticklocs(), axis.get_minorticklocs()))
    assert len(ticks) >= 40 and ticks.max() <= 0.25 + 1e-9  # days, so at most 6 h apart


def test_many_short_occurrences_are_listed_beside_the_plot() -> None:
    few = [ten_minutes_at(10.0 * number + 1) for number in range(3)]
    figure = alarm_timeline_figure(timeline(few))
    assert len(figure.axes) == 1
    assert not any("short occurrences" in text.get_text() for text in figure.findobj(Text))

    many = [ten_minutes_at(10.0 * number + 1) for number in range(30)]
    figure = alarm_timeline_figure(timeline(many), width=7.0, height=2.6, dpi=72)

    assert len(figure.axes) == 2
    (listing,) = figure.axes[1].texts
    lines = listing.get_text().split("\n")
    assert lines[:3] == [
        "short occurrences (30)",
        "start (UTC)       duration",
        "2025-12-18 01:00  10 min",
    ]
    assert lines[3] == "2025-12-18 11:00  10 min"
    listed = len(lines) - 3
    assert lines[-1] == f"... and {30 - listed} more"
    assert 10 <= listed < 30
    assert texts_outside(figure) == []


def test_a_long_title_wraps_inside_a_step_picture() -> None:
    named = replace(
        timeline([ten_minutes_at(30.0)]),
        object_name="Windpark Nordsee Ost, turbine 117 (Adwen AD 5-116)",
        alarm_name="Gearbox oil temperature above the manufacturer's warning threshold",
    )
    figure = alarm_timeline_figure(named, width=7.0, height=2.6, dpi=72)

    assert texts_outside(figure) == []
