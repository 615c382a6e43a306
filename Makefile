# Build the book and run the checks; each target sets up what it needs (see README.md).
# paperlib is imported from the checkout through PYTHONPATH and deliberately NOT installed into
# .venv: tests/test_colab.py proves that a chapter's first cell installs it, as on Colab.

SHELL   := /bin/bash
.DEFAULT_GOAL := book

VENV    := .venv
BIN     := $(VENV)/bin
WITH_PAPERLIB := PYTHONPATH=$(CURDIR)
HTML    := _build/html
TIMEOUT := 900

.PHONY: book test proofs bench claims portability clean live-assets

$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -r requirements.txt
	touch $@

# Live cells (issue 17, _ext/live_cells.py): the build copies Pyodide and the SymPy and mpmath
# wheels into _build/html/_static/live/ from these two places, prepared here. Pyodide's version is
# pinned by package-lock.json (npm ci installs exactly that); the wheels' by requirements.txt.
# Nothing is fetched from a CDN, at build time or in the reader's browser.
LIVE_WHEELS := $(shell sed -nE 's/^(sympy|mpmath)==([^ ]+).*/\1-\2-py3-none-any.whl/p' requirements.txt)

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund

.cache/wheels/%.whl:
	$(BIN)/python -m pip download --disable-pip-version-check --no-deps --only-binary=:all: \
		-d .cache/wheels $$(echo $* | sed -E 's/^([^-]+)-([^-]+)-.*/\1==\2/')

live-assets: $(VENV)/.installed node_modules/.package-lock.json $(addprefix .cache/wheels/,$(LIVE_WHEELS))

# -W --keep-going reports every warning, then fails (without -W a notebook that fails still
# builds with exit code 0). The doctrees go first: an incremental build does not re-read
# unchanged pages, so it would not repeat their warnings and a second `make book` would pass.
book: $(VENV)/.installed live-assets
	rm -rf _build/.doctrees
	$(WITH_PAPERLIB) $(BIN)/jupyter-book build . -W --keep-going
	@echo "Book built. Open $(CURDIR)/$(HTML)/index.html"

# Two pytest runs at once, one per core, each mostly one thread: in the background the chapters
# under nbval plus the chapters' proof checks (output in $(NBVAL_LOG), printed after), in the
# foreground the rest of the suite. The split balances the two (about 5 and 8 minutes here); the
# target fails if either run fails.
NBVAL_LOG := .cache/nbval.log
BESIDE_NBVAL := tests/test_chapter_proofs.py
# JUnit reports for make bench (its per-notebook times): JUNIT_DIR=d writes d/suite.xml and d/nbval.xml.
junit = $(if $(JUNIT_DIR),--junitxml=$(JUNIT_DIR)/$(1).xml)
test: $(VENV)/.installed live-assets
	scripts/ensure-chromium.sh
	mkdir -p $(dir $(NBVAL_LOG))
	$(WITH_PAPERLIB) $(BIN)/pytest chapters $(BESIDE_NBVAL) --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg \
		-p no:cacheprovider --timeout=$(TIMEOUT) -ra --durations=10 $(call junit,nbval) > $(NBVAL_LOG) 2>&1 & \
	notebooks=$$!; trap 'kill $$notebooks 2>/dev/null' INT TERM; \
	$(WITH_PAPERLIB) $(BIN)/pytest tests --ignore=$(BESIDE_NBVAL) --timeout=$(TIMEOUT) -ra --durations=15 \
		$(call junit,suite); suite=$$?; \
	wait $$notebooks; nbval=$$?; \
	echo "==== the chapters under nbval and $(BESIDE_NBVAL) ($(NBVAL_LOG)), exit $$nbval"; \
	cat $(NBVAL_LOG); \
	test $$suite -eq 0 && test $$nbval -eq 0

# The derivation checks alone: the checker's own tests and every chapter's proof cells.
proofs: $(VENV)/.installed
	$(WITH_PAPERLIB) $(BIN)/pytest tests/test_proofs.py tests/test_chapter_proofs.py --timeout=$(TIMEOUT)

# Timings and throughput (bench/bench.py says what; writes bench/results.json; runs make test), then
# every asserted claim on seeds 0-2 with its margin (bench/claims.py; bench/claims.md).
bench: $(VENV)/.installed
	$(WITH_PAPERLIB) $(BIN)/python bench/bench.py $(BENCH_ARGS)
	$(WITH_PAPERLIB) $(BIN)/python bench/claims.py $(CLAIMS_ARGS)

# Another CPU, simulated: every chapter re-executed under other numerics (scripts/cpu_settings.py)
# and compared with its committed outputs by nbval. CI runs it after `make test`.
portability: $(VENV)/.installed
	$(BIN)/python scripts/portability.py $(PORTABILITY_ARGS)

# Every asserted claim on seeds 0-2, with its margin (bench/claims.py); part of `make bench`.
claims: $(VENV)/.installed
	$(WITH_PAPERLIB) $(BIN)/python bench/claims.py $(CLAIMS_ARGS)

clean:
	rm -rf _build
