"""The vectorised alarm calculation equals a sample-by-sample reference over random series whose
timestamps are off the hour, jittered, denser than the sampling period and full of holes of every
size around the contiguity limit of 1.5 sampling periods."""

from datetime import UTC

import numpy as np
import pandas as pd
from hypothesis import given, settings

from jobs_pipeline.calc import AlarmCalcThreshold, DateTimeRange
from jobs_pipeline_tests.calc.alarm_reference import as_datetime, as_ns, reference
from jobs_pipeline_tests.calc.alarm_strategies import cases


@settings(max_examples=400, deadline=None)
@given(cases())
def test_matches_sample_by_sample_reference(
    case: tuple[AlarmCalcThreshold, pd.Series, DateTimeRange],
) -> None:
    alarm, values, period = case
    stamps = values.index.as_unit("ns").asi8.tolist()
    expected = reference(alarm, stamps, values.tolist(), as_ns(period.start), as_ns(period.end))

    found = alarm.find_occurrences(values, period)
    frame = alarm.find_occurrences_frame(values, period)
    arrays = alarm.find_occurrences_arrays(values, period)

    assert [(o.start, o.end, o.peak_value) for o in found] == [
        (as_datetime(s), as_datetime(e), p) for s, e, p in expected
    ]
    expected_frame = pd.DataFrame(
        {
            "start": pd.DatetimeIndex(
                np.array([s for s, _, _ in expected], dtype=np.int64).view("M8[ns]"), tz=UTC
            ),
            "end": pd.DatetimeIndex(
                np.array([e for _, e, _ in expected], dtype=np.int64).view("M8[ns]"), tz=UTC
            ),
            "peak_value": np.array([p for _, _, p in expected], dtype=np.float64),
        }
    )
    pd.testing.assert_frame_equal(frame, expected_frame)
    assert (
        list(
            zip(
                arrays.start.view(np.int64).tolist(),
                arrays.end.view(np.int64).tolist(),
                arrays.peak_value.tolist(),
                strict=True,
            )
        )
        == expected
    )
