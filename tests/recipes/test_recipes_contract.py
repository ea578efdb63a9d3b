"""Every recipe module states its failure semantics (what happens on disconnect, on
reconnect and on session expiry) and offers the sync facade."""

from __future__ import annotations

import importlib

import pytest

RECIPES = [
    "_barrier",
    "_config_watcher",
    "_counter",
    "_election",
    "_group",
    "_lease",
    "_lock",
    "_partitioner",
    "_queue",
    "_registry",
    "_rwlock",
    "_semaphore",
]


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_docstring_states_failure_semantics(name: str) -> None:
    doc = (importlib.import_module(f"coord.recipes.{name}").__doc__ or "").lower()
    for event in ("disconnect", "reconnect", "expir"):
        assert event in doc, f"coord.recipes.{name} does not say what happens on {event}"
    assert "syncclient" in doc.replace("~coord.client.", "").replace("`", ""), (
        f"coord.recipes.{name} does not say how it is used with a SyncClient"
    )
