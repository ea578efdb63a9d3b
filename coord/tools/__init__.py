"""Tools for operators: snapshots, store inspection, JSON export/import of subtrees, and
config checks and zoo.cfg conversion.

Each is a ``coord`` subcommand (``coord snapshot save|restore``, ``coord store inspect``,
``coord export``, ``coord import``, ``coord config check|from-zoocfg``; docs/operations.md,
docs/configuration.md) and a function here, for scripts.
Every function raises :class:`ToolError` with a message meant for the operator.
"""

from coord.tools._common import Progress, ToolError, human_bytes
from coord.tools._config_check import ConfigCheck, ConfigProblem, check_config, format_check
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
from coord.tools._zoocfg import ZooCfgConversion, ZooCfgError, convert_zoocfg

__all__ = [
    "ConfigCheck",
    "ConfigProblem",
    "ExportResult",
    "ImportResult",
    "Progress",
    "RestoreResult",
    "SaveResult",
    "ToolError",
    "ZooCfgConversion",
    "ZooCfgError",
    "check_config",
    "convert_zoocfg",
    "export_tree",
    "format_check",
    "format_store_info",
    "human_bytes",
    "import_tree",
    "inspect_store",
    "read_document",
    "restore_snapshot",
    "save_snapshot",
    "write_document",
]
