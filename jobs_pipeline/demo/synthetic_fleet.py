"""Deterministic synthetic wind-turbine fleet: measurements, injected faults and alarm definitions.

The data stands in for a real performance database in demos and tests. Every value comes from one
seed, so the same arguments always give the same frame. Each object draws from its own random
stream (a child of the seed), so an object's data does not depend on how many objects are
generated.

What a fleet holds, per object, on a 10-minute grid:

- ``wind_speed`` (m/s): Weibull-distributed with a daily cycle and a seasonal scale and shape,
  correlated in time and partly shared across the fleet (one weather for the whole park).
- ``active_power`` (kW): a 2000 kW power curve of the wind plus noise; idle turbines draw a few kW
  (negative values), so a healthy turbine never reports exactly 0 kW.
- ``rotor_speed`` (rpm): 6 to 16 rpm in production, idling at about 1 rpm otherwise.
- ``ambient_temperature``, ``nacelle_temperature``, ``gearbox_temperature`` (°C): seasonal and
  daily cycles, the two inside temperatures rising with (lagged) load.

Injected faults (their windows never overlap, and no scattered NaN falls inside them):

- over-temperature: ``gearbox_temperature`` ramps above 85 °C for hours, with some samples dipping
  to between 80 and 85 °C, so only an alarm with hysteresis sees one episode;
- stop: the turbine stops while the wind blows; ``active_power`` reads exactly 0 kW;
- freeze: ``active_power`` repeats its last value for hours (a frozen SCADA signal);
- overspeed: ``rotor_speed`` spikes above 17.5 rpm for one to three samples;
- outages: all features of an object are missing for a while (absent rows);
- scattered NaN values in every feature.

``LAN-01`` always gets at least one over-temperature, stop, overspeed and outage episode, so every
alarm in :data:`ALARMS` fires in any fleet; the other objects get a random number of each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

SAMPLING_PERIOD = timedelta(minutes=10)
DEFAULT_END = datetime(2026, 1, 1, tzinfo=UTC)
OBJECT_PREFIX = "LAN-"
MAX_OBJECTS = 999
MAX_DAYS = 3660

RATED_POWER_KW = 2000.0
CUT_IN_MS = 3.0
RATED_WIND_MS = 12.0
CUT_OUT_MS = 25.0
MIN_ROTOR_RPM = 6.0
RATED_ROTOR_RPM = 16.0

_FULL_SPEED_WIND_MS = 10.5
_SAMPLES_PER_DAY = 144
_SAMPLES_PER_HOUR = 6
_TROPICAL_YEAR_DAYS = 365.2425
# Day of the year on which the seasonal cycle peaks (mid-July: warmest, least windy).
_SUMMER_PEAK_DAY = 196.0
_EPOCH = pd.Timestamp("2000-01-01", tz="UTC")
# Share of the wind's variability common to the whole fleet.
_SHARED_WEATHER = 0.7
_NAN_RATE = 0.002
# Samples kept free between two episodes so that they never merge into one.
_EPISODE_MARGIN = 3
_PLACEMENT_TRIES = 50


@dataclass(frozen=True, kw_only=True)
class FeatureSpec:
    """A measured quantity of every object."""

    name: str
    unit: str
    sampling_period: timedelta = SAMPLING_PERIOD


@dataclass(frozen=True, kw_only=True)
class AlarmSpec:
    """A threshold alarm on one feature, as a manufacturer defines it.

    A sample violates when ``value <operator> threshold``. With ``clear_threshold`` an occurrence
    stays active while ``value <operator> clear_threshold`` holds. Occurrences shorter than
    ``min_duration`` are dropped.
    """

    alarm_id: int
    name: str
    feature: str
    operator: str
    threshold: float
    clear_threshold: float | None = None
    min_duration: timedelta = timedelta(0)


@dataclass(frozen=True, kw_only=True)
class SyntheticFleet:
    """A generated fleet.

    Attributes:
        object_names: ``LAN-01``, ``LAN-02``, ... zero-padded to two digits, or to three for more
            than 99 objects, so that sorting the names as text keeps their numeric order.
        features: The measured features, sorted by name.
        alarms: Alarm definitions that the injected faults trigger.
        values: Columns ``object`` (str), ``feature`` (str), ``timestamp`` (datetime64[ns, UTC],
            on the 10-minute grid inside ``[start, end)``) and ``value`` (float64, NaN = no
            data), sorted by object, feature and timestamp. Outages are absent rows.
        start: First instant covered (UTC, inclusive).
        end: End of the period covered (UTC, exclusive).
    """

    object_names: list[str]
    features: list[FeatureSpec]
    alarms: list[AlarmSpec]
    values: pd.DataFrame
    start: datetime
    end: datetime


FEATURES: tuple[FeatureSpec, ...] = (
    FeatureSpec(name="active_power", unit="kW"),
    FeatureSpec(name="ambient_temperature", unit="°C"),
    FeatureSpec(name="gearbox_temperature", unit="°C"),
    FeatureSpec(name="nacelle_temperature", unit="°C"),
    FeatureSpec(name="rotor_speed", unit="rpm"),
    FeatureSpec(name="wind_speed", unit="m/s"),
)

ALARMS: tuple[AlarmSpec, ...] = (
    AlarmSpec(
        alarm_id=1001,
        name="Gearbox oil over-temperature",
        feature="gearbox_temperature",
        operator=">",
        threshold=85.0,
        clear_threshold=80.0,
    ),
    AlarmSpec(
        alarm_id=1002,
        name="Gearbox oil temperature warning",
        feature="gearbox_temperature",
        operator=">=",
        threshold=75.0,
        min_duration=timedelta(minutes=30),
    ),
    AlarmSpec(
        alarm_id=1003,
        name="No power output",
        feature="active_power",
        operator="==",
        threshold=0.0,
        min_duration=timedelta(hours=1),
    ),
    AlarmSpec(
        alarm_id=1004,
        name="Rotor overspeed",
        feature="rotor_speed",
        operator=">",
        threshold=17.5,
    ),
)

# Expected episodes per object and day of each fault.
_OVERTEMP_RATE = 0.12
_STOP_RATE = 0.1
_FREEZE_RATE = 0.07
_OVERSPEED_RATE = 0.1
_OUTAGE_RATE = 0.1


def generate_fleet(
    *, objects: int = 5, days: int = 14, seed: int = 0, end: datetime | None = None
) -> SyntheticFleet:
    """Generates a synthetic wind fleet with injected faults.

    Args:
        objects: Number of turbines, 1 to 999.
        days: Length of the period in days, 1 to 3660.
        seed: Non-negative seed of all randomness; equal arguments give equal fleets.
        end: End of the half-open period (exclusive), on the 10-minute grid. Naive values are read
            as UTC. Defaults to 2026-01-01T00:00Z rather than "now" so that the result depends on
            the arguments only.

    Returns:
        The fleet, covering ``[end - days, end)``.

    Raises:
        ValueError: When an argument is out of range; the message names the argument.
    """
    _check_int("objects", objects, 1, MAX_OBJECTS)
    _check_int("days", days, 1, MAX_DAYS)
    _check_int("seed", seed, 0, None)
    period_end = _check_end(end)
    period_start = period_end - timedelta(days=days)

    n_samples = days * _SAMPLES_PER_DAY
    grid = pd.date_range(period_start, periods=n_samples, freq=SAMPLING_PERIOD).as_unit("ns")
    fleet_seed, *object_seeds = np.random.SeedSequence(seed).spawn(objects + 1)
    weather = _park_weather(np.random.default_rng(fleet_seed), grid)
    width = 3 if objects > 99 else 2
    object_names = [f"{OBJECT_PREFIX}{index + 1:0{width}d}" for index in range(objects)]
    return SyntheticFleet(
        object_names=object_names,
        features=list(FEATURES),
        alarms=list(ALARMS),
        values=_values_frame(grid, weather, object_names, object_seeds),
        start=period_start,
        end=period_end,
    )


@dataclass(frozen=True, kw_only=True)
class _ParkWeather:
    """What every turbine of the park shares, one value per sample of the grid."""

    hour: np.ndarray  # hour of the day (UTC), with its fraction
    summer: np.ndarray  # +1 in mid-summer, -1 in mid-winter
    ambient: np.ndarray  # outside temperature (°C)
    wind: np.ndarray  # the two Gaussian components of the shared wind, shape (2, samples)


def _park_weather(rng: np.random.Generator, grid: pd.DatetimeIndex) -> _ParkWeather:
    n_samples = grid.size
    days_since_epoch = (grid - _EPOCH) / pd.Timedelta(days=1)
    hour = np.asarray((days_since_epoch % 1.0) * 24.0)
    summer = np.cos(
        2 * np.pi * (np.asarray(days_since_epoch) - _SUMMER_PEAK_DAY) / _TROPICAL_YEAR_DAYS
    )
    # Two Gaussian components of the shared wind (a Rayleigh draw needs two) and the weather's
    # deviation from the seasonal temperature.
    shared_wind = _ar1(rng, n_samples, tau_samples=12 * _SAMPLES_PER_HOUR, count=2)
    shared_weather = 2.5 * _ar1(rng, n_samples, tau_samples=2 * _SAMPLES_PER_DAY, count=1)[0]
    ambient = 10.0 + 8.0 * summer + 4.0 * np.cos(2 * np.pi * (hour - 15.0) / 24.0) + shared_weather
    return _ParkWeather(hour=hour, summer=summer, ambient=ambient, wind=shared_wind)


def _values_frame(
    grid: pd.DatetimeIndex,
    weather: _ParkWeather,
    object_names: list[str],
    object_seeds: list[np.random.SeedSequence],
) -> pd.DataFrame:
    """Every object's values as one long frame; outages are absent rows."""
    feature_names = [feature.name for feature in FEATURES]
    grid_naive = grid.tz_convert(None).to_numpy()
    columns: dict[str, list[np.ndarray]] = {
        "object": [],
        "feature": [],
        "timestamp": [],
        "value": [],
    }
    for index, (name, object_seed) in enumerate(zip(object_names, object_seeds, strict=True)):
        rng = np.random.default_rng(object_seed)
        series, outage = _simulate_object(rng, weather, guarantee_faults=index == 0)
        kept = ~outage
        n_kept = int(kept.sum())
        columns["object"].append(np.full(n_kept * len(feature_names), name, dtype=object))
        columns["feature"].append(np.repeat(np.array(feature_names, dtype=object), n_kept))
        columns["timestamp"].append(np.tile(grid_naive[kept], len(feature_names)))
        columns["value"].extend(series[feature][kept] for feature in feature_names)
    values = pd.DataFrame({column: np.concatenate(parts) for column, parts in columns.items()})
    values["timestamp"] = values["timestamp"].dt.tz_localize(UTC).dt.as_unit("ns")
    values["value"] = values["value"].astype("float64")
    return values


def _check_int(name: str, value: object, low: int, high: int | None) -> None:
    if isinstance(value, int) and not isinstance(value, bool):
        if value >= low and (high is None or value <= high):
            return
    bounds = f"from {low} to {high}" if high is not None else f"of at least {low}"
    raise ValueError(f"{name} must be an integer {bounds}, got {value!r}")


def _check_end(end: datetime | None) -> datetime:
    if end is None:
        return DEFAULT_END
    if not isinstance(end, datetime):
        raise ValueError(f"end must be a datetime, got {end!r}")
    end = end.replace(tzinfo=UTC) if end.tzinfo is None else end.astimezone(UTC)
    if (end - _EPOCH.to_pydatetime()) % SAMPLING_PERIOD:
        raise ValueError(f"end must lie on the 10-minute grid, got {end.isoformat()}")
    return end


def _ar1(rng: np.random.Generator, n_samples: int, *, tau_samples: float, count: int) -> np.ndarray:
    """Returns ``count`` stationary AR(1) series of unit variance, shape ``(count, n_samples)``.

    ``tau_samples`` is the correlation time: the autocorrelation falls to 1/e after that many
    samples.
    """
    phi = np.exp(-1.0 / tau_samples)
    alpha = 1.0 - phi
    shocks = rng.standard_normal((n_samples, count))
    # The exponentially weighted mean computes y[t] = phi * y[t-1] + alpha * x[t] with y[0] = x[0];
    # scaling x[1:] gives unit innovations variance 1 - phi**2, i.e. a stationary series.
    shocks[1:] *= np.sqrt(1.0 - phi**2) / alpha
    smoothed = pd.DataFrame(shocks).ewm(alpha=alpha, adjust=False).mean()
    return smoothed.to_numpy().T


def _lag(values: np.ndarray, tau_samples: float) -> np.ndarray:
    """First-order thermal lag with time constant ``tau_samples``."""
    alpha = 1.0 - np.exp(-1.0 / tau_samples)
    return pd.Series(values).ewm(alpha=alpha, adjust=False).mean().to_numpy()


def _power_curve(wind: np.ndarray) -> np.ndarray:
    """Electrical power in kW for the wind speed in m/s; 0 outside [cut-in, cut-out)."""
    share = (wind**3 - CUT_IN_MS**3) / (RATED_WIND_MS**3 - CUT_IN_MS**3)
    power = RATED_POWER_KW * np.clip(share, 0.0, 1.0)
    return np.where((wind >= CUT_IN_MS) & (wind < CUT_OUT_MS), power, 0.0)


def _simulate_object(
    rng: np.random.Generator, weather: _ParkWeather, *, guarantee_faults: bool
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Simulates one turbine; returns its series by feature name and its outage mask.

    The order of the draws from ``rng`` is part of the result (one seed, one fleet): the parts
    are drawn in a fixed order, measurements first, then each kind of fault.
    """
    n_samples = weather.hour.size
    occupied = np.zeros(n_samples, dtype=bool)
    days = n_samples / _SAMPLES_PER_DAY

    def episode_count(rate: float) -> int:
        count = int(rng.poisson(rate * days))
        return max(count, 1) if guarantee_faults else count

    wind_speed, true_wind = _wind_speed(rng, weather)
    producing = (true_wind >= CUT_IN_MS) & (true_wind < CUT_OUT_MS)
    windy = true_wind >= 8.0

    stops = _place_episodes(
        rng,
        occupied,
        lengths=rng.integers(9, 37, episode_count(_STOP_RATE)),
        preferred=windy,
    )
    stopped = np.zeros(n_samples, dtype=bool)
    for first, last in stops:
        stopped[first:last] = True

    active_power, load = _active_power(rng, true_wind, producing=producing, stopped=stopped)
    rotor_speed = _rotor_speed(rng, true_wind, running=producing & ~stopped)
    own_ambient, gearbox, nacelle = _temperatures(rng, weather.ambient, load)

    busy = load > 0.3
    for first, last in _place_episodes(
        rng, occupied, lengths=_overtemp_lengths(rng, episode_count(_OVERTEMP_RATE)), preferred=busy
    ):
        gearbox[first:last] = _overtemperature(rng, gearbox[first], gearbox[last - 1], last - first)

    for first, last in _place_episodes(
        rng, occupied, lengths=rng.integers(1, 4, episode_count(_OVERSPEED_RATE)), preferred=windy
    ):
        rotor_speed[first:last] = rng.uniform(17.7, 19.5, last - first)

    freezes = _place_episodes(
        rng,
        occupied,
        lengths=rng.integers(12, 37, int(rng.poisson(_FREEZE_RATE * days))),
        preferred=windy,
    )
    for first, last in freezes:
        active_power[first:last] = active_power[max(first - 1, 0)]

    faulty = occupied.copy()
    outage = np.zeros(n_samples, dtype=bool)
    for first, last in _place_episodes(
        rng, occupied, lengths=rng.integers(3, 73, episode_count(_OUTAGE_RATE))
    ):
        outage[first:last] = True

    series = {
        "active_power": active_power,
        "ambient_temperature": own_ambient,
        "gearbox_temperature": gearbox,
        "nacelle_temperature": nacelle,
        "rotor_speed": rotor_speed,
        "wind_speed": wind_speed,
    }
    for values in series.values():
        values[(rng.random(n_samples) < _NAN_RATE) & ~faulty] = np.nan
    return series, outage


def _wind_speed(rng: np.random.Generator, weather: _ParkWeather) -> tuple[np.ndarray, np.ndarray]:
    """The anemometer's reading and the true wind behind it (m/s)."""
    n_samples = weather.hour.size
    # Wind: two unit Gaussians give a Rayleigh variable R, (R**2 / 2) ** (1 / k) is Weibull with
    # shape k and scale 1.
    own_wind = _ar1(rng, n_samples, tau_samples=2 * _SAMPLES_PER_HOUR, count=2)
    gauss = np.sqrt(_SHARED_WEATHER) * weather.wind + np.sqrt(1.0 - _SHARED_WEATHER) * own_wind
    exponential = 0.5 * (gauss[0] ** 2 + gauss[1] ** 2)
    shape = 2.0 + 0.2 * weather.summer
    scale = (
        rng.uniform(7.4, 8.6)
        * (1.0 - 0.15 * weather.summer)
        * (1.0 + 0.12 * np.cos(2 * np.pi * (weather.hour - 14.0) / 24.0))
    )
    true_wind = scale * exponential ** (1.0 / shape)
    wind_speed = np.maximum(true_wind + rng.normal(0.0, 0.3, n_samples), 0.0)
    return wind_speed, true_wind


def _active_power(
    rng: np.random.Generator, true_wind: np.ndarray, *, producing: np.ndarray, stopped: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Active power (kW) and the load it puts on the drive train (share of rated power)."""
    n_samples = true_wind.size
    # An idle turbine draws its own consumption from the grid; clipping at that negative floor
    # rather than at 0 keeps exact zeros for the stop fault alone.
    consumption = rng.uniform(4.0, 12.0, n_samples)
    generated = _power_curve(true_wind) * (1.0 + rng.normal(0.0, 0.03, n_samples))
    generated += rng.normal(0.0, 8.0, n_samples)
    # The controller holds rated power only on average.
    generated = np.minimum(generated, RATED_POWER_KW + rng.normal(0.0, 6.0, n_samples))
    generated = np.where(producing & ~stopped, np.maximum(generated, -consumption), -consumption)
    active_power = np.where(stopped, 0.0, generated)
    load = np.clip(generated, 0.0, None) / RATED_POWER_KW
    return active_power, load


def _rotor_speed(
    rng: np.random.Generator, true_wind: np.ndarray, *, running: np.ndarray
) -> np.ndarray:
    n_samples = true_wind.size
    # Below rated speed the rotor follows the wind (constant tip-speed ratio).
    slope = (RATED_ROTOR_RPM - MIN_ROTOR_RPM) / (_FULL_SPEED_WIND_MS - CUT_IN_MS)
    running_rpm = np.clip(
        MIN_ROTOR_RPM + slope * (true_wind - CUT_IN_MS), MIN_ROTOR_RPM, RATED_ROTOR_RPM
    )
    running_rpm = running_rpm + rng.normal(0.0, 0.12, n_samples)
    idle_rpm = np.abs(rng.normal(1.0, 0.3, n_samples))
    return np.where(running, running_rpm, idle_rpm)


def _temperatures(
    rng: np.random.Generator, ambient: np.ndarray, load: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ambient, gearbox and nacelle temperatures (°C) of one turbine."""
    n_samples = load.size
    own_ambient = ambient + rng.normal(0.0, 0.3) + rng.normal(0.0, 0.15, n_samples)
    outside = _lag(own_ambient, tau_samples=3)
    gearbox = (
        outside
        + 10.0
        + np.clip(rng.normal(0.0, 1.0), -2.0, 2.0)
        + 28.0 * _lag(load, tau_samples=6)
        + rng.normal(0.0, 0.4, n_samples)
    )
    # The oil heater keeps a cold gearbox at about 15 °C.
    gearbox = np.maximum(gearbox, rng.normal(15.0, 0.4, n_samples))
    nacelle = outside + 5.0 + 8.0 * _lag(load, tau_samples=18) + rng.normal(0.0, 0.3, n_samples)
    return own_ambient, gearbox, nacelle


def _overtemp_lengths(rng: np.random.Generator, count: int) -> np.ndarray:
    return rng.integers(3, 7, count) + rng.integers(12, 37, count) + rng.integers(4, 10, count)


def _overtemperature(
    rng: np.random.Generator, before: float, after: float, length: int
) -> np.ndarray:
    """Gearbox temperatures of an over-temperature episode of ``length`` samples.

    Ramps from ``before`` to a plateau above 85 °C and back to ``after``. Some plateau samples dip
    into (80, 85) °C: below the alarm threshold but above its clear threshold.
    """
    ramp_up = max(2, length // 6)
    ramp_down = max(2, length // 5)
    plateau_length = length - ramp_up - ramp_down
    level = rng.uniform(87.0, 93.0)
    plateau = np.maximum(level + rng.normal(0.0, 1.0, plateau_length), 85.5)
    inner = np.arange(1, plateau_length - 1)
    dips = inner[rng.random(inner.size) < 0.15]
    if dips.size == 0 and inner.size:
        dips = rng.choice(inner, size=1)
    plateau[dips] = rng.uniform(80.5, 84.5, dips.size)
    rise = np.linspace(before, level, ramp_up + 1)[1:]
    fall = np.linspace(level, after, ramp_down + 1)[:-1]
    noise = rng.normal(0.0, 0.4, ramp_up + ramp_down)
    return np.concatenate([rise + noise[:ramp_up], plateau, fall + noise[ramp_up:]])


def _place_episodes(
    rng: np.random.Generator,
    occupied: np.ndarray,
    *,
    lengths: np.ndarray,
    preferred: np.ndarray | None = None,
) -> list[tuple[int, int]]:
    """Places episodes of the given lengths where ``occupied`` is free and marks them occupied.

    Starts are drawn where ``preferred`` holds when it holds anywhere. Episodes are shortened to a
    quarter of the period at most; an episode that finds no free window is left out.

    Returns:
        Half-open sample ranges ``(first, last)``.
    """
    n_samples = occupied.size
    pool = np.flatnonzero(preferred) if preferred is not None else np.empty(0, dtype=np.int64)
    if pool.size == 0:
        pool = np.arange(n_samples)
    placed = []
    for requested in lengths:
        length = int(min(requested, max(1, n_samples // 4)))
        for start in rng.choice(pool, size=_PLACEMENT_TRIES):
            first = min(int(start), n_samples - length)
            last = first + length
            if not occupied[max(first - _EPISODE_MARGIN, 0) : last + _EPISODE_MARGIN].any():
                occupied[first:last] = True
                placed.append((first, last))
                break
    return placed
