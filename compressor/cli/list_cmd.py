"""``compress list teachers|students|recipes``."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table


class What(str, Enum):
    teachers = "teachers"
    students = "students"
    recipes = "recipes"


def list_cmd(
    what: Annotated[What, typer.Argument(help="teachers, students or recipes.")],
    filter_: Annotated[str, typer.Option(
        "--filter", help="Wildcard over timm's whole catalogue of students, e.g. 'resnet*'.")] = "",
    all_: Annotated[bool, typer.Option(
        "--all", help="Students: every timm architecture, not only the curated edge zoo.")] = False,
) -> None:
    """List the registered teachers, students or recipes.

    ``students`` shows the curated edge zoo (parameters, GMACs at 224 px) without loading torch;
    ``--all`` or ``--filter`` lists timm's whole catalogue (any timm name works as a student).
    """
    console = Console()
    if what is What.recipes:
        from compressor.engine.recipe_cards import recipe_cards

        table = Table("recipe", "kind", "description")
        for r in recipe_cards():
            table.add_row(r.name, r.kind, r.description)
    elif what is What.teachers:
        from compressor.models.teacher_specs import list_teachers

        table = Table("teacher", "embedding", "input", "description")
        for t in list_teachers():
            table.add_row(t.name, str(t.embed_dim), str(t.image_size), t.description)
        table.caption = "also: timm:<name>, hf-hub:org/name, open_clip:<arch>:<tag>, or a run directory of ours"
    elif not (all_ or filter_):
        from compressor.export.zoo import EDGE_STUDENT_COSTS

        table = Table("student (edge zoo)", "params (M)", "GMACs @224")
        for name, (params, gmacs) in EDGE_STUDENT_COSTS.items():
            table.add_row(name, f"{params:.2f}", f"{gmacs:.2f}")
        table.caption = "the default candidates of compress pick; --all lists every timm architecture"
    else:
        from compressor.models.students import list_students

        names = list_students(filter_)
        table = Table("student (timm architecture)")
        for n in names:
            table.add_row(n)
        table.caption = f"{len(names)} architectures; any timm model name works, or hf-hub:org/name"
    console.print(table)
