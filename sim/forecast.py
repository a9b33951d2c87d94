"""Traffic forecasts with prediction intervals: numpy only, one column per series.

The series are the columns of ``y`` [T, S] (Mbit/s: OD demands, or link loads under a
routing); ``valid`` [T] marks intervals with a measurement (an all-zero matrix is a missing
one: never a target, never an origin that updates a model). A forecast is made at an origin
t for t + h, from the intervals up to t only.

Models (:data:`MODELS`):

- ``last``: the newest valid value.
- ``snaive``: the value one season (a day) before the target (k seasons for h beyond one).
- ``seasonal``: exponential smoothing in log space (traffic varies multiplicatively) with a
  daily profile (smoothed over about an hour of neighbouring phases), a day-of-week offset
  once the history holds two weeks, a slow level (about a day) with its trend, and a fast
  level whose deviation from the slow one decays towards it with the horizon. Per series the
  fast level's rate, the profile's rate and the decay (one per horizon, least squares) are
  fitted on the model's own h-step errors in the history.

Prediction intervals, for every model the same way: the empirical quantiles of the model's
own h-step errors (in log space) over the fitting window, so that an interval is as wide as
that model's errors were. A forecast says how much history it had and what it left out.
"""
from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

MODELS = ("last", "snaive", "seasonal")
#: Rates of the fast level and of the daily profile tried per series (``seasonal``).
ALPHAS = (0.15, 0.4, 1.0)
GAMMAS = (0.1, 0.3)
#: How much of the fast level's deviation from the slow one a forecast keeps (per horizon).
DECAYS = (0.0, 0.25, 0.5, 0.75, 0.9, 1.0)
#: A level shift: the smoothed level this many mean deviations from the slow one, for an hour.
SHIFT_K = 3.0
#: An interval moves the levels and the profile by at most this many spreads.
CLIP = 2.0
#: Fewest valid origins an error quantile or a fitted parameter rests on.
MIN_FIT = 24
_UNITS = {"m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class ForecastError(ValueError):
    """A forecast that cannot be made from this input; the message says why."""


def parse_horizon(text: str, interval_s: int) -> int:
    """``"5m"``, ``"1h"``, ``"1d"``, ``"4w"`` (or a bare number of intervals) in intervals of
    ``interval_s`` seconds, rounded up: at least one interval."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(m|min|h|d|w)?\s*", str(text))
    if not match or float(match.group(1)) <= 0:
        raise ForecastError(f"horizon must look like 5m, 1h, 1d, 4w or a number of intervals, "
                            f"got {text!r}")
    value = float(match.group(1))
    if match.group(2) is None:
        return max(1, math.ceil(value))
    return max(1, math.ceil(value * _UNITS[match.group(2)] / interval_s - 1e-9))


@dataclass(frozen=True)
class Season:
    """The daily cycle in intervals: ``period`` intervals a day, interval 0 at ``phase0``."""

    period: int
    phase0: int = 0

    @classmethod
    def daily(cls, interval_s: int | None, first_time: str | None = None) -> Season | None:
        """A day of ``interval_s`` intervals (None when unknown or not a whole number of
        intervals a day); ``first_time`` (``YYYYMMDD-HHMM``) puts phase 0 at midnight."""
        if not interval_s or 86400 % interval_s or 86400 // interval_s < 2:
            return None
        phase0 = 0
        if first_time and re.fullmatch(r"\d{8}-\d{4}", first_time):
            minutes = int(first_time[9:11]) * 60 + int(first_time[11:13])
            phase0 = (minutes * 60 // interval_s) % (86400 // interval_s)
        return cls(86400 // interval_s, phase0)


@dataclass(frozen=True)
class Forecast:
    """Forecasts from the newest interval: ``mean`` (the median forecast), ``lower``, ``upper``
    [H, S] for steps 1..H ahead; the interval's nominal ``level``; the ``history`` (valid
    intervals) the model had; ``notes`` on what it could not model."""

    model: str
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    level: float
    history: int
    period: int | None
    weekly: bool
    notes: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Rolling:
    """Forecasts of every interval t made at origin t - h (NaN where there was none)."""

    model: str
    horizon: int
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    log_mean: np.ndarray
    """The forecasts in the model's log space: ``log(y + offsets)``."""
    offsets: np.ndarray


# -- shared parts ------------------------------------------------------------------------------
def log_offsets(y: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per series, the constant added before taking logs: 1 % of its mean (zero demands stay
    finite and small ones do not dominate the errors)."""
    mean = y[valid].mean(axis=0) if valid.any() else np.zeros(y.shape[1])
    return np.maximum(0.01 * mean, 1e-6)


def _check(y: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    if y.ndim != 2 or valid.shape != (len(y),):
        raise ForecastError(f"series must be [T, S] with a [T] validity mask, got {y.shape}, "
                            f"{valid.shape}")
    if not np.isfinite(y).all() or (y < 0).any():
        raise ForecastError("series must be finite and non-negative")
    return y, valid


def _last_valid(valid: np.ndarray) -> np.ndarray:
    """[T] index of the newest valid interval at or before t (-1: none yet)."""
    index = np.where(valid, np.arange(len(valid)), -1)
    return np.maximum.accumulate(index)


def _quantiles(errors: np.ndarray, level: float) -> np.ndarray:
    """[2, S] lower and upper error quantiles (NaN rows ignored); zeros with too few."""
    lo, hi = (1 - level) / 2, (1 + level) / 2
    enough = np.isfinite(errors).sum(axis=0) >= MIN_FIT
    q = np.zeros((2, errors.shape[1]))
    if enough.any():
        q[:, enough] = np.nanquantile(errors[:, enough], [lo, hi], axis=0)
    # the forecast stays inside its interval (a biased fit can put both quantiles on one side)
    return np.stack([np.minimum(q[0], 0.0), np.maximum(q[1], 0.0)])


def _shift(a: np.ndarray, h: int) -> np.ndarray:
    """``a`` moved h rows later: row t holds a[t - h] (NaN for t < h)."""
    out = np.full_like(a, np.nan, dtype=np.float64)
    if h < len(a):
        out[h:] = a[: len(a) - h]
    return out


# -- baselines --------------------------------------------------------------------------------
def _baseline_origin_values(z: np.ndarray, valid: np.ndarray, h: int, model: str,
                            season: Season | None) -> np.ndarray:
    """[T, S]: the forecast (log space) of z[t] made at t - h."""
    n = len(z)
    if model == "last":
        last = _shift(_last_valid(valid)[:, None].astype(np.float64), h)[:, 0]
        out = np.full(z.shape, np.nan)
        ok = np.isfinite(last) & (last >= 0)
        out[ok] = z[last[ok].astype(int)]
        return out
    if season is None:
        raise ForecastError("snaive needs a daily season (the series' interval is unknown)")
    back = season.period * math.ceil(h / season.period)
    out = np.full(z.shape, np.nan)
    source = np.arange(n) - back
    ok = source >= 0
    ok[ok] &= valid[source[ok]]
    out[ok] = z[source[ok]]
    return out


# -- the seasonal model -----------------------------------------------------------------------
@dataclass
class _Pass:
    """One filter pass (one profile rate): components at every origin t, after updating."""

    slow: np.ndarray          # [T, S] slow level
    fast: np.ndarray          # [A, T, S] fast levels, one per alpha
    profile: np.ndarray       # [H, T, S] seasonal term of t + h as seen at t, per horizon
    trend: np.ndarray         # [S] slow level's change per interval
    final: dict[str, np.ndarray]  # the state after the last interval


def _kernel(period: int) -> np.ndarray:
    """Circular triangular weights over about an hour of phases (half-width period / 48)."""
    half = max(1, round(period / 48))
    w = np.concatenate([np.arange(1, half + 2), np.arange(half, 0, -1)]).astype(np.float64)
    return w / w.sum()


def _smoothed(profile: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """The daily profile [m, S] smoothed circularly with ``kernel``."""
    half = len(kernel) // 2
    padded = np.concatenate([profile[-half:], profile, profile[:half]])
    out = np.zeros_like(profile)
    for i, w in enumerate(kernel):
        out += w * padded[i: i + len(profile)]
    return out


def _initial(z: np.ndarray, valid: np.ndarray, season: Season | None
             ) -> tuple[np.ndarray, np.ndarray]:
    """Slow level and daily profile from the first day (or what there is of it)."""
    first = z[: season.period if season else min(len(z), 12)]
    ok = valid[: len(first)]
    level = first[ok].mean(axis=0) if ok.any() else np.zeros(z.shape[1])
    if season is None:
        return level, np.zeros((1, z.shape[1]))
    profile = np.zeros((season.period, z.shape[1]))
    phases = (np.arange(len(first)) + season.phase0) % season.period
    profile[phases[ok]] = first[ok] - level
    return level, profile


def _filter(z: np.ndarray, valid: np.ndarray, season: Season | None, weekly: bool,
            gamma: float, horizons: Sequence[int], alphas: Sequence[float]) -> _Pass:
    n, s = z.shape
    period = season.period if season else 1
    phase0 = season.phase0 if season else 0
    beta = 1.0 / period if season else 1.0 / 12  # the slow level: about a day
    slow, profile = _initial(z, valid, season)
    fast = np.repeat(slow[None], len(alphas), axis=0)
    alpha = np.asarray(alphas)[:, None]
    dow = np.zeros((7, s))
    kernel = _kernel(period) if season else np.ones(1)
    smooth = _smoothed(profile, kernel) if season else profile
    spread = np.full(s, 0.1)          # running mean |deviation| from the slow level
    run = np.zeros(s)                 # signed count of intervals far from it in a row
    hour = slow.copy()                # the deseasonalized level over about the last hour
    record = slow.copy()              # the highest slow level so far
    shift_after = max(3, period // 24)
    out_slow = np.empty((n, s))
    out_fast = np.empty((len(alphas), n, s))
    out_profile = np.empty((len(horizons), n, s))
    hs = np.asarray(horizons)
    day_end = period - 1
    for t in range(n):
        phase = (t + phase0) % period
        day = (t + phase0) // period
        if valid[t]:
            seasonal = smooth[phase] + (dow[day % 7] if weekly else 0.0)
            raw = z[t] - seasonal
            # Robust updates: an interval far off moves the levels and the profile by at
            # most CLIP spreads (a spike is not learnt; a shift is, by the jump below).
            bound = CLIP * np.maximum(spread, 1e-3)
            plain = np.clip(raw, slow - bound, slow + bound)
            fast += alpha * (np.clip(raw, fast - bound, fast + bound) - fast)
            if season:
                resid = plain - slow
                profile[phase] += gamma * (plain + seasonal - slow
                                           - (dow[day % 7] if weekly else 0.0) - profile[phase])
                if weekly:
                    dow[day % 7] += (gamma / period) * (resid - dow[day % 7])
            slow += beta * (plain - slow)
            np.maximum(record, slow, out=record)
            # A level shift (an ingress moving, a flash crowd that stays): once the smoothed
            # level has been far from the slow one for an hour, the slow one jumps to it.
            # Taken as a new flat part of the traffic: the profile's relative swing shrinks
            # by as much as the level rose.
            hour += (2.0 / (shift_after + 1)) * (raw - hour)
            gap = hour - slow
            spread += beta * (np.abs(plain - slow) - spread)
            far = np.abs(gap) > SHIFT_K * np.maximum(spread, 1e-3)
            run = np.where(far & (np.sign(gap) == np.sign(run)), run + np.sign(gap),
                           np.where(far, np.sign(gap), 0.0))
            jump = np.abs(run) >= shift_after
            if jump.any():
                slow_before = slow[jump].copy()
                slow[jump] = hour[jump]
                fast[:, jump] = hour[jump]
                run[jump] = 0.0
                # only a rise above anything seen so far (not a recovery) is a new part
                shrink = np.exp(-np.maximum(hour[jump] - np.maximum(record[jump], slow_before),
                                            0.0))
                profile[:, jump] *= shrink
                smooth[:, jump] *= shrink
                dow[:, jump] *= shrink
        if season and phase == day_end:  # once a day: a zero-mean, smoothed profile
            profile -= profile.mean(axis=0)
            if weekly:
                dow -= dow.mean(axis=0)
            smooth = _smoothed(profile, kernel)
        out_slow[t] = slow
        out_fast[:, t] = fast
        if season:
            target = (t + hs + phase0) % period
            term = smooth[target]
            if weekly:
                term = term + dow[((t + hs + phase0) // period) % 7]
            out_profile[:, t] = term
        else:
            out_profile[:, t] = 0.0
    # The slow level lags a trend by (1 - beta) / beta intervals: the trend is fitted on it.
    trend = _trend(out_slow, valid, period)
    final = {"slow": slow.copy(), "fast": fast.copy(), "profile": smooth.copy(),
             "dow": dow.copy()}
    return _Pass(out_slow, out_fast, out_profile, trend, final)


def _trend(slow: np.ndarray, valid: np.ndarray, period: int) -> np.ndarray:
    """Per series, the least-squares slope (log units per interval) of the slow level after
    its first day; zero with fewer than three days."""
    n = len(slow)
    if n < 3 * period:
        return np.zeros(slow.shape[1])
    t = np.arange(period, n)[valid[period:]]
    if len(t) < 2 * period:
        return np.zeros(slow.shape[1])
    x = t - t.mean()
    return (x @ (slow[t] - slow[t].mean(axis=0))) / (x @ x)


def _lag(season: Season | None) -> float:
    beta = 1.0 / season.period if season else 1.0 / 12
    return (1 - beta) / beta


@dataclass
class _Fit:
    """Per series and horizon: the chosen (gamma, alpha), the decay and the error quantiles."""

    gamma: np.ndarray    # [H, S] index into GAMMAS
    alpha: np.ndarray    # [H, S] index into ALPHAS
    decay: np.ndarray    # [H, S]
    quant: np.ndarray    # [H, 2, S]


def _seasonal_terms(p: _Pass, k: int, h: int, season: Season | None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """For targets t (origin t - h): the base [T, S] (slow level + trend + profile) and the
    fast levels' deviations from the slow one [A, T, S]."""
    slow = p.slow + p.trend * _lag(season)  # where the slow level would be without its lag
    base = _shift(slow + p.profile[k], h) + p.trend * h
    dev = np.stack([_shift(f - slow, h) for f in p.fast])
    return base, dev


def _fit_seasonal(passes: list[_Pass], z: np.ndarray, fit: np.ndarray, horizons: Sequence[int],
                  season: Season | None, level: float, offsets: np.ndarray) -> _Fit:
    """Per series and horizon, the (gamma, alpha, decay) of least mean absolute error in
    Mbit/s over the fitting targets, then that choice's error quantiles (log space)."""
    s = z.shape[1]
    best = np.full((len(horizons), s), np.inf)
    result = _Fit(np.zeros((len(horizons), s), int), np.zeros((len(horizons), s), int),
                  np.zeros((len(horizons), s)), np.zeros((len(horizons), 2, s)))
    y = np.exp(z) - offsets
    for g, p in enumerate(passes):
        for k, h in enumerate(horizons):
            base, dev = _seasonal_terms(p, k, h, season)
            ok = fit & np.isfinite(base).all(axis=1)
            for a in range(len(ALPHAS)):
                for rho in DECAYS:
                    pred = np.maximum(np.exp(base[ok] + rho * dev[a, ok]) - offsets, 0.0)
                    mae = np.abs(y[ok] - pred).mean(axis=0)
                    better = mae < best[k]
                    best[k, better] = mae[better]
                    result.gamma[k, better] = g
                    result.alpha[k, better] = a
                    result.decay[k, better] = rho
    for k, h in enumerate(horizons):
        pred = _seasonal_predict(passes, result, z, k, h, season)
        errors = np.where(fit[:, None], z - pred, np.nan)
        result.quant[k] = _quantiles(errors, level)
    return result


def _seasonal_predict(passes: list[_Pass], fitted: _Fit, z: np.ndarray, k: int, h: int,
                      season: Season | None) -> np.ndarray:
    """[T, S] log-space forecasts of every target from origin t - h with the fitted choice."""
    out = np.full(z.shape, np.nan)
    for g, p in enumerate(passes):
        cols = np.flatnonzero(fitted.gamma[k] == g)
        if not len(cols):
            continue
        base, dev = _seasonal_terms(p, k, h, season)
        chosen = dev[fitted.alpha[k, cols], :, cols].T  # [T, len(cols)]
        out[:, cols] = base[:, cols] + fitted.decay[k, cols] * chosen
    return out


def _weekly(valid: np.ndarray, season: Season | None) -> bool:
    return season is not None and int(valid.sum()) >= 14 * season.period


# -- entry points -----------------------------------------------------------------------------
def rolling(y: np.ndarray, valid: np.ndarray, horizon: int, model: str, season: Season | None,
            fit_until: int, level: float = 0.9) -> Rolling:
    """Forecasts of every interval from ``horizon`` intervals before, as a controller running
    the model all along would have made them: parameters and interval widths are fitted on
    the targets before ``fit_until`` only; the model's state follows the series online."""
    y, valid = _check(y, valid)
    if model not in MODELS:
        raise ForecastError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    fit_valid = valid.copy()
    fit_valid[fit_until:] = False
    offsets = log_offsets(y, fit_valid)
    z = np.log(y + offsets)
    burn = season.period if season else 12
    fit = np.zeros(len(y), bool)
    fit[burn + horizon: fit_until] = True
    fit &= valid
    if model == "seasonal":
        weekly = _weekly(fit_valid, season)
        passes = [_filter(z, valid, season, weekly, g, [horizon], ALPHAS) for g in GAMMAS]
        for p in passes:  # the trend is the fitting window's, not one that saw the test
            p.trend = _trend(p.slow[:fit_until], valid[:fit_until],
                             season.period if season else 1)
        fitted = _fit_seasonal(passes, z, fit, [horizon], season, level, offsets)
        pred = _seasonal_predict(passes, fitted, z, 0, horizon, season)
        quant = fitted.quant[0]
        pred[: burn + horizon] = np.nan
    else:
        pred = _baseline_origin_values(z, valid, horizon, model, season)
        quant = _quantiles(np.where(fit[:, None], z - pred, np.nan), level)
    return Rolling(model, horizon, _back(pred, offsets), _back(pred + quant[0], offsets),
                   _back(pred + quant[1], offsets), pred, offsets)


def _back(z: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    return np.maximum(np.exp(z) - offsets, 0.0)


def forecast(y: np.ndarray, valid: np.ndarray, horizon: int, model: str = "seasonal",
             season: Season | None = None, level: float = 0.9) -> Forecast:
    """Forecasts for the ``horizon`` intervals after the newest one, with ``level``
    prediction intervals fitted on the model's own errors over the whole history.

    Raises ForecastError when the history has fewer than two valid intervals or no demand
    at all; notes (and a warning) say what a short history left out.
    """
    y, valid = _check(y, valid)
    if model not in MODELS:
        raise ForecastError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    if not 0 < level < 1:
        raise ForecastError(f"interval level must be between 0 and 1, got {level}")
    history = int(valid.sum())
    if history < 2:
        raise ForecastError(f"{history} valid interval(s) of history: nothing to forecast from")
    if not y[valid].any():
        raise ForecastError("the history has no demand at all (every valid interval is zero)")
    notes: list[str] = []
    if season is not None and history < 2 * season.period:
        notes.append(f"{history} valid intervals is less than two days: no daily cycle "
                     "modelled")
        season = None
    if model == "snaive" and season is None:
        raise ForecastError("snaive needs two days of history with a known interval")
    anchors = _anchors(horizon, len(y), season)
    if anchors[-1] < horizon:
        notes.append(f"intervals beyond {anchors[-1]} steps use the error spread at "
                     f"{anchors[-1]} steps (not enough history for longer ones)")
    offsets = log_offsets(y, valid)
    z = np.log(y + offsets)
    weekly = model == "seasonal" and _weekly(valid, season)
    if model == "seasonal" and season is not None and not weekly:
        notes.append("less than two weeks of history: no weekly cycle modelled")
    steps = np.arange(1, horizon + 1)
    if model == "seasonal":
        mean, quant = _seasonal_path(z, valid, season, weekly, anchors, steps, level,
                                     offsets)
    else:
        mean, quant = _baseline_path(z, valid, season, model, anchors, steps, level)
    for note in notes:
        log.warning("forecast: %s", note)
    return Forecast(model, _back(mean, offsets), _back(mean + quant[:, 0], offsets),
                    _back(mean + quant[:, 1], offsets), level, history,
                    season.period if season else None, weekly, tuple(notes))


def _anchors(horizon: int, length: int, season: Season | None) -> list[int]:
    """Horizons at which errors are measured (then interpolated): log-spaced up to the
    horizon, but no longer than the history leaves enough origins for."""
    burn = season.period if season else 12
    longest = max(1, length - burn - MIN_FIT)
    top = min(horizon, longest)
    return sorted({int(round(h)) for h in np.geomspace(1, top, num=min(top, 8))})


def _interp(anchors: Sequence[int], values: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """[len(steps), ...] values at each step, linear in log(h) between anchors, constant
    beyond the last."""
    x = np.log(np.asarray(anchors, dtype=np.float64))
    flat = values.reshape(len(anchors), -1)
    out = np.stack([np.interp(np.log(steps), x, flat[:, j]) for j in range(flat.shape[1])], 1)
    return out.reshape(len(steps), *values.shape[1:])


def _seasonal_path(z: np.ndarray, valid: np.ndarray, season: Season | None, weekly: bool,
                   anchors: list[int], steps: np.ndarray, level: float, offsets: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The path from the final state: each step with the choice fitted at its nearest
    anchor horizon (in log h), quantiles interpolated between anchors."""
    burn = season.period if season else 12
    fit = valid.copy()
    fit[:burn] = False
    passes = [_filter(z, valid, season, weekly, g, anchors, ALPHAS) for g in GAMMAS]
    fitted = _fit_seasonal(passes, z, fit, anchors, season, level, offsets)
    n, s = z.shape
    quant = _interp(anchors, fitted.quant, steps)          # [H, 2, S]
    nearest = np.abs(np.log(steps)[:, None] - np.log(anchors)[None]).argmin(axis=1)
    mean = np.empty((len(steps), s))
    for i, h in enumerate(steps):
        k = nearest[i]
        for g, p in enumerate(passes):
            cols = np.flatnonzero(fitted.gamma[k] == g)
            if not len(cols):
                continue
            state = p.final
            term = np.zeros(len(cols))
            if season:
                at = n - 1 + int(h) + season.phase0
                term = state["profile"][at % season.period, cols]
                if weekly:
                    term = term + state["dow"][(at // season.period) % 7, cols]
            fast = state["fast"][fitted.alpha[k, cols], cols]
            slow = state["slow"][cols] + p.trend[cols] * _lag(season)
            mean[i, cols] = (slow + p.trend[cols] * h + term
                             + fitted.decay[k, cols] * (fast - slow))
    return mean, quant


def _baseline_path(z: np.ndarray, valid: np.ndarray, season: Season | None, model: str,
                   anchors: list[int], steps: np.ndarray, level: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    burn = season.period if season else 1
    quants = []
    for h in anchors:
        pred = _baseline_origin_values(z, valid, h, model, season)
        fit = valid.copy()
        fit[:burn] = False
        quants.append(_quantiles(np.where(fit[:, None], z - pred, np.nan), level))
    quant = _interp(anchors, np.stack(quants), steps)
    n = len(z)
    if model == "last":
        mean = np.repeat(z[_last_valid(valid)[-1]][None], len(steps), axis=0)
    else:
        assert season is not None
        mean = np.empty((len(steps), z.shape[1]))
        for i, h in enumerate(steps):
            source = n - 1 + int(h) - season.period * math.ceil(h / season.period)
            while source >= 0 and not valid[source]:
                source -= season.period
            mean[i] = z[source] if source >= 0 else z[_last_valid(valid)[-1]]
    return mean, quant


# -- scores -----------------------------------------------------------------------------------
def mase_scale(y: np.ndarray, valid: np.ndarray, season: Season | None) -> np.ndarray:
    """Per series, the in-sample MAE of the one-season naive forecast (Hyndman's MASE
    denominator for seasonal data; one step when there is no season)."""
    lag = season.period if season else 1
    both = valid[lag:] & valid[:-lag]
    diff = np.abs(y[lag:] - y[:-lag])[both]
    return diff.mean(axis=0) if len(diff) else np.full(y.shape[1], np.nan)
