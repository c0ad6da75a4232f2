# Fresh machine: `make demo` or `make test` create .venv and install everything they need.
# torch==2.13.0 goes in first: a local CPU wheel satisfies it, while any looser spec would pull a
# multi-GB CUDA build from the registry.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PEERS_VENV := .venv-peers
PEERS_BIN := $(PEERS_VENV)/bin
PEERS_STAMP := $(PEERS_VENV)/.installed
DATA_DIR ?= ../shared/data

.PHONY: install demo browser test test-fast lint format stsb bench bench-peers clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,ray]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/sbert-siamese demo

# Headless Chromium + chromedriver (Debian packages) for tests/archive/test_page.py, which skips without
# them. Installed with apt-get when missing: directly as root, else through sudo where there is one.
browser:
	@{ [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } || { \
		if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; \
		else echo "chromedriver missing and not root: the browser test will skip"; exit 0; fi; \
		$$SUDO apt-get update && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y --no-install-recommends chromium chromium-driver; \
	}

# The whole suite: fast tests plus the `slow` real-data checks, which skip cleanly when
# $(DATA_DIR) is absent.
test: $(STAMP) browser
	SBERT_SIAMESE_DATA_DIR=$(DATA_DIR) $(BIN)/python -m pytest -q

# The edit-test loop: no real data, no multi-process or resume runs (`long`).
test-fast: $(STAMP) browser
	$(BIN)/python -m pytest -q -m "not slow and not long"

lint: $(STAMP)
	$(BIN)/ruff check sbert_siamese tests recipes benchmarks
	$(BIN)/ruff format --check sbert_siamese tests recipes benchmarks

format: $(STAMP)
	$(BIN)/ruff format sbert_siamese tests recipes benchmarks
	$(BIN)/ruff check --fix sbert_siamese tests recipes benchmarks

# The STS-B quality-bar run on the real data (about 5 minutes on 2 cores).
stsb: $(STAMP)
	$(BIN)/sbert-siamese train recipes/stsb_cosine.yaml --data-dir $(DATA_DIR)/stsbenchmark \
		--output-dir runs/stsb_cosine --overwrite

# Side-by-side benchmarks against sentence-transformers (numbers in benchmarks/README.md).
bench: $(STAMP) bench-peers
	$(BIN)/python benchmarks/bench_encode.py --data-dir $(DATA_DIR)
	$(BIN)/python benchmarks/bench_train.py --data-dir $(DATA_DIR)
	$(BIN)/python benchmarks/bench_dedup.py --data-dir $(DATA_DIR)
	$(BIN)/python benchmarks/bench_serve.py --data-dir $(DATA_DIR)
	$(BIN)/python benchmarks/bench_scale.py --data-dir $(DATA_DIR)

# sentence-transformers' ONNX / OpenVINO backends for benchmarks/st_peers.py, in their own venv: their extras
# pin transformers < 4.58, the project runs on transformers 5 (pins and reasons in
# benchmarks/peers-requirements.txt). torch==2.13.0 first, as above.
$(PEERS_STAMP): benchmarks/peers-requirements.txt
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_BIN)/pip install --quiet --upgrade pip
	$(PEERS_BIN)/pip install --quiet torch==2.13.0
	$(PEERS_BIN)/pip install --quiet -r benchmarks/peers-requirements.txt
	$(PEERS_BIN)/pip check
	touch $(PEERS_STAMP)

bench-peers: $(PEERS_STAMP)

clean:
	rm -rf $(VENV) .venv-peers runs .pytest_cache
