"""The export backend registry (export/backend.py): the built-in backends own every format, suffix and bench
runtime, and a backend from another package is one file plus one entry-point line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from compressor.export.backend import backend_for_file, backend_for_runtime, bench_runtimes, formats
from compressor.export.options import BACKENDS, ExportOptions
from tests.export.conftest import make_run

PLUGIN = Path(__file__).parent / "plugin_backend" / "torchscript_backend.py"


def test_the_builtin_backends_own_every_format_and_runtime() -> None:
    table = formats()
    assert set(table) == {"onnx", "onnx-fp16", "onnx-int8", "openvino", "openvino-int8", "trt-fp16", "trt-int8"}
    assert {f.name for f, _ in table.values() if f.qad} == {"onnx-int8", "openvino-int8", "trt-int8"}
    assert set(bench_runtimes()) == set(BACKENDS)  # the CLI's light list matches the registry
    for fmt in [*table, "timm"]:  # the --format help names every format
        assert fmt in ExportOptions.__dataclass_fields__["format"].metadata["help"], fmt
    assert backend_for_file(Path("m.engine")) is backend_for_runtime("trt")
    assert backend_for_file(Path("m.xml")) is backend_for_runtime("openvino")
    assert backend_for_file(Path("m.pt")) is None


def test_a_plugin_backend_is_one_file_and_one_entry_point_line(tmp_path: Path) -> None:
    """A package that is only the backend module and a dist-info whose entry_points.txt names it: the
    registry finds it, `compress export` writes its format and `compress bench` runs it."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "torchscript_backend.py").write_text(PLUGIN.read_text())
    info = site / "compressor_torchscript-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: compressor-torchscript\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[compressor.export_backends]\ntorchscript = torchscript_backend\n")
    run = make_run(tmp_path, arch="resnet10t", image_size=32)
    code = (
        "import json, sys\n"
        "from compressor.cli.main import main\n"
        "from compressor.export.backend import formats\n"
        "assert 'torchscript' in formats()\n"
        f"for argv in (['export', {str(run)!r}, '--format', 'torchscript', '--check-size', '8'],\n"
        f"             ['bench', {str(run)!r}, '--backend', 'torch,torchscript', '--batch', '1', '--iters', '3',\n"
        f"              '--json', {str(tmp_path / 'bench.json')!r}]):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as e:\n"
        "        assert not e.code, e.code\n"
    )
    env = {**__import__("os").environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    entry = manifest["exports"]["model.ts"]
    assert entry["format"] == "torchscript" and entry["fidelity"]["mean_cosine"] > 0.9999
    rows = json.loads((tmp_path / "bench.json").read_text())["results"]
    ts = [r for r in rows if r["backend"] == "torchscript"]
    assert ts and ts[0]["cosine_vs_torch"] > 0.9999
    # and without the plug-in on the path, the format is unknown again: nothing in compressor names it
    plain = subprocess.run([sys.executable, "-c", "from compressor.export.backend import formats;"
                                                  "print('torchscript' in formats())"],
                           capture_output=True, text=True, timeout=300)
    assert plain.stdout.strip() == "False"
