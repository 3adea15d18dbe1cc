"""The files the pipeline adds to a run directory and the report reads (spelled here only).

``eval.json``          kNN (and linear-probe) top-1 of the student; ``teacher``: the teacher's, same split;
                       ``quality``: an optional ``{label: kNN top-1}`` table of comparable models.
``bench.json``         ``compress bench`` of the student and its exports (:class:`BenchReport` as JSON).
``bench-teacher.json`` the same for the teacher (PyTorch, and its exports when the teacher is a run).
``pipeline.json``      per stage, the hash of its configuration and inputs (``compress run``).
``report.md``, ``report.html`` and ``report/*.png`` the report.
"""

from __future__ import annotations

EVAL_JSON = "eval.json"
BENCH_JSON = "bench.json"
TEACHER_BENCH_JSON = "bench-teacher.json"
PIPELINE_JSON = "pipeline.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
REPORT_ASSETS = "report"
