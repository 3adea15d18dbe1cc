"""The shard SPEC of ``--data``: a path, a glob (``shards/*.tar``) or a bash-style brace expansion.

A zero-padded range ``{000000..000127}`` or a list ``{a,b}`` expands to names, every one of which must
exist; URLs and compressed tars are refused with a line saying why (:mod:`compressor.data.shards` reads
the files by seeking).
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

from compressor.errors import CompressorError

_URL = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*://|pipe:)")
_COMPRESSED = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar.zst")
_MAX_NAMES = 1_000_000  # a brace range longer than this is a typo, not a data set


def is_shard_spec(spec: str) -> bool:
    """Whether ``--data spec`` names tar shards (a ``.tar`` path, glob or brace range) or a URL."""
    s = spec.strip().lower()
    return s.endswith(".tar") or s.endswith(_COMPRESSED) or bool(_URL.match(spec))


def expand_braces(text: str) -> list[str]:
    """Bash brace expansion: ``a{1..3}b`` → a1b a2b a3b, ``{08..10}`` zero-padded, ``{x,y}`` lists, nesting."""
    start = text.find("{")
    while start >= 0:
        end = _matching_brace(text, start)
        if end < 0:
            return [text]
        body = text[start + 1:end]
        items = _range(body)
        if items is None:
            parts = _split_commas(body)
            items = [x for p in parts for x in expand_braces(p)] if len(parts) > 1 else None
        if items is not None:
            rests = expand_braces(text[end + 1:])
            if len(items) * len(rests) > _MAX_NAMES:
                raise CompressorError(f"{text!r} expands to more than {_MAX_NAMES} names; check the brace range")
            return [text[:start] + item + rest for item in items for rest in rests]
        start = text.find("{", start + 1)  # not an expansion (bash keeps "{x}" as it is): look further on
    return [text]


def _matching_brace(text: str, start: int) -> int:
    depth = 0
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return i
    return -1


def _range(body: str) -> list[str] | None:
    m = re.fullmatch(r"(-?\d+)\.\.(-?\d+)", body)
    if not m:
        return None
    a, b = m.groups()
    lo, hi = int(a), int(b)
    if abs(hi - lo) >= _MAX_NAMES:
        raise CompressorError(f"the brace range {{{body}}} names more than {_MAX_NAMES} shards; check it")
    padded = any(len(x.lstrip("-")) > 1 and x.lstrip("-").startswith("0") for x in (a, b))
    width = max(len(a), len(b)) if padded else 0  # bash pads to the longer end when either has a leading 0
    step = 1 if hi >= lo else -1
    return [f"{v:0{width}d}" for v in range(lo, hi + step, step)]


def _split_commas(body: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in body:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [*parts, cur]


def shard_files(spec: str) -> list[Path]:
    """The shard files ``spec`` names, in order; a one-line error when it names none or a missing one."""
    if _URL.match(spec):
        raise CompressorError(f"--data {spec!r}: shards are read by seeking into local or mounted files; streaming "
                              "from URLs is not supported. Copy or mount the shards and pass their path")
    if spec.strip().lower().endswith(_COMPRESSED):
        raise CompressorError(f"--data {spec!r}: compressed shards cannot be read by seeking; write plain .tar "
                              "shards (`compress data shard FOLDER OUT` does)")
    names = expand_braces(os.path.expanduser(spec))
    files: list[Path] = []
    missing: list[str] = []
    for name in names:
        if re.search(r"[*?[]", name):
            hits = sorted(glob.glob(name))
            files += [Path(h) for h in hits]
            missing += [] if hits else [name]
        elif os.path.isfile(name):
            files.append(Path(name))
        else:
            missing.append(name)
    if not files:
        raise CompressorError(f"no shard matches --data {spec!r}; check the folder and the brace range "
                              "(quote the SPEC so the shell does not expand it), or write shards from an image "
                              "folder with `compress data shard FOLDER OUT`")
    if missing:
        raise CompressorError(f"{len(missing)} of the {len(names)} shards --data {spec!r} names do not exist "
                              f"(first: {missing[0]}); fix the range to name only the shards that exist")
    return list(dict.fromkeys(files))  # a file named twice is read once
