"""Tools for operators: snapshots, store inspection, and JSON export/import of subtrees.

Each is a ``coord`` subcommand (``coord snapshot save|restore``, ``coord store inspect``,
``coord export``, ``coord import``; docs/operations.md) and a function here, for scripts.
Every function raises :class:`ToolError` with a message meant for the operator.
"""

from coord.tools._common import Progress, ToolError, human_bytes
from coord.tools._snapshot import RestoreResult, SaveResult, restore_snapshot, save_snapshot
from coord.tools._store import format_store_info, inspect_store
from coord.tools._transfer import (
    ExportResult,
    ImportResult,
    export_tree,
    import_tree,
    read_document,
    write_document,
)

__all__ = [
    "ExportResult",
    "ImportResult",
    "Progress",
    "RestoreResult",
    "SaveResult",
    "ToolError",
    "export_tree",
    "format_store_info",
    "human_bytes",
    "import_tree",
    "inspect_store",
    "read_document",
    "restore_snapshot",
    "save_snapshot",
    "write_document",
]
