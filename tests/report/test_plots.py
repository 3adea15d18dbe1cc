"""The report's latency-vs-accuracy plot: every point labelled, no label over another."""

from itertools import combinations

from matplotlib.text import Text

from compressor.report.collect import DeployRow
from compressor.report.plots import latency_accuracy_figure, latency_vs_accuracy


def _row(model: str, fmt: str, backend: str, p50: float, knn: float) -> DeployRow:
    return DeployRow(model=model, backend=backend, format=fmt, precision="fp32", batch=1, size_mb=1.0,
                     params_m=1.0, p50_ms=p50, p99_ms=p50, img_s=1000 / p50, cosine=1.0, knn_delta=0.0, knn=knn)


def test_labels_of_formats_with_one_accuracy_do_not_overlap() -> None:
    # the student's formats share its kNN and sit within a few percent of each other on the latency axis
    formats = [("pytorch", "torch", 1.00), ("onnx", "ort-cpu", 1.03), ("onnx-fp16", "ort-cpu", 1.06),
               ("onnx-int8", "ort-cpu", 0.98), ("openvino", "openvino", 1.01)]
    rows = [_row("student", f, b, p, 0.80) for f, b, p in formats]
    rows.append(_row("teacher", "pytorch", "torch", 6.0, 0.89))
    fig = latency_accuracy_figure(rows)
    fig.tight_layout()  # as when the PNG is written
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    for t in ax.texts:
        t.update_positions(renderer)
    boxes = [(t.get_text(), Text.get_window_extent(t, renderer)) for t in ax.texts]  # the text, not its leader
    assert sorted(text for text, _ in boxes) == sorted(f"{r.format} ({r.backend})" for r in rows)
    assert not [(a, b) for (a, ba), (b, bb) in combinations(boxes, 2) if ba.overlaps(bb)]
    assert latency_vs_accuracy(rows)[:8] == b"\x89PNG\r\n\x1a\n"
    assert latency_vs_accuracy([]) is None
