"""``python -m compressor`` = the ``compress`` command."""

from compressor.cli.main import main

main()
