"""Pictures for people: an alarm's timeline and a fleet's alarm map, as PNG bytes.

Drawn with matplotlib's object API on an Agg canvas (no pyplot, no global state), so that run
workers and the CLI can draw from any thread without a display.
"""

from jobs_pipeline.calc.alarm_timeline import AlarmTimeline
from jobs_pipeline.report.fleet import FleetCell, fleet_heatmap_figure, fleet_heatmap_png
from jobs_pipeline.report.timeline import (
    alarm_timeline_figure,
    alarm_timeline_png,
    markdown_image,
)

__all__ = [
    "AlarmTimeline",
    "FleetCell",
    "alarm_timeline_figure",
    "alarm_timeline_png",
    "fleet_heatmap_figure",
    "fleet_heatmap_png",
    "markdown_image",
]
