"""One alarm over one object's feature: the signal, its thresholds, occurrences, gaps."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from jobs_pipeline.calc import format_duration
from jobs_pipeline.perfdb.records import AlarmDefinition

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Long periods are drawn from at most this many points (the min and max of each bucket), so a
# year of 1-minute data costs what a day does, and no peak disappears.
MAX_DRAWN_POINTS = 2000
GAP_FACTOR = 1.5  # the calculation's rule: farther apart than 1.5 periods is a gap
# An occurrence shorter than this share of the period drawn is a few pixels wide at most.
SHORT_SHARE = 0.01
MIN_OCCURRENCE_POINTS = 3.0  # the narrowest a short occurrence is drawn (3 px at 72 dpi)
MANY_SHORT = 3  # beyond this many short occurrences, they are listed beside the plot
LIST_WIDTH = 2.2  # inches added to the figure for that list
LEGEND_HEIGHT = 0.4  # inches added to the figure for the legend below the plot
LIST_FONT_SIZE = 7.0
OCCURRENCE_COLOUR = "#e53935"
SHORT_MARKER_COLOUR = "#b71c1c"


@dataclass(frozen=True, kw_only=True)
class AlarmTimeline:
    """What the picture shows. `values` is a float Series on a UTC DatetimeIndex (NaN = no
    data); `occurrences` are (start, end) pairs, end exclusive."""

    object_name: str
    alarm_id: int
    alarm_name: str
    feature: str
    unit: str
    operator: str
    threshold: float
    clear_threshold: float | None
    sampling_period: timedelta
    start: datetime
    end: datetime
    values: pd.Series
    occurrences: Sequence[tuple[datetime, datetime]] = field(default_factory=tuple)


def alarm_timeline(
    alarm: AlarmDefinition,
    *,
    object_name: str,
    start: datetime,
    end: datetime,
    values: pd.Series,
    occurrences: Sequence[tuple[datetime, datetime]],
) -> AlarmTimeline:
    """The timeline of `alarm` for one object: its rule and feature from the definition."""
    return AlarmTimeline(
        object_name=object_name,
        alarm_id=alarm.id,
        alarm_name=alarm.name,
        feature=alarm.feature.name,
        unit=alarm.feature.unit,
        operator=alarm.operator,
        threshold=alarm.threshold,
        clear_threshold=alarm.clear_threshold,
        sampling_period=alarm.feature.sampling_period,
        start=start,
        end=end,
        values=values,
        occurrences=occurrences,
    )


def _no_data_spans(timeline: AlarmTimeline) -> list[tuple[datetime, datetime]]:
    """Where the calculation had nothing to look at: holes longer than 1.5 sampling periods
    (including before the first and after the last sample) and runs of NaN samples."""
    index = timeline.values.index
    period = pd.Timedelta(timeline.sampling_period)
    start, end = pd.Timestamp(timeline.start), pd.Timestamp(timeline.end)
    if len(index) == 0:
        return [(timeline.start, timeline.end)]
    spans: list[tuple[datetime, datetime]] = []
    if index[0] - start > period * GAP_FACTOR:
        spans.append((start, index[0]))
    steps = index[1:] - index[:-1]
    spans.extend(
        (index[position] + period, index[position + 1])
        for position in np.flatnonzero(steps > period * GAP_FACTOR)
    )
    if end - index[-1] > period * GAP_FACTOR:
        spans.append((index[-1] + period, end))
    missing = timeline.values.isna().to_numpy()
    if missing.any():
        edges = np.flatnonzero(np.diff(np.concatenate(([0], missing.astype(np.int8), [0]))))
        for first, stop in zip(edges[::2], edges[1::2], strict=True):
            until = index[stop] if stop < len(index) else index[stop - 1] + period
            spans.append((index[first], until))
    return spans


def _drawn(values: pd.Series, period: timedelta) -> pd.Series:
    """The points to draw: gaps as NaN (a break in the line), long series reduced to the
    min and max of each bucket."""
    values = values.astype(float)
    if len(values) > 1:
        steps = values.index[1:] - values.index[:-1]
        breaks = values.index[:-1][steps > pd.Timedelta(period) * GAP_FACTOR]
        if len(breaks):
            gap_points = pd.Series(np.nan, index=breaks + pd.Timedelta(period))
            values = pd.concat([values, gap_points]).sort_index()
    if len(values) <= MAX_DRAWN_POINTS:
        return values
    buckets = np.arange(len(values)) // (2 * len(values) // MAX_DRAWN_POINTS + 1)
    grouped = values.groupby(buckets)
    low, high = grouped.idxmin().dropna(), grouped.idxmax().dropna()
    keep = np.union1d(low.to_numpy(), high.to_numpy())
    return values.loc[keep].sort_index()


def alarm_timeline_figure(
    timeline: AlarmTimeline, *, width: float = 8.0, height: float = 3.0, dpi: int = 80
) -> Figure:
    """The timeline: values as a line, the threshold (red) and clear threshold (orange) as
    horizontal lines, occurrences shaded red, no-data stretches hatched grey, UTC times.

    Short occurrences (see `SHORT_SHARE`) would be hairlines: each is drawn as a stripe at least
    `MIN_OCCURRENCE_POINTS` wide and marked at the top of the plot; when there are more than
    `MANY_SHORT`, they are also listed beside the plot (the figure grows by `LIST_WIDTH`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    short = _short_occurrences(timeline)
    listed = len(short) > MANY_SHORT
    figure = Figure(
        figsize=(width + (LIST_WIDTH if listed else 0.0), height + LEGEND_HEIGHT),
        dpi=dpi,
        layout="constrained",
    )
    FigureCanvasAgg(figure)
    if listed:
        axes, side = figure.subplots(1, 2, width_ratios=[width, LIST_WIDTH])
        _list_occurrences(side, short, height)
    else:
        axes = figure.add_subplot()
    # In drawing order: what is drawn later lies on top.
    _draw_signal(axes, timeline)
    _draw_occurrences(axes, timeline, short)
    _draw_no_data(axes, timeline)
    _label_axes(axes, timeline)
    # Below the plot, where it hides no occurrence.
    figure.legend(loc="outside lower center", ncols=3, fontsize=7, frameon=False)
    return figure


def _draw_signal(axes: Axes, timeline: AlarmTimeline) -> None:
    """The values (at most `MAX_DRAWN_POINTS`) and the alarm's thresholds."""
    drawn = _drawn(timeline.values, timeline.sampling_period)
    axes.plot(
        drawn.index.tz_convert("UTC").tz_localize(None),
        drawn.to_numpy(),
        color="#1f5f99",
        linewidth=0.9,
        label=timeline.feature,
    )
    axes.axhline(
        timeline.threshold,
        color="#c62828",
        linestyle="--",
        linewidth=1,
        label=f"threshold {timeline.operator} {timeline.threshold:g}",
    )
    if timeline.clear_threshold is not None:
        axes.axhline(
            timeline.clear_threshold,
            color="#ef6c00",
            linestyle=":",
            linewidth=1,
            label=f"clear {timeline.clear_threshold:g}",
        )


def _draw_occurrences(
    axes: Axes, timeline: AlarmTimeline, short: list[tuple[datetime, datetime]]
) -> None:
    """Occurrences shaded; short ones widened to a stripe and marked at the top."""
    for number, (start, end) in enumerate(timeline.occurrences):
        axes.axvspan(
            _date_number(start),
            _date_number(end),
            color=OCCURRENCE_COLOUR,
            alpha=0.25,
            linewidth=0,
            label=f"occurrences ({len(timeline.occurrences)})" if number == 0 else None,
        )
    if not short:
        return
    middles = [_date_number(start + (end - start) / 2) for start, end in short]
    for middle in middles:
        # A line's width is in points: the stripe keeps its width on any time axis.
        axes.axvline(
            middle,
            color=OCCURRENCE_COLOUR,
            alpha=0.6,
            linewidth=MIN_OCCURRENCE_POINTS,
            solid_capstyle="butt",
        )
    axes.plot(
        middles,
        [0.96] * len(middles),
        transform=axes.get_xaxis_transform(),
        linestyle="none",
        marker="v",
        markersize=6,
        color=SHORT_MARKER_COLOUR,
        label=f"short, widened ({len(short)})",
    )


def _draw_no_data(axes: Axes, timeline: AlarmTimeline) -> None:
    for number, (start, end) in enumerate(_no_data_spans(timeline)):
        axes.axvspan(
            _date_number(start),
            _date_number(end),
            facecolor="none",
            edgecolor="#9e9e9e",
            hatch="///",
            linewidth=0,
            label="no data" if number == 0 else None,
        )


def _label_axes(axes: Axes, timeline: AlarmTimeline) -> None:
    """The period as the time axis, in UTC, with the axis labels, title and grid."""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    axes.set_xlim(_date_number(timeline.start), _date_number(timeline.end))
    locator = AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    # Unlabelled ticks a few hours apart on a two-week axis: a short occurrence's time can be
    # read to within a tick from the picture alone.
    axes.xaxis.set_minor_locator(AutoDateLocator(minticks=24, maxticks=60))
    axes.set_xlabel("time (UTC)")
    axes.set_ylabel(f"{timeline.feature} [{timeline.unit}]" if timeline.unit else timeline.feature)
    axes.set_title(
        f"{timeline.object_name} · alarm {timeline.alarm_id} {timeline.alarm_name}",
        fontsize=10,
        wrap=True,
    )
    axes.grid(which="major", alpha=0.3)
    axes.grid(which="minor", axis="x", alpha=0.12)


def alarm_timeline_png(
    timeline: AlarmTimeline, *, width: float = 8.0, height: float = 3.0, dpi: int = 80
) -> bytes:
    """`alarm_timeline_figure` as PNG bytes."""
    figure = alarm_timeline_figure(timeline, width=width, height=height, dpi=dpi)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _date_number(moment: datetime) -> float:
    """Matplotlib's date number of a UTC instant (the axis is labelled UTC)."""
    from matplotlib.dates import date2num

    return float(date2num(pd.Timestamp(moment).tz_convert("UTC").tz_localize(None)))


def _short_occurrences(timeline: AlarmTimeline) -> list[tuple[datetime, datetime]]:
    period = (timeline.end - timeline.start).total_seconds()
    return [
        (start, end)
        for start, end in timeline.occurrences
        if (end - start).total_seconds() < period * SHORT_SHARE
    ]


def _list_occurrences(
    side: Axes, short: Sequence[tuple[datetime, datetime]], height: float
) -> None:
    """The short occurrences as text in `side`: start (UTC) and duration, as many as the
    figure's height holds, then how many more."""
    side.axis("off")
    room = int((height * 72 - 24) / (LIST_FONT_SIZE * 1.3)) - 1  # lines below the heading
    shown = short if len(short) <= room else short[: room - 1]
    lines = [f"short occurrences ({len(short)})", "start (UTC)       duration"]
    lines += [
        f"{pd.Timestamp(start).tz_convert('UTC'):%Y-%m-%d %H:%M}  {format_duration(end - start)}"
        for start, end in shown
    ]
    if len(shown) < len(short):
        lines.append(f"... and {len(short) - len(shown)} more")
    side.text(
        0.0,
        1.0,
        "\n".join(lines),
        transform=side.transAxes,
        ha="left",
        va="top",
        fontsize=LIST_FONT_SIZE,
        family="monospace",
        linespacing=1.3,
    )


def markdown_image(png: bytes, alt: str) -> str:
    """Markdown with the PNG inline (a data URI), for Dagster's markdown metadata."""
    encoded = base64.b64encode(png).decode("ascii")
    return f"![{alt}](data:image/png;base64,{encoded})"
