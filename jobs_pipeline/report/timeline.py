"""One alarm over one object's feature: the signal, its thresholds, occurrences, gaps."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from jobs_pipeline.perfdb.records import AlarmDefinition

# Long periods are drawn from at most this many points (the min and max of each bucket), so a
# year of 1-minute data costs what a day does, and no peak disappears.
MAX_DRAWN_POINTS = 2000
GAP_FACTOR = 1.5  # the calculation's rule: farther apart than 1.5 periods is a gap


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


def alarm_timeline_png(
    timeline: AlarmTimeline, *, width: float = 8.0, height: float = 3.0, dpi: int = 80
) -> bytes:
    """The timeline as a PNG: values as a line, the threshold (red) and clear threshold (orange)
    as horizontal lines, occurrences shaded red, no-data stretches hatched grey, UTC times."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
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

    def naive(moment: datetime) -> float:
        """Matplotlib's date number of a UTC instant (the axis is labelled UTC)."""
        return float(date2num(pd.Timestamp(moment).tz_convert("UTC").tz_localize(None)))

    for number, (start, end) in enumerate(timeline.occurrences):
        axes.axvspan(
            naive(start),
            naive(end),
            color="#e53935",
            alpha=0.25,
            linewidth=0,
            label=f"occurrences ({len(timeline.occurrences)})" if number == 0 else None,
        )
    for number, (start, end) in enumerate(_no_data_spans(timeline)):
        axes.axvspan(
            naive(start),
            naive(end),
            facecolor="none",
            edgecolor="#9e9e9e",
            hatch="///",
            linewidth=0,
            label="no data" if number == 0 else None,
        )
    axes.set_xlim(naive(timeline.start), naive(timeline.end))
    locator = AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    axes.set_xlabel("time (UTC)")
    axes.set_ylabel(f"{timeline.feature} [{timeline.unit}]" if timeline.unit else timeline.feature)
    axes.set_title(
        f"{timeline.object_name} · alarm {timeline.alarm_id} {timeline.alarm_name}", fontsize=10
    )
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize=7, framealpha=0.8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def markdown_image(png: bytes, alt: str) -> str:
    """Markdown with the PNG inline (a data URI), for Dagster's markdown metadata."""
    encoded = base64.b64encode(png).decode("ascii")
    return f"![{alt}](data:image/png;base64,{encoded})"
