"""Comparing a suite run with a baseline, and the files a run leaves: results.json, report.md, and the
latest run copied to <data_dir>/evals/latest.json + latest.md (read by `GET /v1/evals/latest` and the
dashboard). A benchmark whose details carry reliability tables (the handoff benchmark's confidence) gets them,
with their expected calibration error, under its metrics.

The regression rule, per metric (only for benchmarks in both runs):
- `rate` metrics (shares and means of per-item scores in 0..1): regressed when the metric moved in its bad
  direction by more than max(0.02, 2 * sqrt(p(1-p) * (1/n_baseline + 1/n_current))), p the mean of the two
  values and n the sample behind the metric. The second term is two standard errors of the difference of
  two proportions, an upper bound for means of 0..1 scores: a 40-item sample tolerates a ~0.2 swing, a
  1,687-turn one ~0.03. Smaller changes are reported as better/worse, not as regressions.
- `value` metrics (other scales, e.g. mean effort on 1..7): regressed beyond 10% of the baseline value.
- `info` metrics (latencies): shown with their delta, never a regression (the machine is shared).
- a metric absent from the baseline is `new`, never a regression.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

from evals.suite import BenchmarkEntry, Comparison, ComparisonRow, SuiteRun

ABS_TOLERANCE = 0.02
Z = 2.0
VALUE_RELATIVE = 0.10


def tolerance(kind: str, baseline: float, current: float, n_baseline: int, n_current: int) -> float | None:
    """How far a metric may move in its bad direction before it counts as a regression (None: never)."""
    if kind == "info":
        return None
    if kind == "value":
        return max(abs(baseline) * VALUE_RELATIVE, 1e-9)
    p = min(1.0, max(0.0, (baseline + current) / 2))
    if n_baseline <= 0 or n_current <= 0:
        return ABS_TOLERANCE
    return max(ABS_TOLERANCE, Z * math.sqrt(p * (1 - p) * (1 / n_baseline + 1 / n_current)))


def compare_entry(name: str, current: BenchmarkEntry, baseline: BenchmarkEntry | None) -> list[ComparisonRow]:
    rows = []
    for metric, value in current.metrics.items():
        kind = current.kinds.get(metric, "rate")
        higher = current.higher_is_better.get(metric, True)
        base = baseline.metrics.get(metric) if baseline is not None and baseline.error is None else None
        if base is None or (isinstance(base, float) and math.isnan(base)) or math.isnan(value):
            rows.append(
                ComparisonRow(
                    benchmark=name,
                    metric=metric,
                    baseline=base,
                    current=value,
                    delta=None,
                    regressed=False,
                    status="new" if base is None else "ok",
                )
            )
            continue
        assert baseline is not None
        delta = value - base
        tol = tolerance(
            kind,
            base,
            value,
            baseline.n_per_metric.get(metric, baseline.n),
            current.n_per_metric.get(metric, current.n),
        )
        worse_by = -delta if higher else delta
        regressed = tol is not None and worse_by > tol + 1e-12
        if kind == "info":
            status = "info"
        elif regressed:
            status = "regressed"
        elif worse_by > 1e-12:
            status = "worse"
        elif worse_by < -1e-12:
            status = "better"
        else:
            status = "ok"
        rows.append(
            ComparisonRow(
                benchmark=name,
                metric=metric,
                baseline=base,
                current=value,
                delta=round(delta, 6),
                regressed=regressed,
                status=status,
                tolerance=round(tol, 4) if tol is not None else None,
            )
        )
    return rows


def compare(current: SuiteRun, baseline: SuiteRun | None, baseline_name: str | None) -> Comparison:
    rows: list[ComparisonRow] = []
    for name, entry in current.benchmarks.items():
        if entry.error is not None:
            continue
        rows.extend(compare_entry(name, entry, baseline.benchmarks.get(name) if baseline else None))
    return Comparison(baseline=baseline_name, rows=rows, regressions=sum(r.regressed for r in rows))


def load_run(path: Path) -> SuiteRun:
    return SuiteRun.model_validate_json(path.read_text(encoding="utf-8"))


def _fmt(v: float | None) -> str:
    if v is None:
        return "–"
    if math.isnan(v):
        return "n/a"
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3f}"


_MARK = {
    "regressed": "**REGRESSED**",
    "better": "better",
    "worse": "worse (within tolerance)",
    "new": "new",
    "info": "info",
    "ok": "same",
}


def render_markdown(run: SuiteRun, defaults: dict[str, int | None] | None = None) -> str:
    """The human report: a table per benchmark, baseline and delta columns, regressions marked."""
    c = run.comparison
    model = run.model
    lines = [
        f"# Benchmark suite run {run.run_id}",
        "",
        f"- started {run.started_at}, wall time **{run.wall_s:.0f} s** ({run.wall_s / 60:.1f} min)",
        f"- chat model: `{model.get('chat_provider')}:{model.get('chat_model')}`; embeddings: {model.get('embedding')}",
        f"- seed {run.seed}; limit {run.limit if run.limit is not None else 'per-benchmark defaults'}",
        f"- baseline: {c.baseline or 'none'}",
    ]
    if c.baseline:
        verdict = f"**{c.regressions} regression(s)**" if c.regressions else "no regressions"
        lines.append(f"- comparison: {verdict}")
    lines.append("")
    by_bench: dict[str, list[ComparisonRow]] = {}
    for r in c.rows:
        by_bench.setdefault(r.benchmark, []).append(r)
    for name, e in run.benchmarks.items():
        sample = f"n={e.n}" + (f", limit {e.limit}" if e.limit is not None else ", all rows")
        lines += [f"## {name}", "", f"{sample}, {e.wall_s:.0f} s", ""]
        if e.error:
            lines += [f"**FAILED**: {e.error}", ""]
            continue
        lines += ["| metric | baseline | current | delta | tolerance | |", "| --- | ---: | ---: | ---: | ---: | --- |"]
        for r in by_bench.get(name, []):
            arrow = "↑" if e.higher_is_better.get(r.metric, True) else "↓"
            delta = "–" if r.delta is None else f"{r.delta:+.3f}" if abs(r.delta) < 100 else f"{r.delta:+.0f}"
            lines.append(
                f"| {r.metric} {arrow} | {_fmt(r.baseline)} | {_fmt(r.current)} | {delta} | "
                f"{_fmt(r.tolerance) if r.tolerance is not None else '–'} | {_MARK[r.status]} |"
            )
        lines.append("")
        lines += reliability_sections(e.details)
    if defaults:
        lines += [
            "## Sample sizes",
            "",
            "| benchmark | default limit | used | n | wall s |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for name, e in run.benchmarks.items():
            d = defaults.get(name)
            used = e.limit if e.limit is not None else "all"
            lines.append(f"| {name} | {d if d is not None else 'all'} | {used} | {e.n} | {e.wall_s:.0f} |")
        lines.append("")
    lines += ["## Settings that matter", "", "```json", json.dumps(run.settings, indent=2, default=str), "```", ""]
    lines += [
        "Regression rule: a rate regresses when it moves the wrong way by more than "
        "max(0.02, 2·sqrt(p(1-p)(1/n_base + 1/n_cur))); other values by more than 10%; latencies are "
        "informational; a metric missing from the baseline is new.",
        "",
    ]
    return "\n".join(lines)


def reliability_sections(details: dict[str, Any]) -> list[str]:
    """A reliability table (bin, mean predicted, observed rate, n) with its ECE for every part of a benchmark's
    details that carries one (the handoff benchmark's doc2dial and CLINC150 confidences)."""
    lines: list[str] = []
    for part, d in details.items():
        if not isinstance(d, dict) or not isinstance(d.get("reliability"), list):
            continue
        ece = d.get("ece")
        lines += [
            f"Reliability of the confidence, {part} (out of fold; ECE {_fmt(ece) if ece is not None else '–'}):",
            "",
            "| bin | mean predicted | observed rate | n |",
            "| --- | ---: | ---: | ---: |",
        ]
        for b in d["reliability"]:
            lines.append(
                f"| {b['lo']:.1f}–{b['hi']:.1f} | {_fmt(b['mean_predicted'])} | {_fmt(b['observed'])} | {b['n']} |"
            )
        lines.append("")
    return lines


def write_run(run: SuiteRun, out_dir: Path, latest_dir: Path, defaults: dict[str, int | None] | None = None) -> Path:
    """results.json + report.md in `out_dir`, copied to `latest_dir`/latest.json + latest.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    results = out_dir / "results.json"
    results.write_text(run.model_dump_json(indent=2), encoding="utf-8")
    report = out_dir / "report.md"
    report.write_text(render_markdown(run, defaults), encoding="utf-8")
    latest_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(results, latest_dir / "latest.json")
    shutil.copyfile(report, latest_dir / "latest.md")
    return results
