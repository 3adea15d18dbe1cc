"""`compress --help` lists each command with a whole sentence, and `compress distill --help` groups its ~37 options
in sections (Typer's rich help panels, declared once per TrainConfig field)."""

from __future__ import annotations

import dataclasses
import re

import pytest

from compressor.engine.config import PANELS, TrainConfig


def _commands():
    """``(path, click command)`` of every command ``compress`` lists, the groups' sub-commands included."""
    import typer

    from compressor.cli.main import app

    def walk(cmd, path):
        out = [(path, cmd)] if path else []
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            out += walk(sub, [*path, name])
        return out

    return walk(typer.main.get_command(app), [])


def _listed(help_text: str) -> dict[str, str]:
    """The ``Commands:`` section of a group's help: command → its summary, wrapped lines joined."""
    section = help_text.split("\nCommands:\n", 1)[1]
    entries: dict[str, str] = {}
    name = None
    for line in section.splitlines():
        m = re.match(r"^  (\S+)\s+(.*)$", line)
        if m:
            name = m.group(1)
            entries[name] = m.group(2).strip()
        elif line.startswith("    ") and name:
            entries[name] += " " + line.strip()
    return entries


def test_every_config_field_has_a_help_panel() -> None:
    missing = [f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("panel") not in PANELS]
    assert not missing, f"TrainConfig fields without a panel from PANELS: {missing}"
    used = {f.metadata["panel"] for f in dataclasses.fields(TrainConfig)}
    assert used == set(PANELS)  # no panel declared and left empty


def test_distill_options_carry_their_fields_panel() -> None:
    distill = dict((" ".join(p), c) for p, c in _commands())["distill"]
    panels = {p.name: getattr(p, "rich_help_panel", None) for p in distill.params}
    assert {f.name: panels[f.name] for f in dataclasses.fields(TrainConfig)} == \
        {f.name: f.metadata["panel"] for f in dataclasses.fields(TrainConfig)}


@pytest.mark.parametrize("limit", [45, 80])
def test_every_command_summary_is_a_whole_sentence(limit: int) -> None:
    # what click shows beside each command name: at 45 characters (its default, a narrow terminal) and 80
    for path, cmd in _commands():
        short = cmd.get_short_help_str(limit=limit)
        assert short.endswith(".") and "..." not in short, f"compress {' '.join(path)}: {short!r}"
        assert 10 < len(short) <= 70, f"compress {' '.join(path)}: a summary of one line, not {short!r}"


@pytest.mark.parametrize("columns", ["50", "100"])
@pytest.mark.parametrize("group", [[], ["cache"], ["data"]])
def test_help_lists_no_summary_cut_mid_sentence(cli, monkeypatch: pytest.MonkeyPatch, columns: str,
                                                group: list[str]) -> None:
    monkeypatch.setenv("COLUMNS", columns)  # click wraps and cuts to the terminal's width
    code, out, _ = cli(*group, "--help")
    assert code == 0
    listed = _listed(out)
    assert len(listed) >= (13 if not group else 1), out
    cut = {name: text for name, text in listed.items() if not text.endswith(".") or text.endswith("...")}
    assert not cut, f"summaries cut mid-sentence at {columns} columns: {cut}"


def test_distill_help_groups_its_options_by_panel(cli) -> None:
    code, out, _ = cli("distill", "--help")
    assert code == 0
    headings = [ln[:-1] for ln in out.splitlines() if re.fullmatch(r"[A-Z][A-Za-z ]+:", ln)]
    assert headings == ["Options", *PANELS], headings
    sections = dict(zip(headings, re.split(r"^[A-Z][A-Za-z ]+:$", out, flags=re.M)[1:], strict=True))
    for f in dataclasses.fields(TrainConfig):
        flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
        home = [title for title, text in sections.items() if re.search(rf"^  {re.escape(flag)}(?![\w-])", text, re.M)]
        assert home == [f.metadata["panel"]], (flag, home)
    assert re.search(r"^  --config\b", sections["Options"], re.M)  # the command's own options stay first
