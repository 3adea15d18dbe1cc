"""The ``compress`` command: one Typer app; each sub-command lives in its own module and is registered here.

The command modules never import this one (the arrows run main → commands), so
``compressor.cli.main:app`` is complete as soon as it is imported.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Annotated, Any, cast

import typer

from compressor import __version__
from compressor.cli import bench, cache, data, demo, distill, embed, eval, export, list_cmd, pick, prune, report, run
from compressor.cli.util import PanelCommand, summary
from compressor.errors import CompressorError

app = typer.Typer(
    name="compress",
    help="Distill compact image encoders from self-supervised teachers, evaluate, export and benchmark them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: on/off flags show no value placeholder
)


def _command(name: str, func: Callable[..., Any], **kw: Any) -> None:
    """Register ``func`` as ``compress NAME``; its docstring's first paragraph is the summary ``--help`` lists."""
    app.command(name, short_help=summary(func), **kw)(func)


_command("distill", distill.distill, cls=PanelCommand)  # its options in sections (TrainConfig's panels)
_command("eval", eval.eval_cmd)
_command("export", export.export_cmd)
_command("embed", embed.embed_cmd)
_command("bench", bench.bench_cmd)
_command("pick", pick.pick_cmd)
_command("list", list_cmd.list_cmd)
_command("demo", demo.demo)
_command("run", run.run_cmd, context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
_command("report", report.report_cmd)
_command("prune", prune.prune_cmd)
for _name, _group in (("cache", cache.cache_app), ("data", data.data_app)):
    app.add_typer(_group, name=_name, short_help=summary(_group.info.help))
    for _sub in _group.registered_commands:  # `compress cache --help` lists `build` by the same rule
        _sub.short_help = _sub.short_help or summary(_sub.callback)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"compress {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", is_eager=True,
                                          callback=_print_version, show_default=False)] = False,
) -> None:
    """Distill compact image encoders from self-supervised teachers, evaluate, export and benchmark them."""


def _click_class(err: BaseException, name: str) -> bool:
    """Whether ``err`` is click's ``name`` (ClickException, Abort), from whichever click Typer runs on.

    Typer ≥ 0.26 ships its own copy of click, whose exceptions are not ``click.ClickException``; the
    class names are the same in both, so the check reads them off the exception's classes.
    """
    return any(c.__name__ == name and "click" in c.__module__ for c in type(err).__mro__)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one line on stderr (a traceback only with --debug)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("COMPRESS_DEBUG") == "1"
    if "--debug" in args:
        args.remove("--debug")
    try:
        code = app(args=args, prog_name="compress", standalone_mode=False)
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
    except Exception as err:
        if _click_class(err, "NoArgsIsHelpError"):  # bare `compress`: the help, as --help prints it
            typer.echo(cast(Any, err).format_message())  # a ClickException
            sys.exit(0)
        if _click_class(err, "ClickException"):  # usage errors: click's own message, on one line
            typer.echo(f"error: {' '.join(cast(Any, err).format_message().split())}", err=True)  # a ClickException
            sys.exit(getattr(err, "exit_code", 2))
        if _click_class(err, "Abort"):
            typer.echo("interrupted", err=True)
            sys.exit(130)
        if debug:
            raise
        if isinstance(err, OSError) and err.filename:  # a path no command checked first: the path and the problem
            from compressor.rundir import output_path_problem

            why = output_path_problem(err.filename, folder=isinstance(err, NotADirectoryError)) or err.strerror
            typer.echo(f"error: {str(err.filename)!r}: {why}", err=True)
            sys.exit(2)
        typer.echo(f"error: {type(err).__name__}: {err} (re-run with --debug for the traceback)", err=True)
        sys.exit(1)
    if isinstance(code, int) and code:
        sys.exit(code)
