# `make demo` and `make test` create the virtual environment when it is missing, then run.
# torch is installed FIRST: on these machines torch==2.13.0 is a local CPU wheel, and installing trl
# without torch present would pull a multi-GB CUDA build.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev,docs,example,trl,judge,data,server
# verl and OpenRLHF pin versions of transformers, ray and tensordict that exclude each other and the main venv's:
# each framework's adapter tests run in a venv of its own that honours its pins (docs/frameworks.md).
VERL_VENV ?= .venv-verl
OPENRLHF_VENV ?= .venv-openrlhf
OPENRLHF_SPEC ?= openrlhf==0.11.2
# OpenRLHF requirements that need CUDA to build or install; `pip check` may report only these as missing.
GPU_ONLY ?= flash-attn deepspeed
VERL_TESTS ?= $(wildcard tests/test_*verl*.py)
OPENRLHF_TESTS ?= $(wildcard tests/test_*openrlhf*.py)
STAMP := $(VENV)/.alr-installed
export OMP_NUM_THREADS := 1
export MKL_NUM_THREADS := 1
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: venv venvs test test-main test-verl test-openrlhf demo quickstart baselines docs bench bench-verl lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	@$(PY) -c "import torch, transformers; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	@touch $@

# The main suite, then each framework's tests in its own venv (they run there only: in the main venv, without the
# frameworks, they would skip).
test: test-main test-verl test-openrlhf

test-main: $(STAMP)
	$(PY) -m pytest $(addprefix --ignore=,$(VERL_TESTS) $(OPENRLHF_TESTS))

venvs: $(STAMP) $(VERL_VENV)/.alr-installed $(OPENRLHF_VENV)/.alr-installed

# docs/verl.md's install block as written (tests/frameworks/install.py: this checkout for the package, the local
# torch wheel for torch), plus the test tools.
$(VERL_VENV)/.alr-installed: pyproject.toml Makefile docs/verl.md tests/frameworks/install.py
	@test -x $(VERL_VENV)/bin/python || $(PYTHON) -m venv $(VERL_VENV)
	@echo '*' > $(VERL_VENV)/.gitignore
	$(VERL_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VERL_VENV)/bin/python tests/frameworks/install.py docs docs/verl.md --torch "$(TORCH_SPEC)" --extras dev
	$(VERL_VENV)/bin/python tests/frameworks/pip_check.py --output $(VERL_VENV)/pip-check.txt
	@touch $@

# OpenRLHF without its GPU-only requirements, everything else at OpenRLHF's pins.
$(OPENRLHF_VENV)/.alr-installed: pyproject.toml Makefile tests/frameworks/install.py
	@test -x $(OPENRLHF_VENV)/bin/python || $(PYTHON) -m venv $(OPENRLHF_VENV)
	@echo '*' > $(OPENRLHF_VENV)/.gitignore
	$(OPENRLHF_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(OPENRLHF_VENV)/bin/python tests/frameworks/install.py without "$(OPENRLHF_SPEC)" --gpu-only $(GPU_ONLY) \
		--torch "$(TORCH_SPEC)" --extras dev,server
	$(OPENRLHF_VENV)/bin/python tests/frameworks/pip_check.py --allow $(GPU_ONLY) --output $(OPENRLHF_VENV)/pip-check.txt
	@touch $@

test-verl: $(VERL_VENV)/.alr-installed
	$(VERL_VENV)/bin/python -m pytest -p no:cacheprovider $(VERL_TESTS)

test-openrlhf: $(OPENRLHF_VENV)/.alr-installed
	$(OPENRLHF_VENV)/bin/python -m pytest -p no:cacheprovider $(OPENRLHF_TESTS)

# The quickstart table first (what the reward does to a handful of completions, under a second), then the
# full worked example (tiny random Qwen2.5-VL: warm start, GRPO through TRL, evaluation with GrabCut; a few
# minutes on a 2-core CPU; runs/demo/report.md says which of the demo's targets were met).
demo: $(STAMP)
	$(PY) examples/quickstart.py
	$(PY) examples/pixelthink_grpo.py --tiny --output-dir runs/demo

quickstart: $(STAMP)
	$(PY) examples/quickstart.py

# PixelThink's baselines side by side (Seg-Zero, +Prompt, L1-Exact, L1-Max, PixelThink; each also with the
# inference-time thinking cap), tiny CPU mode: runs/baselines/{baselines.json,report.md,pareto.png}.
# On a GPU with local checkpoints: python examples/pixelthink_baselines.py -- --policy DIR --segmenter DIR
baselines: $(STAMP)
	$(PY) examples/pixelthink_baselines.py --tiny --output-dir runs/baselines

bench: $(STAMP)
	$(PY) benchmarks/length_rewards.py
	$(PY) benchmarks/rewards.py
	$(PY) benchmarks/uncertainty.py

# What the verl plugin costs `import verl` (in the verl venv, where the entry point is installed).
bench-verl: $(VERL_VENV)/.alr-installed
	$(VERL_VENV)/bin/python benchmarks/verl_import.py

# The docs site (mkdocs.yml), --strict: any warning (broken link or anchor, a docstring documenting a missing
# parameter, an unresolved cross-reference) fails the build. Output in site/ (git-ignored).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks examples docs
	$(PY) -m ruff format --check src tests benchmarks examples docs
	$(PY) -m mypy

clean:
	rm -rf $(VENV) $(VERL_VENV) $(OPENRLHF_VENV) build dist .pytest_cache .hypothesis src/*.egg-info
