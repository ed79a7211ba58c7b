"""Shared figures for the performance benchmarks: latency summaries and ratios to a limit."""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Sequence

from pydantic import BaseModel, Field


def percentile(values: Sequence[float], p: float) -> float | None:
    """The p-th percentile (0..100) with linear interpolation between ranks; None for no values."""
    if not values:
        return None
    xs = sorted(values)
    rank = (len(xs) - 1) * p / 100.0
    lo, hi = math.floor(rank), math.ceil(rank)
    return xs[lo] + (xs[hi] - xs[lo]) * (rank - lo)


class Timing(BaseModel):
    """Milliseconds over `n` repetitions."""

    n: int
    median_ms: float | None
    p95_ms: float | None
    mean_ms: float | None
    min_ms: float | None
    max_ms: float | None

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Timing:
        ms = [s * 1000.0 for s in seconds]
        return cls(
            n=len(ms),
            median_ms=percentile(ms, 50),
            p95_ms=percentile(ms, 95),
            mean_ms=sum(ms) / len(ms) if ms else None,
            min_ms=min(ms) if ms else None,
            max_ms=max(ms) if ms else None,
        )

    def row(self) -> str:
        if self.median_ms is None or self.p95_ms is None:
            return "n/a"
        return f"{self.median_ms:.2f} / {self.p95_ms:.2f}"


class Ratio(BaseModel):
    """Ours against the limit (the same work done by the bare library or model)."""

    ours: float
    limit: float
    ratio: float = Field(description="ours / limit (throughput: 1.0 = as fast as the limit; latency: 1.0 = none added)")
    target: str

    @classmethod
    def of(cls, ours: float, limit: float, target: str) -> Ratio:
        return cls(ours=ours, limit=limit, ratio=ours / limit if limit else float("nan"), target=target)


class Machine(BaseModel):
    """Where a figure was taken: it means little without the cores and the load at the time."""

    cores: int = Field(default_factory=lambda: os.cpu_count() or 0)
    load_1m: float = Field(default_factory=lambda: os.getloadavg()[0])
    python: str = Field(default_factory=platform.python_version)
    platform: str = Field(default_factory=platform.platform)
