"""The ``compress`` command: one Typer app composed of one module per sub-command."""

from __future__ import annotations

import os
import sys

import typer

from compressor.errors import CompressorError

app = typer.Typer(
    name="compress",
    help="Distill compact image encoders from self-supervised teachers, evaluate, export and benchmark them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_commands() -> None:
    # Each command lives in its own module; importing it registers it on ``app``.
    from compressor.cli import commands  # noqa: F401


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one line on stderr (a traceback only with --debug)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("COMPRESS_DEBUG") == "1"
    if "--debug" in args:
        args.remove("--debug")
    _register_commands()
    try:
        app(args=args, standalone_mode=False)
    except CompressorError as err:
        if debug:
            raise
        typer.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as err:  # click's usage errors and anything unexpected
        import click

        if isinstance(err, click.exceptions.Exit):
            sys.exit(err.exit_code)
        if isinstance(err, click.ClickException):
            err.show()
            sys.exit(err.exit_code)
        if isinstance(err, click.exceptions.Abort):
            typer.echo("aborted", err=True)
            sys.exit(1)
        if debug:
            raise
        typer.echo(f"error: {type(err).__name__}: {err} (re-run with --debug for the traceback)", err=True)
        sys.exit(1)

