"""Anomaly scores on traffic series: numpy only, one column per series (OD pairs, links, the
total), as ``sim.forecast``.

Detectors (:data:`DETECTORS`), each giving a score per interval and series, ``|score| >
threshold`` an anomaly:

- ``forecast``: the seasonal model's one-step forecast (``sim.forecast``), the residual in
  its log space divided by the series' robust spread (1.4826 x the median absolute residual
  over the fitting window). Spikes, drops, an OD pair going dark, level shifts (their first
  interval: the model follows a shift within the hour).
- ``mad``: the classic seasonal MAD threshold: per series and phase of the day, the median
  of the fitting window's days (over five neighbouring phases) and 1.4826 x their median
  absolute deviation.
- ``pca``: Lakhina et al.'s subspace method (SIGCOMM 2004) on all series at once: principal
  components of the fitting window, the normal subspace those explaining 90 % of the
  variance, the score the residual's squared norm (network-wide; the series with the largest
  residual is named).

Thresholds are not guessed: :func:`calibrate` sets one per series from the tail of its scores
over the fitting window, for a given number of alerts a day over all series. A run of
consecutive anomalous intervals of one series is one alert (:func:`alerts`), described by its
first interval, ranked by its largest score.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.forecast import Season, rolling

DETECTORS = ("forecast", "mad", "pca")
MAD_SIGMA = 1.4826
#: The quantile of each series' scores above which :func:`calibrate` fits its tail.
TAIL = 0.98
#: Series below this share of the traffic raise no alert (:func:`significant`).
MIN_SHARE = 0.001
#: Common factors :func:`calibrate` may scale the tail thresholds by.
FACTORS = np.geomspace(0.5, 64.0, 57)


@dataclass(frozen=True)
class Scores:
    """``score`` [T, S] (NaN where there is none: burn-in, missing intervals), ``expected``
    [T, S] (the value the detector expected, Mbit/s), ``network``: one column for all
    series (pca) with ``culprit`` [T] the series with the largest residual."""

    detector: str
    score: np.ndarray
    expected: np.ndarray
    network: bool = False
    culprit: np.ndarray | None = None


@dataclass(frozen=True)
class Alert:
    """One anomalous run: ``start`` (interval), ``length``, ``column`` (the series; the
    culprit for a network-wide detector), ``score`` (signed), ``value`` and ``expected``
    (Mbit/s) at its first interval, and ``severity``: its largest ``|score|`` over the
    threshold."""

    start: int
    length: int
    column: int
    score: float
    value: float
    expected: float
    severity: float = 1.0


def forecast_scores(y: np.ndarray, valid: np.ndarray, season: Season | None,
                    fit_until: int) -> Scores:
    """Residuals of the seasonal model's one-step forecast in spread units."""
    r = rolling(y, valid, 1, "seasonal", season, fit_until)
    z = np.log(y + r.offsets)
    resid = np.where(valid[:, None], z - r.log_mean, np.nan)
    spread = _spread(resid[:fit_until])
    # a rise in Mbit/s over the expected (log compresses rises, a drop to zero is log's)
    rise = np.expm1(np.clip(resid, 0.0, 50.0))
    return Scores("forecast", np.where(resid > 0, rise, resid) / spread, r.mean)


def mad_scores(y: np.ndarray, valid: np.ndarray, season: Season | None,
               fit_until: int) -> Scores:
    """The seasonal MAD threshold: deviation from the per-phase median of the fitting days
    over their per-phase scaled MAD."""
    period = season.period if season else 1
    phase0 = season.phase0 if season else 0
    phases = (np.arange(len(y)) + phase0) % period
    fit = valid.copy()
    fit[fit_until:] = False
    median = np.zeros((period, y.shape[1]))
    scale = np.zeros((period, y.shape[1]))
    near = 2 if period >= 24 else 0
    for p in range(period):
        window = np.isin(phases, [(p + d) % period for d in range(-near, near + 1)]) & fit
        if window.any():
            median[p] = np.median(y[window], axis=0)
            scale[p] = MAD_SIGMA * np.median(np.abs(y[window] - median[p]), axis=0)
    floor = np.maximum(1e-3 * y[fit].mean(axis=0), 1e-9) if fit.any() else 1e-9
    expected = median[phases]
    score = (y - expected) / np.maximum(scale[phases], floor)
    return Scores("mad", np.where(valid[:, None], score, np.nan), expected)


def pca_scores(y: np.ndarray, valid: np.ndarray, fit_until: int,
               variance: float = 0.9) -> Scores:
    """Lakhina's subspace method: the squared norm of each interval's residual after the
    normal subspace of the fitting window's principal components."""
    fit = valid.copy()
    fit[fit_until:] = False
    mean = y[fit].mean(axis=0)
    _, sing, vt = np.linalg.svd(y[fit] - mean, full_matrices=False)
    share = np.cumsum(sing**2) / max(float((sing**2).sum()), 1e-300)
    rank = int(np.searchsorted(share, variance) + 1)
    normal = vt[:rank]
    centred = y - mean
    resid = centred - (centred @ normal.T) @ normal
    spe = (resid**2).sum(axis=1)
    scale = float(np.median(spe[fit])) or 1.0
    score = np.where(valid, spe / scale, np.nan)[:, None]
    culprit = np.abs(resid).argmax(axis=1)
    expected = (mean + (centred @ normal.T) @ normal)
    return Scores("pca", score, expected, network=True, culprit=culprit)


def scores(detector: str, y: np.ndarray, valid: np.ndarray, season: Season | None,
           fit_until: int) -> Scores:
    if detector == "forecast":
        return forecast_scores(y, valid, season, fit_until)
    if detector == "mad":
        return mad_scores(y, valid, season, fit_until)
    if detector == "pca":
        return pca_scores(y, valid, fit_until)
    raise ValueError(f"unknown detector {detector!r}; choose one of {', '.join(DETECTORS)}")


def _severity(score: float, limit: float) -> float:
    return min(abs(score) / limit, 1e6) if limit > 0 else 1e6


def _spread(resid: np.ndarray) -> np.ndarray:
    med = np.nanmedian(resid, axis=0) if np.isfinite(resid).any() else 0.0
    mad = MAD_SIGMA * np.nanmedian(np.abs(resid - med), axis=0)
    return np.maximum(np.nan_to_num(mad, nan=1.0), 1e-3)


def starts(flags: np.ndarray) -> np.ndarray:
    """[T, S] True at the first interval of every run of flags."""
    previous = np.zeros_like(flags)
    previous[1:] = flags[:-1]
    return flags & ~previous


def significant(y: np.ndarray, valid: np.ndarray, fit_until: int,
                share: float = MIN_SHARE) -> np.ndarray:
    """[S] the series that carried at least ``share`` of all the series' traffic over the
    fitting window (the others are too small to alert on: their relative noise is huge)."""
    ok = valid.copy()
    ok[fit_until:] = False
    mean = y[ok].mean(axis=0) if ok.any() else np.zeros(y.shape[1])
    return mean >= share * max(float(mean.sum()), 1e-300)


def calibrate(s: Scores, window: slice, per_day: float, intervals_per_day: int,
              merge: int = 1, keep: np.ndarray | None = None) -> np.ndarray:
    """Per series, the threshold for ``per_day`` alerts a day over all series, from the
    fitting ``window``'s scores.

    The shape across series is peaks over a threshold (Siffer et al., KDD 2017): an
    exponential tail fitted to the exceedances of each series' 98th percentile of
    ``|score|``, extrapolated to an equal share of the budget. Real residuals have heavier
    tails than that, so one common factor then scales every threshold until the window
    itself raises no more than the budget (alerts counted as :func:`alerts` counts them).
    Series not in ``keep`` get an infinite threshold."""
    score = np.abs(s.score[window])
    keep = np.ones(score.shape[1], bool) if keep is None else np.asarray(keep, bool)
    p = per_day / (max(int(keep.sum()), 1) * intervals_per_day)
    shape = np.empty(score.shape[1])
    for col in range(score.shape[1]):
        values = score[:, col][np.isfinite(score[:, col])]
        if len(values) < 50 or not keep[col]:
            shape[col] = np.inf  # too little history to know what is normal, or too small
            continue
        base = float(np.quantile(values, TAIL))
        excess = values[values > base] - base
        share = len(excess) / len(values)
        if len(excess) < 10 or share <= p:
            shape[col] = float(values.max()) * 1.2
        else:
            shape[col] = base + max(float(excess.mean()), 1e-9) * math.log(share / p)
    days = max(score.shape[0] / intervals_per_day, 1e-9)
    for factor in FACTORS:
        if count(score, factor * shape, merge) / days <= per_day:
            return factor * shape
    return FACTORS[-1] * shape


def count(score: np.ndarray, threshold: np.ndarray, merge: int = 1) -> int:
    """How many alerts :func:`alerts` would raise: flagged intervals with no flagged one of
    the same series in the ``merge`` intervals before."""
    flags = np.nan_to_num(np.abs(score), nan=0.0) > threshold
    total = np.cumsum(np.vstack([np.zeros((1, flags.shape[1]), int), flags]), axis=0)
    gap = max(1, merge)
    before = total[:-1] - total[np.maximum(np.arange(len(flags)) - gap, 0)]
    return int((flags & (before == 0)).sum())


def alerts(s: Scores, y: np.ndarray, threshold: np.ndarray | float,
           window: slice = slice(None), merge: int = 1) -> list[Alert]:
    """One alert per run of ``|score| > threshold`` (per series) within ``window``; runs
    of one series less than ``merge`` intervals apart are one alert (one incident)."""
    score = np.nan_to_num(s.score, nan=0.0)
    limit = np.broadcast_to(np.asarray(threshold, dtype=np.float64), score.shape[1:])
    flags = np.abs(score) > limit
    offset = window.start or 0
    flags[:offset] = False
    if window.stop is not None:
        flags[window.stop:] = False
    out = []
    for col in range(flags.shape[1]):
        run = np.flatnonzero(flags[:, col])
        if not len(run):
            continue
        breaks = np.flatnonzero(np.diff(run) > max(1, merge))
        for chunk in np.split(run, breaks + 1):
            first = int(chunk[0])  # what happened: the onset (a recovery can score more)
            peak = float(np.abs(score[chunk, col]).max())
            series = int(s.culprit[first]) if s.network and s.culprit is not None else col
            out.append(Alert(first, int(chunk[-1] - first + 1), series,
                             float(score[first, col]), float(y[first, series]),
                             float(s.expected[first, series]),
                             _severity(peak, float(limit[col]))))
    return sorted(out, key=lambda a: (a.start, a.column))

