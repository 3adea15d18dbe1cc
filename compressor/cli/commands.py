"""Imports every command module so each registers itself on the app (one module per command)."""

from compressor.cli import bench, cache, demo, distill, eval, export, list_cmd  # noqa: F401
