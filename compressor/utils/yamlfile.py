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


def _expanded_size(node: yaml.Node, budget: int) -> int:
    """Nodes in the document once every alias is expanded, counting no further than ``budget``."""
    count, stack = 0, [node]
    while stack:
        n = stack.pop()
        count += 1
        if count > budget:
            return count
        if isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)
        elif isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                stack.extend((k, v))
    return count


def load_yaml_text(text: str, where: str) -> Any:
    """``text`` parsed as safe YAML under the expansion limit; errors name ``where`` and the line."""
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            if _expanded_size(node, MAX_NODES) > MAX_NODES:
                raise CompressorError(f"{where} expands to more than {MAX_NODES} values (YAML aliases nested "
                                      "too deep); write the values out plainly")
            return loader.construct_document(node)
        finally:
            loader.dispose()
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
