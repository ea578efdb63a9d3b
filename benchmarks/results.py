"""Recorded benchmark results: the data behind the charts of docs/benchmarks.md.

Theory of operation
-------------------
A result file (``benchmarks/results/<name>.json``) holds the summary of one benchmark
invocation -- the numbers of one table of docs/benchmarks.md or docs/reliability.md --
as coord-versus-ZooKeeper *measures*, plus the charts to draw from them:

.. code-block:: json

    {
      "format": 1,
      "title": "Standalone, durable writes",
      "measured": "2026-11-21 14:07-14:45 UTC",
      "source": "commits c1e4e1e, 80d4d51; 2 invocations x 3 rounds, medians",
      "command": "python -m benchmarks.compare --scenarios set ...",
      "measures": [
        {"name": "setData 100 B", "unit": "req/s", "better": "higher",
         "coord": 125700, "zookeeper": 72656,
         "coord_range": [103070, 151360], "zookeeper_range": [63340, 117179]}
      ],
      "charts": [
        {"file": "standalone-throughput.svg", "kind": "bars",
         "title": "...", "measures": ["setData 100 B"]}
      ]
    }

A chart is ``bars`` (coord and ZooKeeper side by side, one unit for all its measures, with
the min-max range when recorded) or ``ratio`` (coord / ZooKeeper per measure, on a log
scale, whatever the units). ``benchmarks/plots.py`` renders every chart of every file into
docs/img/; the benchmark commands write this format with ``--results-json FILE``, so a new
run is recorded by copying its file here and running ``make plots``.

The module is plain data and validation: no plotting, no I/O beyond reading and writing
the file.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "FORMAT",
    "Better",
    "RESULTS_DIR",
    "Chart",
    "Measure",
    "ResultSet",
    "ResultsError",
    "load",
    "load_all",
    "measure_from_runs",
    "parse",
]

FORMAT = 1
RESULTS_DIR = Path(__file__).resolve().parent / "results"

Better = Literal["higher", "lower"]
ChartKind = Literal["bars", "ratio"]


class ResultsError(ValueError):
    """A result file is malformed; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class Measure:
    """One number measured on both servers.

    Attributes:
        name: what was measured ("setData 100 B", "restart: time to serve").
        unit: "req/s", "ms", "s", "MiB", ...
        better: whether a higher or a lower value is better.
        coord, zookeeper: the reported value (a median when there were several runs).
        coord_range, zookeeper_range: (min, max) over the runs, when recorded.
    """

    name: str
    unit: str
    better: Better
    coord: float
    zookeeper: float
    coord_range: tuple[float, float] | None = None
    zookeeper_range: tuple[float, float] | None = None

    @property
    def ratio(self) -> float:
        """coord / ZooKeeper (infinite when ZooKeeper's value is 0 and coord's is not)."""
        if self.zookeeper == 0:
            return 1.0 if self.coord == 0 else math.inf
        return self.coord / self.zookeeper

    @property
    def coord_is_better(self) -> bool:
        if self.better == "higher":
            return self.coord > self.zookeeper
        return self.coord < self.zookeeper

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "unit": self.unit,
            "better": self.better,
            "coord": self.coord,
            "zookeeper": self.zookeeper,
        }
        if self.coord_range is not None:
            out["coord_range"] = list(self.coord_range)
        if self.zookeeper_range is not None:
            out["zookeeper_range"] = list(self.zookeeper_range)
        return out


@dataclass(frozen=True, slots=True)
class Chart:
    """A chart drawn from some measures of a result set (see the module docstring)."""

    file: str
    kind: ChartKind
    title: str
    measures: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "kind": self.kind,
            "title": self.title,
            "measures": list(self.measures),
        }


@dataclass(frozen=True, slots=True)
class ResultSet:
    """The summary of one benchmark invocation (or of several combined)."""

    title: str
    measured: str
    source: str
    command: str
    measures: tuple[Measure, ...]
    charts: tuple[Chart, ...] = field(default=())
    notes: tuple[str, ...] = field(default=())

    def measure(self, name: str) -> Measure:
        for measure in self.measures:
            if measure.name == name:
                return measure
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "title": self.title,
            "measured": self.measured,
            "source": self.source,
            "command": self.command,
            "notes": list(self.notes),
            "measures": [m.to_json() for m in self.measures],
            "charts": [c.to_json() for c in self.charts],
        }

    def write(self, path: Path) -> None:
        """Write the file (validated first: a bad set raises and writes nothing)."""
        text = json.dumps(self.to_json(), indent=2) + "\n"
        parse(json.loads(text), str(path))
        path.write_text(text, encoding="utf-8")


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ResultsError(f"{where}: expected a number, got {value!r}")
    if not math.isfinite(value):
        raise ResultsError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def _range(value: object, where: str) -> tuple[float, float] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2:
        raise ResultsError(f"{where}: expected [min, max], got {value!r}")
    low, high = _number(value[0], where), _number(value[1], where)
    if low > high:
        raise ResultsError(f"{where}: min {low} > max {high}")
    return low, high


def _string(data: dict[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ResultsError(f"{where}: {key!r} must be a non-empty string")
    return value


def _check_keys(data: dict[str, Any], allowed: Iterable[str], where: str) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ResultsError(f"{where}: unknown keys {unknown}")


def _measure(data: object, where: str) -> Measure:
    if not isinstance(data, dict):
        raise ResultsError(f"{where}: a measure must be an object")
    _check_keys(
        data,
        ("name", "unit", "better", "coord", "zookeeper", "coord_range", "zookeeper_range"),
        where,
    )
    better = data.get("better")
    if better not in ("higher", "lower"):
        raise ResultsError(f"{where}: 'better' must be 'higher' or 'lower', got {better!r}")
    coord = _number(data.get("coord"), f"{where}.coord")
    zookeeper = _number(data.get("zookeeper"), f"{where}.zookeeper")
    if coord < 0 or zookeeper < 0:
        raise ResultsError(f"{where}: values must not be negative")
    return Measure(
        name=_string(data, "name", where),
        unit=_string(data, "unit", where),
        better=better,
        coord=coord,
        zookeeper=zookeeper,
        coord_range=_range(data.get("coord_range"), f"{where}.coord_range"),
        zookeeper_range=_range(data.get("zookeeper_range"), f"{where}.zookeeper_range"),
    )


def _chart(data: object, measures: dict[str, Measure], where: str) -> Chart:
    if not isinstance(data, dict):
        raise ResultsError(f"{where}: a chart must be an object")
    _check_keys(data, ("file", "kind", "title", "measures"), where)
    file = _string(data, "file", where)
    if "/" in file or not file.endswith(".svg"):
        raise ResultsError(f"{where}: 'file' must be a plain name ending in .svg, got {file!r}")
    kind = data.get("kind")
    if kind not in ("bars", "ratio"):
        raise ResultsError(f"{where}: 'kind' must be 'bars' or 'ratio', got {kind!r}")
    names = data.get("measures")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ResultsError(f"{where}: 'measures' must be a non-empty list of measure names")
    missing = [name for name in names if name not in measures]
    if missing:
        raise ResultsError(f"{where}: no such measures {missing}")
    if kind == "bars" and len({measures[name].unit for name in names}) != 1:
        raise ResultsError(f"{where}: a bars chart needs one unit for all its measures")
    if kind == "ratio":
        zero = [name for name in names if measures[name].zookeeper <= 0]
        if zero:
            raise ResultsError(f"{where}: a ratio chart divides by ZooKeeper's value, 0 in {zero}")
    return Chart(file, kind, _string(data, "title", where), tuple(names))


def parse(data: object, where: str) -> ResultSet:
    """Validate decoded JSON and build a :class:`ResultSet`.

    Raises:
        ResultsError: anything malformed, naming ``where`` and the problem.
    """
    if not isinstance(data, dict):
        raise ResultsError(f"{where}: expected a JSON object")
    _check_keys(
        data,
        ("format", "title", "measured", "source", "command", "notes", "measures", "charts"),
        where,
    )
    if data.get("format") != FORMAT:
        raise ResultsError(f"{where}: 'format' must be {FORMAT}, got {data.get('format')!r}")
    raw_measures = data.get("measures")
    if not isinstance(raw_measures, list) or not raw_measures:
        raise ResultsError(f"{where}: 'measures' must be a non-empty list")
    measures = [_measure(m, f"{where}: measures[{i}]") for i, m in enumerate(raw_measures)]
    by_name = {m.name: m for m in measures}
    if len(by_name) != len(measures):
        raise ResultsError(f"{where}: two measures have the same name")
    raw_charts = data.get("charts", [])
    if not isinstance(raw_charts, list):
        raise ResultsError(f"{where}: 'charts' must be a list")
    charts = [_chart(c, by_name, f"{where}: charts[{i}]") for i, c in enumerate(raw_charts)]
    notes = data.get("notes", [])
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise ResultsError(f"{where}: 'notes' must be a list of strings")
    return ResultSet(
        title=_string(data, "title", where),
        measured=_string(data, "measured", where),
        source=_string(data, "source", where),
        command=_string(data, "command", where),
        measures=tuple(measures),
        charts=tuple(charts),
        notes=tuple(notes),
    )


def load(path: Path) -> ResultSet:
    """Read and validate one result file.

    Raises:
        ResultsError: the file is not valid JSON or not a valid result set.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not JSON: {exc}") from None
    return parse(data, str(path))


def load_all(directory: Path = RESULTS_DIR) -> dict[str, ResultSet]:
    """Every ``*.json`` result file of ``directory``, by file stem, in name order.

    Raises:
        ResultsError: a file is malformed, or two charts share an output file name.
    """
    sets = {path.stem: load(path) for path in sorted(directory.glob("*.json"))}
    seen: dict[str, str] = {}
    for stem, result_set in sets.items():
        for chart in result_set.charts:
            if chart.file in seen:
                raise ResultsError(
                    f"chart {chart.file} is drawn by both {seen[chart.file]} and {stem}"
                )
            seen[chart.file] = stem
    return sets


def measure_from_runs(
    name: str,
    unit: str,
    better: Better,
    coord: Sequence[float],
    zookeeper: Sequence[float],
) -> Measure | None:
    """A measure from the per-run values of both servers: medians, and the min-max range
    when there were several runs. None when either side has no value.
    """
    if not coord or not zookeeper:
        return None
    return Measure(
        name=name,
        unit=unit,
        better=better,
        coord=float(statistics.median(coord)),
        zookeeper=float(statistics.median(zookeeper)),
        coord_range=(min(coord), max(coord)) if len(coord) > 1 else None,
        zookeeper_range=(min(zookeeper), max(zookeeper)) if len(zookeeper) > 1 else None,
    )
