"""Type-check the project under its installed module names: ``make lint`` and ``make test`` run this.

setuptools installs the top-level ``recipes/`` and ``export/`` folders as ``compressor.recipes`` and
``compressor.export`` (``package-dir`` in pyproject.toml). mypy names a module after its place on disk, so
``mypy`` run on the folders checks them as ``recipes.*`` / ``export.*``, and every
``from compressor.recipes…`` / ``from compressor.export…`` import is ``Any``: the seam between the core and
those packages goes unchecked. This script builds ``build/typecheck/compressor/`` (gitignored), holding a
symlink to each entry of ``compressor/`` plus ``recipes -> recipes/`` and ``export -> export/``, runs mypy
on it with the project's ``[tool.mypy]`` settings (its cache stays in ``build/typecheck/.mypy_cache``) and
prints mypy's messages with the paths of the files in this repository (``export/bencher.py:207: …``).

    python scripts/typecheck.py [MYPY ARGS...]    # exit status: mypy's
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parent.parent
TREE = REPO / "build" / "typecheck"


def plugin_packages() -> dict[str, str]:
    """Installed name inside ``compressor/`` -> folder of this repository, from pyproject.toml's package-dir."""
    dirs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    return {name.removeprefix("compressor."): folder for name, folder in dirs.items()
            if name.startswith("compressor.") and folder != name.replace(".", "/")}


PLUGIN_PACKAGES = plugin_packages()


def build_tree() -> Path:
    """(Re)create ``TREE/compressor`` as symlinks into the repository; returns it."""
    pkg = TREE / "compressor"
    if pkg.is_symlink() or pkg.is_file():
        pkg.unlink()
    elif pkg.exists():
        shutil.rmtree(pkg)  # only symlinks inside: the files they point at are left alone
    pkg.mkdir(parents=True)
    for entry in sorted((REPO / "compressor").iterdir()):
        if entry.name == "__pycache__":
            continue
        if entry.name in PLUGIN_PACKAGES:
            sys.exit(f"typecheck: compressor/{entry.name} would hide the {PLUGIN_PACKAGES[entry.name]}/ folder "
                     "installed under that name")
        os.symlink(entry, pkg / entry.name)
    for name, folder in PLUGIN_PACKAGES.items():
        os.symlink(REPO / folder, pkg / name, target_is_directory=True)
    return pkg


def repo_paths(text: str) -> str:
    """mypy's paths inside the tree -> the repository's (relative ones stay relative to its root)."""
    for name, folder in PLUGIN_PACKAGES.items():
        text = text.replace(f"{TREE}/compressor/{name}/", f"{REPO}/{folder}/")
        text = re.sub(rf"(?<![\w./-])compressor/{name}/", f"{folder}/", text)
    return text.replace(f"{TREE}/compressor/", f"{REPO}/compressor/")


def main(argv: list[str]) -> int:
    build_tree()
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"), *argv, "compressor"]
    proc = subprocess.run(cmd, cwd=TREE, capture_output=True, text=True)
    sys.stdout.write(repo_paths(proc.stdout))
    sys.stderr.write(repo_paths(proc.stderr))
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
