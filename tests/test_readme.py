"""Every path the README and docs name exists in a clone, and every `compress` command and flag they show exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# repository paths: a top-level folder of the clone followed by a path (placeholders like <name> allowed)
_PATH = re.compile(r"(?<![\w./-])((?:examples|docs|recipes|compressor|export|tests|benchmarks|scripts)/[\w./<>*-]*\w)")


_SOURCE = (".py", ".md", ".yaml", ".yml", ".toml", ".sh", ".txt", ".json")
_RUN_FILES = ("export/manifest.json",)  # files of a run directory's export/, not of the clone


def _exists(rel: str) -> bool:
    if rel in _RUN_FILES or not rel.endswith(_SOURCE):
        return True  # outputs (RUN/export/model.onnx ...) are not files of the clone
    pattern = re.sub(r"<[^>]+>", "*", rel)
    return any(ROOT.glob(pattern)) if "*" in pattern else (ROOT / rel).exists()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_named_paths_exist(page: Path) -> None:
    text = page.read_text()
    assert "../" not in text.replace("](../", ""), f"{page.name} points outside the clone"
    for line in text.splitlines():  # a relative markdown link from docs/ is checked against its own folder
        for target in re.findall(r"\]\((?!https?:)([^)#]+)", line):
            assert (page.parent / target).exists(), f"{page.name}: link {target} does not exist"
    missing = sorted({p for p in _PATH.findall(text) if not _exists(p)})
    assert not missing, f"{page.name} names paths that do not exist: {missing}"


def _commands(text: str) -> list[tuple[str, list[str]]]:
    """``(command, flags)`` of every ``compress <cmd> ...`` line, with backslash continuations joined."""
    text = text.replace("\\\n", " ")
    out = []
    for m in re.finditer(r"(?:^|[\s`])compress ([a-z][a-z-]*)([^\n`#]*)", text):
        out.append((m.group(1), re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", m.group(2))))
    return out


def test_readme_commands_and_flags_exist(cli) -> None:
    helps: dict[str, str] = {}
    seen = _commands((ROOT / "README.md").read_text())
    assert seen
    for cmd, flags in seen:
        if cmd not in helps:
            code, out, err = cli(cmd, "--help")
            assert code == 0, f"README shows `compress {cmd}`, which does not exist: {err}"
            helps[cmd] = out
        unknown = [f for f in flags if f not in helps[cmd]]
        assert not unknown, f"README shows `compress {cmd}` with unknown flags {unknown}"


def test_every_command_has_a_docs_page() -> None:
    from compressor.cli.main import app

    names = [c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands]
    names += [g.name or "" for g in app.registered_groups]
    assert {"distill", "cache", "data"} <= set(names)
    missing = sorted(n for n in names if not (ROOT / "docs" / f"{n}.md").is_file())
    assert not missing, f"commands without a docs/<command>.md page: {missing}"


def _leaf_commands() -> list[tuple[list[str], object]]:
    """``(path, click command)`` of every sub-command (``["cache", "build"]`` for a group's)."""
    import typer

    from compressor.cli.main import app

    def walk(cmd, path):
        subs = getattr(cmd, "commands", None)
        if subs is None:
            return [(path, cmd)]
        return [leaf for name, sub in subs.items() for leaf in walk(sub, [*path, name])]

    return walk(typer.main.get_command(app), [])


def _undocumented(cmd, page: str) -> list[str]:
    """The option strings of ``cmd`` (``--x``, ``--no-x``, ``-f``) that its docs page never writes out."""
    opts = [o for p in cmd.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-") and o != "--help"]
    return [o for o in opts if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", page)]


def test_every_flag_is_on_its_commands_page() -> None:
    """Each flag ``compress CMD --help`` lists appears on ``docs/CMD.md`` (issue 26): the help is generated from
    the code, the page is written by hand, and a new flag must not land without a line there."""
    leaves = _leaf_commands()
    assert {"distill", "export", "cache build", "data shard"} <= {" ".join(p) for p, _ in leaves}
    missing = {" ".join(path): gaps for path, cmd in leaves
               if (gaps := _undocumented(cmd, (ROOT / "docs" / f"{path[0]}.md").read_text()))}
    assert not missing, f"flags missing from their docs/<command>.md page: {missing}"


def test_the_flag_check_sees_a_missing_flag() -> None:
    export = dict((" ".join(p), c) for p, c in _leaf_commands())["export"]
    page = (ROOT / "docs" / "export.md").read_text()
    assert _undocumented(export, page) == []
    assert _undocumented(export, page.replace("--no-knn", "")) == ["--no-knn"]
    assert "--knn" in _undocumented(export, page.replace("--knn", "--knnx"))


def test_the_export_page_documents_timm_and_one_row_per_format() -> None:
    page = (ROOT / "docs" / "export.md").read_text()
    rows = re.findall(r"^\| `([a-z0-9-]+)` \| `", page, flags=re.M)
    formats = rows[:rows.index("timm") + 1]  # the first table: one row per --format
    assert len(formats) == len(set(formats)), f"a format has two rows: {formats}"
    assert set(formats) == {"onnx", "onnx-fp16", "onnx-int8", "openvino", "openvino-int8", "trt-fp16", "trt-int8",
                            "timm"}
    assert "## `--format timm`" in page and "--student-weights PATH" in (ROOT / "docs" / "distill.md").read_text()


def test_readme_list_line_is_a_command_list_accepts() -> None:
    from compressor.cli.list_cmd import What

    lines = [m.group(1).split() for m in re.finditer(r"^compress list ([^#\n]*)", (ROOT / "README.md").read_text(),
                                                     flags=re.M)]
    assert lines
    for words in lines:
        assert words[0] in {w.value for w in What}, f"README: `compress list {' '.join(words)}`"
        assert all(w.startswith("--") for w in words[1:]), f"README: `compress list {' '.join(words)}`"
