"""Imports every command module so each registers itself on the app (one module per command)."""

import importlib

for _name in ("distill", "eval", "demo", "list_cmd", "export", "bench"):
    try:
        importlib.import_module(f"compressor.cli.{_name}")
    except ModuleNotFoundError as _err:  # a command whose module is not written yet
        if _err.name != f"compressor.cli.{_name}":
            raise
