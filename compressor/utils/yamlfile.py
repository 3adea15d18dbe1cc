"""Reading YAML we did not write ourselves: a size limit, an expansion limit, and errors that stay short.

``yaml.safe_load`` is safe from code execution but not from a "billion laughs" document: nine levels
of ten aliases are a few hundred bytes that expand to 10⁹ nodes. The document is composed first
(aliases stay shared, so that is cheap), its expanded size is counted with a budget, and only then
is it constructed. A run's ``config.yaml`` is read on ``--resume`` and by eval/export, so it goes
through here too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from compressor.errors import CompressorError
from compressor.utils.io import check_regular_file

MAX_BYTES = 1 << 20  # a config is a page of text; a megabyte is generous
MAX_NODES = 100_000  # after alias expansion
MAX_DEPTH = 100  # levels of lists/mappings; a config needs three or four, PyYAML's recursion ends near 300


def _too_deep(where: str) -> CompressorError:
    return CompressorError(f"{where} nests lists or mappings more than {MAX_DEPTH} levels deep; "
                           "write it with fewer levels")


def _expanded_size(node: yaml.Node, budget: int, where: str) -> int:
    """Nodes in the document once every alias is expanded, counting no further than ``budget``.

    Raises the one-line error of :func:`_too_deep` when a branch is deeper than :data:`MAX_DEPTH`.
    """
    count, stack = 0, [(node, 0)]
    while stack:
        n, depth = stack.pop()
        count += 1
        if count > budget:
            return count
        if depth > MAX_DEPTH:
            raise _too_deep(where)
        if isinstance(n, yaml.SequenceNode):
            stack.extend((c, depth + 1) for c in n.value)
        elif isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                stack.extend(((k, depth + 1), (v, depth + 1)))
    return count


def safe_yaml(text: str, where: str) -> Any:
    """``text`` as safe YAML within the size and depth limits (a ``CompressorError`` naming ``where``).

    Syntax errors stay ``yaml.YAMLError`` so that a caller can fall back (a ``--set`` value that is not
    YAML is a plain string).
    """
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:  # the composer recursed past Python's limit before any check could run
            raise _too_deep(where) from None
        if node is None:
            return None
        if _expanded_size(node, MAX_NODES, where) > MAX_NODES:
            raise CompressorError(f"{where} expands to more than {MAX_NODES} values (YAML aliases nested "
                                  "too deep); write the values out plainly")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load_yaml_text(text: str, where: str) -> Any:
    """``text`` parsed as safe YAML under the expansion and depth limits; errors name ``where`` and the line."""
    try:
        return safe_yaml(text, where)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or type(err).__name__
        raise CompressorError(f"{where} is not valid YAML{at}: {problem}") from None


def read_yaml_file(path: str | Path, what: str = "config file") -> Any:
    """A YAML file from disk: a regular file below :data:`MAX_BYTES`, UTF-8, within the expansion limit."""
    path = Path(path)
    check_regular_file(path, what, max_bytes=MAX_BYTES, allow_empty=True)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise CompressorError(f"{what} {str(path)!r} is not UTF-8 text (byte {err.start}); save it as UTF-8") \
            from None
    except OSError as err:
        raise CompressorError(f"cannot read {what} {str(path)!r}: {err.strerror or err}") from None
    return load_yaml_text(text, str(path))
