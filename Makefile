# `make test` and `make demo` each work as the only command on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install data test test-fast lint demo clean

# constraints.txt holds the exact torch/torchvision that make and CI install; pyproject.toml takes ranges.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[all,dev,bench]'
	touch $(STAMP)

install: $(STAMP)

# Fashion-MNIST comes from $COMPRESS_DATA or the Debian package dataset-fashion-mnist (no download at run time);
# without either, `make test` skips the tests that need it and `make demo` stops with one line naming both ways.
data:
	@bash scripts/get-fashion-mnist.sh

# The type check runs mypy under the installed module names (compressor.recipes, compressor.export):
# see scripts/typecheck.py.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) scripts/typecheck.py

# OpenVINO's tests run in a process of their own: after the rest of the suite (torch's thread pools,
# gloo process groups) OpenVINO's runtime crashed the shared interpreter once (SIGSEGV); alone they pass.
# Two pytest-xdist workers (one thread each, tests/conftest.py), a test file per worker at a time (--dist loadfile:
# a file's session fixtures are built once); --durations prints the 25 slowest, the profile of the next speed-up.
test: $(STAMP) data
	$(VENV)/bin/ruff check .
	$(PY) scripts/typecheck.py
	$(PY) -m pytest -n 2 --dist loadfile --durations=25 --ignore=tests/export/test_openvino.py
	$(PY) -m pytest tests/export/test_openvino.py

# The fast tier: everything but the end-to-end tests marked slow (pytest.ini's `slow` marker), for the edit-test loop.
test-fast: $(STAMP) data
	$(PY) -m pytest -n 2 --dist loadfile -m "not slow" --ignore=tests/export/test_openvino.py

demo: $(STAMP)
	@bash scripts/get-fashion-mnist.sh --require
	$(VENV)/bin/compress demo --out runs/demo

clean:
	rm -rf $(VENV) runs .pytest_cache build/typecheck
