"""The documentation site builds: ``mkdocs build --strict`` over docs/ with mkdocs.yml.

mkdocs.yml turns broken links, missing anchors and pages left out of the nav into warnings,
and ``--strict`` makes any warning fail the build, so this test fails on any of them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _build(site_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_docs_site_builds_strict_with_every_page(tmp_path: Path) -> None:
    """The strict build succeeds, without a warning, and renders every page of docs/."""
    site = tmp_path / "site"
    result = _build(site)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    warnings = [line for line in output.splitlines() if line.startswith("WARNING")]
    assert warnings == []
    for page in DOCS.glob("*.md"):
        built = site / "index.html" if page.stem == "index" else site / page.stem / "index.html"
        assert built.is_file(), f"{page.name} was not rendered"
    assert (site / "search" / "search_index.json").is_file()
    # The benchmark charts are part of the site.
    assert sorted(p.name for p in (site / "img").glob("*.svg")) == sorted(
        p.name for p in (DOCS / "img").glob("*.svg")
    )


def test_docs_site_build_fails_on_a_broken_link(tmp_path: Path) -> None:
    """The settings really catch broken anchors: a copy of the docs with one fails."""
    copy = tmp_path / "project"
    (copy / "docs").mkdir(parents=True)
    for path in DOCS.rglob("*"):
        if path.is_file():
            target = copy / "docs" / path.relative_to(DOCS)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    (copy / "mkdocs.yml").write_text((ROOT / "mkdocs.yml").read_text())
    index = copy / "docs" / "index.md"
    index.write_text(index.read_text() + "\n[broken](client.md#no-such-section)\n")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "s")],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "no-such-section" in result.stdout + result.stderr
