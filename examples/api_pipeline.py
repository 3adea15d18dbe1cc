"""The whole chain from Python: distill → eval → export → bench → report, with one function call.

    python examples/api_pipeline.py [OUT_DIR]

A tiny setting (synthetic images, ResNet-10t student at 32 px, a randomly initialised ResNet-18
teacher, 20 steps) so it finishes in about a minute on a laptop CPU; for a real run, point ``data`` at
a folder of images and ``teacher`` at a pretrained model (docs/quickstart.md). Run it twice: the
second call finds every stage current and skips it. CI runs this file (tests/pipeline/test_api_example.py).
"""

from __future__ import annotations

import json
import sys

from compressor.pipeline import run_pipeline
from compressor.report.collect import collect, headline

out = sys.argv[1] if len(sys.argv) > 1 else "runs/api-example"
config = {
    "student": "resnet10t",
    "teacher": "timm:resnet18",
    "teacher_weights": "random",  # offline: no pretrained weights; a real teacher would be a path here
    "teacher_image_size": 32,
    "recipe": "mvmr",
    "recipe_config": {"projector_dims": [128, 128]},
    "data": "synthetic",
    "image_size": 32,
    "batch_size": 16,
    "max_steps": 20,
    "out": out,
    "pipeline": {"export": ["onnx", "onnx-int8"], "bench_batches": [1], "bench_seconds": 0.5},
}
result = run_pipeline(config, quick=True, progress=False)
print("ran:", ", ".join(result.ran) or "nothing", "| skipped:", ", ".join(result.skipped) or "nothing")
print(headline(collect(result.run_dir)).text())
print("report:", result.report)
print(json.dumps({"ran": result.ran, "skipped": result.skipped, "report": str(result.report)}))
