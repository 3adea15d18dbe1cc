"""scripts/gpu-check.sh: the GPU check's every step at tiny sizes on CPU (so the script cannot rot), and the install
decision it takes first (scripts/gpu_check_install.py), which must see an installed package, not the checkout's folder.

The same dry run on the oldest supported torch, in a fresh venv with nothing but torch and the wheels folder, is
scripts/old-torch-smoke.sh (CI, after the suite): it needs PyPI and ~5 GB, so it is not a test here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
PROBE = ROOT / "scripts" / "gpu_check_install.py"


def _probe(python: str, root: Path, cwd: Path | str = "/") -> subprocess.CompletedProcess:
    return subprocess.run([python, str(PROBE), "probe", str(root)], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


@pytest.mark.slow
def test_cpu_dry_run_runs_every_step_from_another_directory_and_prints_the_table(tmp_path: Path) -> None:
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu-check.sh"), "--cpu-dry-run"], capture_output=True,
                          text=True, timeout=1500, cwd=tmp_path)
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-2000:]
    table = out[out.index("step "):]
    rows = {line.split("  ")[0]: line for line in table.splitlines()}
    install = rows["install: package, plug-ins, compress script"]
    assert "PASS" in install and "torch 2." in install and "supported" in install
    assert "PASS" in rows["CUDA tests (sync-free loop, fused optimiser, bf16)"] and "skipped" in table  # skip on CPU
    for mode in ("eager", "compile"):
        line = rows[f"throughput vit_tiny_patch16_224 -> resnet10t 32px fp32 ({mode})"]
        assert "PASS" in line and "speed-up" in line and "ceiling (T+S)/S" in line
    assert "PASS" in rows["compress export --format onnx"] and "model" in rows["compress export --format onnx"]
    assert "PASS" in rows["compress bench --backend ort-cpu"] and "p50" in rows["compress bench --backend ort-cpu"]
    # no TensorRT here: the CLI's own refusal, naming the package, and how to carry it
    trt = rows["compress export --format trt-fp16, bench --backend trt"]
    assert "SKIP" in trt and "TensorRT is not installed" in trt and "pip download" in trt and "tensorrt-cu" in trt
    assert "SKIP" in rows["engine cross-check (trtexec or polygraphy)"]
    ddp = rows["torchrun --nproc_per_node 2 compress distill (cpu, fp32)"]  # two gloo processes: DDP for real
    assert "PASS" in ddp and "joined the gloo process group" in ddp and "img/s" in ddp
    probe = rows["peers.py --probe (the peer tables' cost here)"]  # skips, naming ./gpu-data, without Fashion-MNIST
    assert ("PASS" in probe and "dogo" in probe and "min" in probe) or ("SKIP" in probe and "gpu-data" in probe)
    assert "FAIL" not in table


def test_a_folder_import_is_not_an_install(tmp_path: Path) -> None:
    """The check's old decision, `python -c "import compressor"` from the root, passes in a Python where nothing is
    installed; the probe does not, and says what is missing."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")], check=True, timeout=120)
    bare = str(tmp_path / "bare" / "bin" / "python")
    assert subprocess.run([bare, "-c", "import compressor"], cwd=ROOT, timeout=60).returncode == 0  # the old check
    proc = _probe(bare, ROOT, cwd=ROOT)
    assert proc.returncode == 1 and "'compressor' is not installed" in proc.stdout


def test_the_probe_accepts_this_install_and_refuses_another_checkout(tmp_path: Path) -> None:
    proc = _probe(sys.executable, ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert Path(proc.stdout.strip()).name == "compress" and Path(proc.stdout.strip()).is_file()
    # a second checkout whose pyproject declares another torch range: the installed package is not from it
    other = tmp_path / "checkout"
    other.mkdir()
    text = (ROOT / "pyproject.toml").read_text()
    torch_req = next(d for d in tomllib.loads(text)["project"]["dependencies"] if d.startswith("torch>"))
    (other / "pyproject.toml").write_text(text.replace(f'"{torch_req}"', '"torch>=2.0,<3"'))
    proc = _probe(sys.executable, other)
    assert proc.returncode == 1
    assert f"not from {other / 'recipes'}" in proc.stdout and "dependencies changed" in proc.stdout
    assert "torch<3,>=2.0" in proc.stdout


def test_needs_are_pyprojects_dependencies_less_the_machines_torch(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(PROBE), "needs"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=60, check=True)
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {line.split(">")[0].split("<")[0].split("=")[0].lower() for line in proc.stdout.split()}
    expected = {d.split(">")[0].split("<")[0].split("=")[0].lower() for d in declared} - {"torch", "torchvision"}
    assert names == expected | {"pytest"}


def test_the_scripts_resolve_their_paths_from_anywhere(tmp_path: Path) -> None:
    """--help from another directory (the scripts cd to the checkout themselves); a missing argument is one line."""
    for script, says in (("gpu-check.sh", "--cpu-dry-run"), ("fill-gpu-wheels.sh", "--python-version")):
        proc = subprocess.run(["bash", str(ROOT / "scripts" / script), "--help"], capture_output=True, text=True,
                              cwd=tmp_path, timeout=60)
        assert proc.returncode == 0 and says in proc.stdout, proc.stdout + proc.stderr
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "fill-gpu-wheels.sh")], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60)
    assert proc.returncode == 2 and "--python-version X.Y is required" in proc.stderr
