"""The benchmark charts in docs/img/ are up to date with benchmarks/results/, and the
results are the numbers the pages report.

- every result file is valid, and each of its numbers appears in the page it was taken
  from (docs/benchmarks.md or docs/reliability.md), so a typo in the data fails here;
- every chart a result file declares is in docs/img/, drawn from the data as it is now
  (the SVG records the data's SHA-256), and no chart is left over;
- rendering is deterministic, and with the matplotlib version that drew the committed
  charts, re-rendering gives them byte for byte (so a change to benchmarks/plots.py
  without ``make plots`` fails too);
- a malformed result file is refused with a message naming the problem.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib
import pytest

from benchmarks import plots
from benchmarks.results import (
    RESULTS_DIR,
    Measure,
    ResultsError,
    ResultSet,
    load,
    load_all,
    parse,
)

ROOT = Path(__file__).resolve().parents[2]
IMG = ROOT / "docs" / "img"
RESULT_FILES = sorted(RESULTS_DIR.glob("*.json"))
_MATPLOTLIB = re.compile(r"matplotlib (\S+); benchmarks/plots.py")


def _spellings(value: float) -> set[str]:
    """How a page may have written ``value``: 125,700 / 0.72 / 0.720 / 42.0 / 84.3."""
    out = {f"{value:,.0f}", f"{value:.0f}"} if value.is_integer() else set()
    for digits in (1, 2, 3):
        text = f"{value:,.{digits}f}"
        if float(text.replace(",", "")) == value:
            out.add(text)
    return out


def test_results_exist_and_load() -> None:
    sets = load_all()
    assert len(sets) >= 5
    assert all(result_set.charts for result_set in sets.values())


@pytest.mark.parametrize("path", RESULT_FILES, ids=[p.stem for p in RESULT_FILES])
def test_results_are_the_numbers_of_their_page(path: Path) -> None:
    """Each recorded number is written in the page its source names."""
    result_set = load(path)
    page = "reliability.md" if "reliability.md" in result_set.source else "benchmarks.md"
    assert page in result_set.source
    text = (ROOT / "docs" / page).read_text()
    for measure in result_set.measures:
        values = [measure.coord, measure.zookeeper]
        for pair in (measure.coord_range, measure.zookeeper_range):
            values += list(pair or ())
        for value in values:
            assert any(s in text for s in _spellings(value)), (
                f"{path.name}: {measure.name}: {value} is not in docs/{page}"
            )


def test_committed_charts_are_up_to_date() -> None:
    """Every declared chart is in docs/img/, drawn from the current data; none left over."""
    assert plots.stale() == [], "run `make plots` (python -m benchmarks.plots)"


def test_rendering_is_deterministic() -> None:
    first = plots.render_all()
    second = plots.render_all()
    assert first == second
    for svg in first.values():
        assert "<dc:date>" not in svg
        assert plots.recorded_digest(svg) is not None


def test_rerendered_charts_equal_the_committed_ones() -> None:
    """With the matplotlib that drew them, re-rendering reproduces the committed bytes."""
    rendered = plots.render_all()
    versions = set()
    for name, svg in rendered.items():
        committed = (IMG / name).read_text(encoding="utf-8")
        found = _MATPLOTLIB.search(committed)
        assert found, f"{name} does not say which matplotlib drew it"
        versions.add(found.group(1))
        if found.group(1) == matplotlib.__version__:
            assert svg == committed, f"{name} is stale: run `make plots`"
    if versions != {matplotlib.__version__}:
        pytest.skip(f"charts drawn with matplotlib {versions}, this is {matplotlib.__version__}")


def test_stale_chart_is_detected(tmp_path: Path) -> None:
    """Changing a number without re-rendering is reported, and so are missing charts."""
    results = tmp_path / "results"
    results.mkdir()
    data = json.loads((RESULTS_DIR / "ensemble-3.json").read_text())
    (results / "ensemble-3.json").write_text(json.dumps(data))
    img = tmp_path / "img"
    assert plots.main(["--results", str(results), "--out", str(img)]) == 0
    assert plots.stale(results, img) == []
    data["measures"][0]["coord"] += 1
    (results / "ensemble-3.json").write_text(json.dumps(data))
    problems = plots.stale(results, img)
    assert problems and all("other data" in p for p in problems)
    assert plots.main(["--results", str(results), "--out", str(img), "--check"]) == 1
    (img / "ensemble-throughput.svg").unlink()
    assert "ensemble-throughput.svg: missing" in plots.stale(results, img)


def _valid() -> dict[str, object]:
    return {
        "format": 1,
        "title": "t",
        "measured": "today",
        "source": "docs/benchmarks.md",
        "command": "python -m benchmarks.compare",
        "measures": [
            {"name": "a", "unit": "req/s", "better": "higher", "coord": 2, "zookeeper": 1},
            {"name": "b", "unit": "ms", "better": "lower", "coord": 1, "zookeeper": 2},
        ],
        "charts": [{"file": "x.svg", "kind": "ratio", "title": "x", "measures": ["a", "b"]}],
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format=2), "'format' must be 1"),
        (lambda d: d.update(extra=1), "unknown keys ['extra']"),
        (lambda d: d["measures"][0].update(better="more"), "'better' must be"),
        (lambda d: d["measures"][0].update(coord="fast"), "expected a number"),
        (lambda d: d["measures"][0].update(zookeeper=-1), "must not be negative"),
        (
            lambda d: d["measures"][0].update(zookeeper=0),
            "divides by ZooKeeper's value, 0 in ['a']",
        ),
        (lambda d: d["measures"][0].update(coord_range=[3, 1]), "min 3.0 > max 1.0"),
        (lambda d: d["measures"][1].update(name="a"), "same name"),
        (lambda d: d["charts"][0].update(measures=["a", "c"]), "no such measures ['c']"),
        (lambda d: d["charts"][0].update(kind="bars"), "one unit"),
        (lambda d: d["charts"][0].update(file="../x.svg"), "plain name ending in .svg"),
    ],
)
def test_malformed_results_are_refused(change: object, message: str) -> None:
    data = _valid()
    assert isinstance(parse(json.loads(json.dumps(data)), "ok.json"), ResultSet)
    change(data)  # type: ignore[operator]
    with pytest.raises(ResultsError, match=re.escape(message)) as info:
        parse(data, "bad.json")
    assert "bad.json" in str(info.value)


def test_write_refuses_a_bad_set_and_writes_nothing(tmp_path: Path) -> None:
    bad = ResultSet(
        title="t",
        measured="m",
        source="s",
        command="c",
        measures=(Measure("a", "req/s", "higher", 1.0, -1.0),),
    )
    target = tmp_path / "bad.json"
    with pytest.raises(ResultsError, match="must not be negative"):
        bad.write(target)
    assert not target.exists()
