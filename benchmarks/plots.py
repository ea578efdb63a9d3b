"""Charts of the recorded benchmark results: ``python -m benchmarks.plots`` (``make plots``).

Renders every chart of every result file in ``benchmarks/results/`` (see
:mod:`benchmarks.results`) as an SVG into ``docs/img/``, where docs/benchmarks.md and
docs/reliability.md show them. The charts are committed; tests/docs/test_plots.py fails
when one is missing, left over, or stale against its data.

Output is deterministic: matplotlib's ``svg.hashsalt`` is fixed, the date is left out and
text stays text (``svg.fonttype = none``), so the same data and the same matplotlib give
the same bytes. Each SVG's description records the SHA-256 of the data it was drawn from
(the chart and its measures) and the matplotlib version, so staleness is detectable even
where another matplotlib version would lay the chart out differently.

Usage::

    python -m benchmarks.plots                 # render into docs/img/
    python -m benchmarks.plots --check         # exit 1 if docs/img/ is not up to date
    python -m benchmarks.plots --out DIR       # render elsewhere
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import matplotlib.ticker
from matplotlib.figure import Figure

from benchmarks.results import RESULTS_DIR, Chart, Measure, ResultSet, load_all

__all__ = ["IMG_DIR", "chart_digest", "main", "recorded_digest", "render", "render_all"]

IMG_DIR = Path(__file__).resolve().parents[1] / "docs" / "img"

COORD_COLOR = "#1f77b4"
ZOOKEEPER_COLOR = "#b0b0b0"
BETTER_COLOR = "#2ca02c"
WORSE_COLOR = "#d62728"

_STYLE: dict[str, Any] = {
    "svg.hashsalt": "coord-benchmarks",
    "svg.fonttype": "none",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
_DIGEST = re.compile(r"data sha256 ([0-9a-f]{64})")


def chart_digest(result_set: ResultSet, chart: Chart) -> str:
    """SHA-256 of everything a chart is drawn from: its spec and its measures."""
    payload = {
        "title": result_set.title,
        "measured": result_set.measured,
        "chart": chart.to_json(),
        "measures": [result_set.measure(name).to_json() for name in chart.measures],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def recorded_digest(svg: str) -> str | None:
    """The data digest an SVG written by :func:`render` records, or None."""
    found = _DIGEST.search(svg)
    return found.group(1) if found else None


def _number(value: float) -> str:
    """A value as recorded, without float noise: 125,700 / 676.5 / 0.039."""
    if value.is_integer() or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _ratio_text(measure: Measure) -> str:
    if measure.zookeeper == 0:
        return "coord/ZK: -"
    return f"coord/ZK: {measure.ratio:.2f}"


def _label(name: str, width: int) -> str:
    return "\n".join(textwrap.wrap(name, width)) or name


def _bars(fig: Figure, result_set: ResultSet, chart: Chart) -> None:
    measures = [result_set.measure(name) for name in chart.measures]
    ax = fig.add_subplot()
    width = 0.38
    xs = list(range(len(measures)))
    top = 0.0
    for offset, who, color in (
        (-width / 2, "coord", COORD_COLOR),
        (width / 2, "ZooKeeper", ZOOKEEPER_COLOR),
    ):
        values = [m.coord if who == "coord" else m.zookeeper for m in measures]
        ranges = [m.coord_range if who == "coord" else m.zookeeper_range for m in measures]
        positions = [x + offset for x in xs]
        ax.bar(positions, values, width, label=who, color=color, edgecolor="#333333", linewidth=0.5)
        spans = [(x, v, r) for x, v, r in zip(positions, values, ranges) if r is not None]
        if spans:
            ax.errorbar(
                [x for x, _, _ in spans],
                [v for _, v, _ in spans],
                yerr=[[v - r[0] for _, v, r in spans], [r[1] - v for _, v, r in spans]],
                fmt="none",
                ecolor="#333333",
                elinewidth=0.8,
                capsize=3,
            )
        for x, v, r in zip(positions, values, ranges):
            y = max(v, r[1] if r else v)
            top = max(top, y)
            ax.annotate(_number(v), (x, y), textcoords="offset points", xytext=(0, 3),
                        ha="center", va="bottom", fontsize=8)  # fmt: skip
    ax.set_xticks(xs, [f"{_label(m.name, 22)}\n{_ratio_text(m)}" for m in measures])
    ax.tick_params(axis="x", length=0)
    unit = measures[0].unit
    better = {m.better for m in measures}
    hint = f" ({better.pop()} is better)" if len(better) == 1 else ""
    ax.set_ylabel(unit + hint)
    ax.set_ylim(0, top * 1.18 if top else 1)
    ax.yaxis.set_major_formatter(
        matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1000 else f"{v:g}")
    )
    ax.legend(frameon=False, loc="upper right", ncols=2)
    ax.set_title(chart.title, fontsize=10, loc="left")


def _ratio(fig: Figure, result_set: ResultSet, chart: Chart) -> None:
    measures = [result_set.measure(name) for name in chart.measures]
    ax = fig.add_subplot()
    ys = list(range(len(measures)))[::-1]
    ratios = [m.ratio for m in measures]
    colors = [BETTER_COLOR if m.coord_is_better else WORSE_COLOR for m in measures]
    ax.barh(ys, [r - 1 for r in ratios], left=1, height=0.6, color=colors, edgecolor="#333333",
            linewidth=0.5)  # fmt: skip
    ax.set_xscale("log")
    low = min([*ratios, 1.0]) / 1.6
    high = max([*ratios, 1.0]) * 3.2
    ax.set_xlim(low, high)
    ax.axvline(1, color="#333333", linewidth=0.8)
    for y, m, r in zip(ys, measures, ratios):
        text = f"{r:.2f}x  ({_number(m.coord)} vs {_number(m.zookeeper)} {m.unit})"
        ax.annotate(text, (max(r, 1.0), y), textcoords="offset points", xytext=(4, 0),
                    ha="left", va="center", fontsize=8)  # fmt: skip
    labels = [f"{_label(m.name, 34)}\n({m.better} is better)" for m in measures]
    ax.set_yticks(ys, labels)
    ax.tick_params(axis="y", length=0)
    ticks = [t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50) if low <= t <= high]
    ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel("coord / ZooKeeper (log scale; green: coord better, red: ZooKeeper better)")
    ax.set_title(chart.title, fontsize=10, loc="left")


def render(result_set: ResultSet, chart: Chart) -> str:
    """The chart as SVG text (deterministic for given data and matplotlib version)."""
    digest = chart_digest(result_set, chart)
    count = len(chart.measures)
    with plt.rc_context(_STYLE):
        if chart.kind == "bars":
            fig = plt.figure(figsize=(max(5.0, 1.7 * count + 2.0), 4.0))
            _bars(fig, result_set, chart)
        else:
            fig = plt.figure(figsize=(8.0, 0.62 * count + 1.3))
            _ratio(fig, result_set, chart)
        fig.text(0.99, 0.005, f"measured {result_set.measured}", ha="right", va="bottom",
                 fontsize=7, color="#666666")  # fmt: skip
        fig.tight_layout()
        out = io.StringIO()
        fig.savefig(
            out,
            format="svg",
            metadata={
                "Date": None,
                "Title": chart.title,
                "Description": (
                    f"{result_set.title}; data sha256 {digest}; "
                    f"matplotlib {matplotlib.__version__}; benchmarks/plots.py"
                ),
            },
        )
        plt.close(fig)
    return out.getvalue()


def render_all(results_dir: Path = RESULTS_DIR) -> dict[str, str]:
    """Every chart of every result file: {file name: SVG text}."""
    out: dict[str, str] = {}
    for result_set in load_all(results_dir).values():
        for chart in result_set.charts:
            out[chart.file] = render(result_set, chart)
    return out


def stale(results_dir: Path = RESULTS_DIR, img_dir: Path = IMG_DIR) -> list[str]:
    """What is out of date in ``img_dir``: missing, stale or left-over charts (by name)."""
    expected: dict[str, str] = {}
    for result_set in load_all(results_dir).values():
        for chart in result_set.charts:
            expected[chart.file] = chart_digest(result_set, chart)
    problems = []
    for name, digest in sorted(expected.items()):
        path = img_dir / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif recorded_digest(path.read_text(encoding="utf-8")) != digest:
            problems.append(f"{name}: drawn from other data than benchmarks/results/ now holds")
    for path in sorted(img_dir.glob("*.svg")):
        if path.name not in expected and _is_ours(path):
            problems.append(f"{path.name}: no result file draws it")
    return problems


def _is_ours(path: Path) -> bool:
    """Whether ``path`` is a chart written by this module (other images are left alone)."""
    return recorded_digest(path.read_text(encoding="utf-8", errors="replace")) is not None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.plots", description=__doc__)
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="result files")
    parser.add_argument("--out", type=Path, default=IMG_DIR, help="where the SVGs go")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if --out is not up to date"
    )
    args = parser.parse_args(argv)
    if args.check:
        problems = stale(args.results, args.out)
        for line in problems:
            print(line, file=sys.stderr)
        return 1 if problems else 0
    args.out.mkdir(parents=True, exist_ok=True)
    charts = render_all(args.results)
    for name, svg in charts.items():
        (args.out / name).write_text(svg, encoding="utf-8")
    for path in args.out.glob("*.svg"):
        if path.name not in charts and _is_ours(path):
            path.unlink()
            print(f"removed {path}", file=sys.stderr)
    print(f"wrote {len(charts)} charts to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
