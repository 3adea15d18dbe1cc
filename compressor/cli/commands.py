"""Imports every command module so each registers itself on the app (one module per command)."""

from compressor.cli import bench, demo, distill, embed, eval, export, list_cmd  # noqa: F401
