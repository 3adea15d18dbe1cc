"""What `scripts/gpu-check.sh` asks of its Python before any row: is the package installed, and what is missing.

    python scripts/gpu_check_install.py probe ROOT     # exit 0, printing the `compress` script's path, when the
                                                       # package installed from ROOT is complete; else exit 1 and why
    python scripts/gpu_check_install.py probe ROOT --deps-later   # the same, but a missing third-party module
                                                       # is no reason to reinstall (the wheels step brings it)
    python scripts/gpu_check_install.py needs          # the requirements to install from the wheels folder
    python scripts/gpu_check_install.py missing        # those of them not installed at all, by name
    python scripts/gpu_check_install.py torch          # the machine's torch against the supported range

Why a probe and not ``python -c "import compressor"``: from the repository root the folder ``compressor/``
imports without any install, while ``compressor.recipes`` and ``compressor.export`` (the package-dir mapping of
recipes/ and export/), the entry points the registries read and the ``compress`` console script exist only in an
installed distribution. gpu-check.sh runs the probe from ``/``, where nothing of ROOT is on ``sys.path``, and
checks that the installed package is *this* checkout (an older copy of it would run other code) and that its
metadata is not stale (an entry point added to pyproject.toml since the install).

Standard library only: it runs before anything is installed, on the GPU machine's own Python (3.10 or newer).
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import os
import re
import sys
import sysconfig
from pathlib import Path

# The machine's own builds stay (a CUDA or ROCm torch cannot come from a wheels folder filled elsewhere)
MACHINE_OWN = ("torch", "torchvision")


def _pyproject(root: Path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10: pip vendors the same parser
        from pip._vendor import tomli as tomllib  # type: ignore[no-redef]
    with open(root / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def _inside(path: str | None, folder: Path) -> bool:
    return path is not None and Path(os.path.realpath(path)).is_relative_to(folder.resolve())


def _changed_requirements(declared: list[str], installed: list[str]) -> list[str]:
    """The declared requirements the installed metadata does not hold as such (a widened torch range, say)."""
    try:
        from pip._vendor.packaging.requirements import Requirement
    except ImportError:  # no pip to compare with: the entry points still catch most stale installs
        return []
    have = {str(Requirement(r)) for r in installed if not re.search(r"\bextra\s*==", r)}
    return sorted(str(Requirement(r)) for r in declared if str(Requirement(r)) not in have)


def console_script(dist: md.Distribution, name: str) -> str | None:
    """The installed path of console script ``name`` (the RECORD's entry, else the scheme's scripts folder)."""
    for f in dist.files or ():
        if f.name == name and Path(str(dist.locate_file(f))).is_file():
            return str(Path(str(dist.locate_file(f))).resolve())
    path = Path(sysconfig.get_path("scripts")) / name
    return str(path) if path.is_file() else None


def probe(root: Path, *, deps_later: bool = False) -> tuple[str | None, list[str]]:
    """(the ``compress`` script's path, the problems); no problems means every row can run.

    ``deps_later``: an import that fails only for want of a third-party module (yaml before the wheels step)
    does not count, since reinstalling the package would not bring it."""
    try:
        dist = md.distribution("compressor")
    except md.PackageNotFoundError:
        return None, ["the distribution 'compressor' is not installed in this Python"]
    problems = []
    declared = _pyproject(root)["project"]
    wanted = {("console_scripts", n) for n in declared.get("scripts", {})}
    wanted |= {(g, n) for g, eps in declared.get("entry-points", {}).items() for n in eps}
    have = {(ep.group, ep.name) for ep in dist.entry_points}
    if missing := sorted(wanted - have):
        problems.append("entry points missing from the installed metadata (a stale install): "
                        + ", ".join(f"{g}:{n}" for g, n in missing))
    if (changed := _changed_requirements(declared.get("dependencies", []), md.requires("compressor") or [])):
        problems.append(f"pyproject.toml's dependencies changed since the install ({', '.join(changed)})")
    for module, folder in (("compressor", "compressor"), ("compressor.recipes", "recipes"),
                           ("compressor.export", "export")):
        try:
            mod = importlib.import_module(module)
        except Exception as err:  # an ImportError, or a broken dependency inside it
            if deps_later and isinstance(err, ModuleNotFoundError) and not (err.name or "compressor").startswith(
                    "compressor"):
                continue
            problems.append(f"import {module} failed outside the repository: {type(err).__name__}: {err}")
            continue
        if not _inside(getattr(mod, "__file__", None), root / folder):
            problems.append(f"{module} comes from {mod.__file__}, not from {root / folder} (another copy installed)")
    script = console_script(dist, "compress")
    if script is None:
        problems.append("the console script 'compress' is not installed")
    return script, problems


def needs() -> list[str]:
    """The installed package's requirements (no extras), less the machine's own torch/torchvision, plus pytest
    (the check's test row); torchvision matching the machine's torch when it has none."""
    reqs = []
    for req in md.requires("compressor") or ():
        if re.search(r"\bextra\s*==", req):  # an optional extra's requirement
            continue
        name = re.match(r"[A-Za-z0-9_.-]+", req)
        if name is not None and name.group(0).lower() not in MACHINE_OWN:
            reqs.append(req.split(";")[0].strip())
    reqs.append("pytest")
    try:
        md.version("torchvision")
    except md.PackageNotFoundError:
        minor = int(md.version("torch").split(".")[1])
        reqs.append(f"torchvision==0.{minor + 15}.*")  # torchvision 0.N pairs with torch 2.(N-15) since 2.0
    return reqs


def missing() -> list[str]:
    """The names in :func:`needs` with no installed distribution at all (what the wheels folder must bring)."""
    out = []
    for req in needs():
        name = re.match(r"[A-Za-z0-9_.-]+", req).group(0)  # type: ignore[union-attr]  # needs() gives names
        try:
            md.distribution(name)
        except md.PackageNotFoundError:
            out.append(name)
    return out


def torch_in_range() -> str:
    """One line: the machine's torch and whether the package's declared range admits it (the check runs either way)."""
    try:
        from packaging.requirements import Requirement
    except ImportError:  # pytest brings packaging; pip vendors it too
        from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef]
    spec = next((Requirement(r) for r in md.requires("compressor") or () if re.match(r"torch\b(?!vision)", r)), None)
    have = md.version("torch")
    if spec is None:
        return f"torch {have}"
    if spec.specifier.contains(have.split("+")[0], prereleases=True):
        return f"torch {have} (supported: {spec.specifier})"
    return f"torch {have} is OUTSIDE the supported range {spec.specifier}: untested here"


def main(argv: list[str]) -> int:
    if argv[:1] == ["probe"] and len(argv) in (2, 3) and argv[2:] in ([], ["--deps-later"]):
        if not (Path(argv[1]) / "pyproject.toml").is_file():
            print(f"{argv[1]} is not a checkout of the package (no pyproject.toml)")
            return 1
        script, problems = probe(Path(argv[1]), deps_later=argv[2:] == ["--deps-later"])
        if problems:
            print("; ".join(problems))
            return 1
        print(script)
        return 0
    if argv == ["needs"]:
        print("\n".join(needs()))
        return 0
    if argv == ["missing"]:
        print(" ".join(missing()))
        return 0
    if argv == ["torch"]:
        print(torch_in_range())
        return 0
    print("usage: gpu_check_install.py probe ROOT [--deps-later] | needs | missing | torch", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
