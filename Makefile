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

.PHONY: book test proofs bench claims portability clean

$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -r requirements.txt
	touch $@

# -W --keep-going reports every warning, then fails (without -W a notebook that fails still
# builds with exit code 0). The doctrees go first: an incremental build does not re-read
# unchanged pages, so it would not repeat their warnings and a second `make book` would pass.
book: $(VENV)/.installed
	rm -rf _build/.doctrees
	$(WITH_PAPERLIB) $(BIN)/jupyter-book build . -W --keep-going
	@echo "Book built. Open $(CURDIR)/$(HTML)/index.html"

test: $(VENV)/.installed
	scripts/ensure-chromium.sh
	$(WITH_PAPERLIB) $(BIN)/pytest tests chapters --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg \
		--timeout=$(TIMEOUT) -ra

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
