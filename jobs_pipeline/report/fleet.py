"""A fleet's alarms at a glance: objects x alarms, occurrences and alarm time per cell."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np


@dataclass(frozen=True, kw_only=True)
class FleetCell:
    object_name: str
    alarm_label: str
    occurrences: int
    alarm_time: timedelta
    failed: bool = False  # the step of this cell failed: its counts are unknown


def _duration(value: timedelta) -> str:
    minutes = int(value.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d}" if hours < 48 else f"{hours // 24} d {hours % 24} h"


def fleet_heatmap_png(cells: Sequence[FleetCell], *, title: str, dpi: int = 80) -> bytes:
    """A heat map: one row per object, one column per alarm, colour by total alarm time,
    each cell labelled with its occurrences and alarm time; failed cells crossed out."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    objects = sorted({cell.object_name for cell in cells})
    alarms = sorted({cell.alarm_label for cell in cells})
    hours = np.full((len(objects), len(alarms)), np.nan)
    by_position = {}
    for cell in cells:
        row, column = objects.index(cell.object_name), alarms.index(cell.alarm_label)
        by_position[row, column] = cell
        if not cell.failed:
            hours[row, column] = cell.alarm_time.total_seconds() / 3600
    width = min(2.0 + 1.6 * len(alarms), 16.0)
    height = min(1.2 + 0.45 * len(objects), 24.0)
    figure = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(hours, cmap="OrRd", aspect="auto", vmin=0)
    figure.colorbar(image, ax=axes, label="alarm time [h]", shrink=0.8)
    axes.set_xticks(range(len(alarms)), alarms, rotation=20, ha="right", fontsize=8)
    axes.set_yticks(range(len(objects)), objects, fontsize=8)
    if len(objects) * len(alarms) <= 400:  # beyond that, labels would be unreadable
        peak = np.nanmax(hours) if np.isfinite(hours).any() else 0.0
        for (row, column), cell in by_position.items():
            text = "failed" if cell.failed else f"{cell.occurrences}\n{_duration(cell.alarm_time)}"
            dark = not cell.failed and peak > 0 and hours[row, column] > peak * 0.6
            axes.text(
                column,
                row,
                text,
                ha="center",
                va="center",
                fontsize=7,
                color="white" if dark else "black",
            )
    axes.set_title(title, fontsize=10)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
