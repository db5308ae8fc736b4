# `make demo` and `make test` create the virtual environment when it is missing, then run.
# torch is installed FIRST: on these machines torch==2.13.0 is a local CPU wheel, and installing trl
# without torch present would pull a multi-GB CUDA build.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev,example,trl,judge,data,server
# verl and OpenRLHF pin packages that cannot install here (transformers<5.11, flash-attn from source): install
# them without their pins, plus what their reward paths import (as docs/verl.md and docs/openrlhf.md describe).
FRAMEWORKS ?= verl==0.9.1 openrlhf==0.11.2
FRAMEWORK_DEPS ?= packaging ray tensordict omegaconf codetiming torchdata hydra-core orjson peft cachetools \
	uvicorn fastapi aiohttp pylatexenc
STAMP := $(VENV)/.alr-installed
export OMP_NUM_THREADS := 1
export MKL_NUM_THREADS := 1
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: venv test demo quickstart bench lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	$(PY) -m pip install --quiet --no-deps $(FRAMEWORKS)
	$(PY) -m pip install --quiet $(FRAMEWORK_DEPS)
	@$(PY) -c "import torch, transformers; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	@touch $@

test: $(STAMP)
	$(PY) -m pytest

# The quickstart table first (what the reward does to a handful of completions, under a second), then the
# full worked example (tiny random Qwen2.5-VL + SAM, GRPO through TRL, evaluation; about a minute on CPU).
demo: $(STAMP)
	$(PY) examples/quickstart.py
	$(PY) examples/pixelthink_grpo.py --tiny --output-dir runs/demo

quickstart: $(STAMP)
	$(PY) examples/quickstart.py

bench: $(STAMP)
	$(PY) benchmarks/length_rewards.py
	$(PY) benchmarks/rewards.py
	$(PY) benchmarks/uncertainty.py

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks examples
	$(PY) -m mypy

clean:
	rm -rf $(VENV) build dist .pytest_cache .hypothesis src/*.egg-info
