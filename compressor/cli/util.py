"""Helpers shared by the command modules: logging, integer lists, flags built from config dataclasses, and help
that groups those flags in sections and never cuts a command's summary."""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.logging import RichHandler
from typer.core import TyperCommand

from compressor.errors import CompressorError


def setup_logging(level: int = logging.INFO) -> None:
    logger = logging.getLogger("compressor")
    if not logger.handlers:
        handler = RichHandler(show_path=False, show_time=False, markup=False)
        logger.addHandler(handler)
    logger.setLevel(level)


def parse_ints(text: str, what: str) -> tuple[int, ...]:
    """``"1,8,32"`` → ``(1, 8, 32)``, with a one-line error naming the option."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as err:
        raise CompressorError(f"{what} takes comma-separated integers such as 1,8,32, not {text!r}") from err
    if not values or min(values) < 1:
        raise CompressorError(f"{what} takes positive integers such as 1,8,32, not {text!r}")
    return values


def flag_name(field: dataclasses.Field) -> str:
    return str(field.metadata.get("flag") or "--" + field.name.replace("_", "-"))


def dataclass_options(cls: type, hints: dict[str, Any], skip: tuple[str, ...] = ()) -> list[inspect.Parameter]:
    """One Typer option per field of ``cls``: its default, type, help and help panel come from the field itself.

    Booleans become on-only flags (``--resume``) unless the field's ``flag`` says ``--x/--no-x``; dict
    fields (``recipe_config``) a repeatable ``key=value`` option under the field's ``flag`` name; tuple
    fields a repeatable option (metadata ``repeat``) or comma-separated text (``csv``), turned back into
    tuples by :func:`from_flags`. ``aliases`` adds short names (``-f``). The defaults shown in ``--help``
    are the dataclass's own, so a default is written once. A field's ``panel`` (metadata) becomes the option's
    ``rich_help_panel``, its section in ``--help`` (:class:`PanelCommand`).
    """
    params = []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        hint, help_text = hints[f.name], f.metadata.get("help", "")
        default = f.default if f.default is not dataclasses.MISSING else None
        names = (flag_name(f), *f.metadata.get("aliases", ()))
        kw: dict[str, Any] = {"help": help_text, "rich_help_panel": f.metadata.get("panel")}
        if hint is bool:
            info = typer.Option(*names, **kw, show_default="/" in names[0] and bool(default))
        elif f.default is dataclasses.MISSING:  # a mapping such as recipe_config: repeated key=value
            hint, info = list[str] | None, typer.Option(*names, **kw, show_default=False, metavar="KEY=VALUE")
        elif f.metadata.get("repeat"):  # a tuple given by repeating the flag
            hint, default, info = list[str] | None, None, typer.Option(*names, **kw, show_default=False,
                                                                      metavar="<str>")
        elif f.metadata.get("csv"):  # a tuple written as 1,8,32
            hint, default, info = str, ",".join(str(v) for v in f.default), typer.Option(*names, **kw)
        else:
            info = typer.Option(*names, **kw, show_default=default not in (None, ""))
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                        annotation=Annotated[hint, info]))
    return params


def from_flags(cls: type, values: dict[str, Any]) -> Any:
    """An instance of ``cls`` from the flags :func:`dataclass_options` made: repeated and comma-separated
    tuple fields become tuples (integers for a ``csv`` field, with a one-line error naming the flag)."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        value = values[f.name]
        if f.metadata.get("repeat"):
            value = tuple(value or ())
        elif f.metadata.get("csv"):
            value = parse_ints(value, flag_name(f))
        out[f.name] = value
    return cls(**out)


def with_parameters(func: Callable[..., Any], extra: list[inspect.Parameter]) -> Callable[..., Any]:
    """``func`` with ``extra`` keyword parameters added to the signature Typer reads (they arrive in ``**kwargs``)."""
    sig = inspect.signature(func, eval_str=True)
    own = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    func.__signature__ = sig.replace(parameters=own + extra)  # type: ignore[attr-defined]  # read by Typer
    return func


def given_on_command_line(ctx: typer.Context, name: str) -> bool:
    """Whether the user typed the option (rather than Typer filling in its default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


class PanelCommand(TyperCommand):
    """A command whose ``--help`` lists its options in sections, one per ``rich_help_panel``.

    Typer draws its help panels only in rich mode; ``compress`` prints click's plain help (``main.py``: on/off
    flags show no value placeholder), where every option would sit in one flat list. This lists the options
    without a panel (``--config``, ``--help``) under ``Options:`` and then each panel as a section of its own, in
    the order the options come.
    """

    def format_options(self, ctx: Any, formatter: Any) -> None:
        args: list[tuple[str, str]] = []
        sections: dict[str, list[tuple[str, str]]] = {"Options": []}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                args.append(record)
            else:
                sections.setdefault(getattr(param, "rich_help_panel", None) or "Options", []).append(record)
        if args:
            with formatter.section("Arguments"):
                formatter.write_dl(args)
        for title, records in sections.items():
            if records:
                with formatter.section(title):
                    formatter.write_dl(records)


def summary(help_or_func: str | Callable[..., Any] | None) -> str:
    """A command's one-line summary for ``compress --help``: the first paragraph of its help or docstring.

    Given to Typer as ``short_help``, so click shows it whole instead of cutting the docstring to the terminal's
    width ("Distill a compact student from a teacher (or a peer) with an...").
    """
    doc = help_or_func if isinstance(help_or_func, str) else inspect.getdoc(help_or_func) or ""
    return " ".join(inspect.cleandoc(doc).split("\n\n", 1)[0].split())
