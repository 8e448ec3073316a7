"""Pure pandas/numpy calculations and the value types they use."""

from jobs_pipeline.calc.alarm_threshold import (
    FRAME_COLUMNS,
    OPERATORS,
    AlarmCalcThreshold,
    AlarmOccurrenceSpan,
    Episodes,
    OccurrenceArrays,
)
from jobs_pipeline.calc.data_quality import DataQuality, assess_data_quality, format_duration
from jobs_pipeline.calc.datetime_range import SEED_FORMAT, DateTimeRange, parse_timestamp

__all__ = [
    "FRAME_COLUMNS",
    "OPERATORS",
    "SEED_FORMAT",
    "AlarmCalcThreshold",
    "AlarmOccurrenceSpan",
    "DataQuality",
    "DateTimeRange",
    "Episodes",
    "OccurrenceArrays",
    "assess_data_quality",
    "format_duration",
    "parse_timestamp",
]
