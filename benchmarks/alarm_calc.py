"""Times `AlarmCalcThreshold` on one year of 10-minute data against two yardsticks.

Two sets of inputs, each for every object and alarm:

* regular: the 10-minute grid from midnight, with outages and scattered missing samples;
* irregular: the same kind of data on timestamps that real loggers write, a third of the objects
  each: the grid offset by 5 minutes (:05, :15, ...), the grid with every stamp jittered by up
  to 40 s, and samples 1 to 14 minutes apart; all with the outages (holes) of the regular set.

Yardsticks:

* a straightforward per-sample Python loop (the way the calculation reads in prose: the tests'
  reference), timed on a subset of the objects and extrapolated, because timing it on all of
  them takes minutes;
* a numpy lower bound: the comparison and the run-boundary detection alone, on arrays that are
  already extracted, without timestamps, gaps, hysteresis, minimum duration, peaks or results.

The three result forms are timed separately: ``find_occurrences_arrays`` is the calculation
itself, ``find_occurrences`` adds a Python object per occurrence and ``find_occurrences_frame`` a
DataFrame per call. ``find_episodes`` is what a job step runs: the whole episodes that overlap
the period, with the ones still active at the last sample open.

Run: ``python benchmarks/alarm_calc.py [--objects 100] [--loop-objects 6] [--repeats 5]``.
Targets, for each set of inputs: every form at least 50x faster than the loop and at most 3x the
numpy lower bound. Each figure is printed with ``met`` or ``MISSED``; the exit code is 1 when
any target is missed.
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import scratch  # noqa: F401  (puts the repository root on sys.path, for jobs_pipeline_tests)

from jobs_pipeline.calc import AlarmCalcThreshold, AlarmOccurrenceSpan, DateTimeRange, Episodes
from jobs_pipeline_tests.calc.alarm_reference import as_datetime, as_ns, reference

PERIOD = DateTimeRange(datetime(2023, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC))
STEP = timedelta(minutes=10)
SAMPLES = PERIOD.duration // STEP  # 52,560
SAMPLES_PER_DAY = timedelta(days=1) // STEP


@dataclass(frozen=True)
class Alarm:
    name: str
    feature: str
    rule: AlarmCalcThreshold


ALARMS = (
    Alarm(
        "gearbox over-temperature",
        "gearbox_temperature",
        AlarmCalcThreshold(operator=">", threshold=80.0, clear_threshold=75.0),
    ),
    Alarm(
        "power consumption for an hour",
        "active_power",
        AlarmCalcThreshold(operator="<", threshold=0.0, min_duration=timedelta(hours=1)),
    ),
    Alarm("storm cut-out", "wind_speed", AlarmCalcThreshold(operator=">=", threshold=25.0)),
    Alarm("grid not ok", "grid_ok", AlarmCalcThreshold(operator="!=", threshold=1.0)),
    Alarm("icing risk", "ambient_temperature", AlarmCalcThreshold(operator="<=", threshold=-8.0)),
)


def smooth_noise(rng: np.random.Generator, n: int, window: int) -> np.ndarray:
    """Unit-variance noise that drifts over about ``window`` samples."""
    kernel = np.hanning(window)
    noise = np.convolve(rng.standard_normal(n + window), kernel, mode="valid")[:n]
    return noise / noise.std()


def regular_timeline(rng: np.random.Generator) -> pd.DatetimeIndex:
    """The 10-minute grid from the start of the year."""
    return pd.date_range(PERIOD.start, periods=SAMPLES, freq=STEP, tz=UTC)


def offset_timeline(rng: np.random.Generator) -> pd.DatetimeIndex:
    """The grid five minutes later: :05, :15, ..."""
    return regular_timeline(rng) + pd.Timedelta(minutes=5)


def jittered_timeline(rng: np.random.Generator) -> pd.DatetimeIndex:
    """The grid with each stamp moved by up to 40 s either way (whole seconds)."""
    jitter = pd.to_timedelta(rng.integers(-40, 41, size=SAMPLES), unit="s")
    return regular_timeline(rng) + jitter


def spaced_timeline(rng: np.random.Generator) -> pd.DatetimeIndex:
    """Samples 1 to 14 minutes apart (whole seconds) through the year."""
    steps = rng.integers(60, 14 * 60 + 1, size=2 * SAMPLES)
    seconds = np.cumsum(steps) - steps[0]
    seconds = seconds[seconds < PERIOD.duration.total_seconds()]
    return pd.DatetimeIndex(pd.Timestamp(PERIOD.start) + pd.to_timedelta(seconds, unit="s"))


Timeline = Callable[[np.random.Generator], pd.DatetimeIndex]
IRREGULAR_TIMELINES: tuple[Timeline, ...] = (offset_timeline, jittered_timeline, spaced_timeline)


def object_features(rng: np.random.Generator, timeline: Timeline) -> dict[str, pd.Series]:
    """One object's year: five features on ``timeline`` with outages and scattered missing
    values. Daily and seasonal cycles follow the timestamps; noise drifts over samples."""
    stamps = timeline(rng)
    n = len(stamps)
    days = (stamps - pd.Timestamp(PERIOD.start)) / pd.Timedelta(days=1)
    day = 2 * np.pi * np.asarray(days)
    season = np.cos(2 * np.pi * np.asarray(days) / 365)
    wind = np.clip(
        8 + 2 * season + 5 * smooth_noise(rng, n, 72) + np.abs(smooth_noise(rng, n, 6)), 0, None
    )
    # Below cut-in the turbine draws a few kW from the grid.
    power = np.where(wind < 3.0, -8.0, np.clip(1.2 * wind**3 - 30, 0, 2500))
    power += 2 * smooth_noise(rng, n, 3)
    grid_ok = np.ones(n)
    for start in rng.integers(0, n - 50, size=8):
        grid_ok[start : start + rng.integers(1, 30)] = 0.0
    features = {
        "gearbox_temperature": 55 + 8 * np.sin(day) + 9 * smooth_noise(rng, n, 36),
        "active_power": power,
        "wind_speed": wind,
        "grid_ok": grid_ok,
        "ambient_temperature": 8 + 10 * season + 3 * np.sin(day) + 4 * smooth_noise(rng, n, 144),
    }
    # Outages drop whole blocks of timestamps; sensor dropouts leave NaN behind.
    keep = np.ones(n, dtype=bool)
    for start in rng.integers(0, n - 300, size=5):
        keep[start : start + rng.integers(1, 300)] = False
    keep &= rng.random(n) > 0.002
    index = stamps[keep]
    result = {}
    for name, values in features.items():
        values = values.copy()
        values[rng.random(n) < 0.005] = np.nan
        result[name] = pd.Series(values[keep], index=index, name=name)
    return result


def loop_occurrences(
    rule: AlarmCalcThreshold, values: pd.Series, period: DateTimeRange
) -> list[AlarmOccurrenceSpan]:
    """The calculation as a per-sample loop over plain Python numbers: the tests' reference
    (`jobs_pipeline_tests/calc/alarm_reference.py`), on nanosecond stamps."""
    stamps = values.index.as_unit("ns").asi8.tolist()
    found = reference(rule, stamps, values.tolist(), as_ns(period.start), as_ns(period.end))
    return [
        AlarmOccurrenceSpan(start=as_datetime(start), end=as_datetime(end), peak_value=peak)
        for start, end, peak in found
    ]


def loop_method(rule: AlarmCalcThreshold, values: pd.Series, _: np.ndarray) -> object:
    return loop_occurrences(rule, values, PERIOD)


def lower_bound(threshold: float, values: np.ndarray) -> np.ndarray:
    """Comparison and run boundaries only: what any vectorised version must at least do."""
    return np.flatnonzero(np.diff(values > threshold))


Method = Callable[[AlarmCalcThreshold, pd.Series, np.ndarray], object]

METHODS: dict[str, Method] = {
    "arrays": lambda rule, values, _: rule.find_occurrences_arrays(values, PERIOD),
    "spans": lambda rule, values, _: rule.find_occurrences(values, PERIOD),
    "frame": lambda rule, values, _: rule.find_occurrences_frame(values, PERIOD),
    "episodes": lambda rule, values, _: rule.find_episodes(
        values, PERIOD, PERIOD, more_before=False, more_after=False
    ),
    "bound": lambda rule, _, raw: lower_bound(rule.threshold, raw),
}


def time_calls(
    methods: dict[str, Method],
    calls: list[tuple[AlarmCalcThreshold, pd.Series, np.ndarray]],
    repeats: int,
) -> dict[str, float]:
    """Total over the calls of each call's best time, per method.

    Each call is timed right after an untimed run of itself, so its data is in the caches as it
    is right after a job step has loaded it, and the methods take turns, so that load from other
    processes hits all of them alike. Garbage collection is off while timing, as in `timeit`.
    """
    total = dict.fromkeys(methods, 0.0)
    gc.collect()
    gc.disable()
    try:
        for call in calls:
            best = dict.fromkeys(methods, math.inf)
            for _ in range(repeats):
                for name, method in methods.items():
                    method(*call)
                    started = time.perf_counter()
                    method(*call)
                    best[name] = min(best[name], time.perf_counter() - started)
            for name in methods:
                total[name] += best[name]
    finally:
        gc.enable()
    return total


def describe(rule: AlarmCalcThreshold) -> str:
    text = f"{rule.operator} {rule.threshold:g}"
    if rule.clear_threshold is not None:
        text += f", clear {rule.clear_threshold:g}"
    if rule.min_duration:
        text += f", min {rule.min_duration}"
    return text


LOOP_TARGET = 50.0
BOUND_TARGET = 3.0
FORMS = (
    ("arrays", "find_occurrences_arrays"),
    ("spans", "find_occurrences (list of spans)"),
    ("frame", "find_occurrences_frame"),
    ("episodes", "find_episodes"),
)


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def check_against_loop(name: str, fleet: list[dict[str, pd.Series]]) -> None:
    """The vectorised results must equal the loop's before any timing means anything."""
    for obj in fleet:
        for alarm in ALARMS:
            values = obj[alarm.feature]
            expected = loop_occurrences(alarm.rule, values, PERIOD)
            assert alarm.rule.find_occurrences(values, PERIOD) == expected, (name, alarm.name)
            # All samples are in the period: the episodes are the occurrences, except that the
            # one still active at the last sample is open (neither clipped nor dropped).
            episodes = METHODS["episodes"](alarm.rule, values, values.to_numpy())
            assert isinstance(episodes, Episodes)
            closed = [
                (start, end, peak)
                for start, end, peak, is_open in zip(
                    pd.DatetimeIndex(episodes.start, tz=UTC).to_pydatetime(),
                    pd.DatetimeIndex(episodes.end, tz=UTC).to_pydatetime(),
                    episodes.peak_value.tolist(),
                    episodes.open.tolist(),
                    strict=True,
                )
                if not is_open
            ]
            assert closed == [tuple(span) for span in expected[: len(closed)]], alarm.name


def measure(
    name: str, fleet: list[dict[str, pd.Series]], loop_count: int, repeats: int
) -> dict[str, float]:
    """Checks one set of inputs against the loop, times it and prints its figures; returns the
    total seconds per method over all calls."""
    objects = len(fleet)
    present = sum(len(obj["grid_ok"]) for obj in fleet) / objects
    print(f"\n{name} inputs: {present:,.0f} samples per object and feature on average")
    check_against_loop(name, fleet[:loop_count])

    best: dict[str, float] = {}
    for i, alarm in enumerate(ALARMS):
        calls = [(alarm.rule, v, v.to_numpy()) for v in (obj[alarm.feature] for obj in fleet)]
        for method, seconds in time_calls(METHODS, calls, repeats).items():
            best[f"{method} {i}"] = seconds
        loop = time_calls({"loop": loop_method}, calls[:loop_count], 1)["loop"]
        best[f"loop {i}"] = loop * objects / loop_count

    per_call = 1e6 / objects
    print(
        f"  microseconds per call (one object, one alarm, one year; best of {repeats} "
        "per call, data in cache):"
    )
    print(
        f"  {'alarm':30s} {'rule':22s} {'occurrences':>11s} {'arrays':>7s} {'spans':>7s} "
        f"{'frame':>7s} {'episodes':>8s} {'bound':>7s} {'loop':>8s}"
    )
    occurrences = 0
    for i, alarm in enumerate(ALARMS):
        count = sum(len(alarm.rule.find_occurrences(obj[alarm.feature], PERIOD)) for obj in fleet)
        occurrences += count
        print(
            f"  {alarm.name:30s} {describe(alarm.rule):22s} {count / objects:11.1f} "
            + " ".join(
                f"{best[f'{kind} {i}'] * per_call:{8 if kind == 'episodes' else 7}.1f}"
                for kind in ("arrays", "spans", "frame", "episodes", "bound")
            )
            + f" {best[f'loop {i}'] * per_call:8.0f}"
        )
    total = {
        kind: sum(best[f"{kind} {i}"] for i in range(len(ALARMS)))
        for kind in ("arrays", "spans", "frame", "episodes", "bound", "loop")
    }
    calls = objects * len(ALARMS)
    print(
        f"  all {calls} calls, ms: "
        f"find_occurrences_arrays {total['arrays'] * 1e3:.1f}, "
        f"find_occurrences {total['spans'] * 1e3:.1f}, "
        f"find_occurrences_frame {total['frame'] * 1e3:.1f}, "
        f"find_episodes {total['episodes'] * 1e3:.1f}, "
        f"numpy lower bound {total['bound'] * 1e3:.1f}, "
        f"per-sample loop {total['loop'] * 1e3:,.0f}"
    )
    if loop_count < objects:
        print(f"  (the loop was timed on {loop_count} of {objects} objects and extrapolated)")
    print(
        "  result objects on top of the arrays: "
        f"{(total['spans'] - total['arrays']) / max(occurrences, 1) * 1e6:.2f} us per occurrence "
        f"for the list of spans, {(total['frame'] - total['arrays']) / calls * 1e6:.0f} us per "
        "call for the DataFrame"
    )
    return total


def report(name: str, total: dict[str, float]) -> bool:
    """Prints each form's ratios with met or MISSED; returns whether all targets were met."""
    print(f"\n{name}:")
    all_met = True
    for kind, label in FORMS:
        speedup = total["loop"] / total[kind]
        ratio = total[kind] / total["bound"]
        all_met &= speedup >= LOOP_TARGET and ratio <= BOUND_TARGET
        print(
            f"  {label:33s} {speedup:5.0f}x faster than the loop (target >= {LOOP_TARGET:g}x: "
            f"{verdict(speedup >= LOOP_TARGET)}), {ratio:.2f}x the numpy lower bound "
            f"(target <= {BOUND_TARGET:g}x: {verdict(ratio <= BOUND_TARGET)})"
        )
    return all_met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100, help="objects to simulate (100)")
    parser.add_argument(
        "--loop-objects", type=int, default=6, help="objects the Python loop is timed on (6)"
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="best of this many runs per call (5)"
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed (7)")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    regular = [object_features(rng, regular_timeline) for _ in range(args.objects)]
    irregular = [
        object_features(rng, IRREGULAR_TIMELINES[i % len(IRREGULAR_TIMELINES)])
        for i in range(args.objects)
    ]
    print(
        f"{args.objects} objects x {len(ALARMS)} alarms over a year, regular and irregular "
        f"(offset, jittered, 1-14 min apart; each with outages, 0.5% of values NaN), "
        f"built in {time.perf_counter() - started:.1f} s"
    )
    loop_count = min(args.loop_objects, args.objects)
    totals = {
        "regular": measure("regular", regular, loop_count, args.repeats),
        "irregular": measure("irregular", irregular, loop_count, args.repeats),
    }
    met = [report(f"{name} inputs", total) for name, total in totals.items()]
    return 0 if all(met) else 1


if __name__ == "__main__":
    sys.exit(main())
