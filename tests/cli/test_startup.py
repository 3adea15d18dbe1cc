"""The CLI starts without torch, ONNX or the runtimes, and the export package's lazy names stay right."""

import subprocess
import sys


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_cli_import_loads_no_heavy_library() -> None:
    # every command's defaults are read at import (ExportOptions, BenchOptions): that must stay cheap
    out = _run("import sys, compressor.cli.main; print(sorted(m for m in ('torch', 'onnx', 'onnxruntime', "
               "'openvino', 'timm') if m in sys.modules))")
    assert out == "[]"


def test_package_names_are_the_functions_whichever_module_loads_first() -> None:
    # a submodule imported before the package attribute is read must not shadow the function
    out = _run("import compressor.export.bencher, compressor.export.exporter\n"
               "from compressor.export import bench, export_run, BenchOptions, FORMATS\n"
               "import types; print([isinstance(x, types.ModuleType) for x in (bench, export_run, BenchOptions)], "
               "callable(bench), 'onnx' in FORMATS)")
    assert out == "[False, False, False] True True"
