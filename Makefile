# Two commands do all set-up on a fresh machine:  `make demo`  and  `make test`.
# The virtual environment lives in $(VENV) (override with LWSL_VENV=/path to reuse one across runs).
SHELL := /bin/bash
PYTHON_BOOT ?= python3.11
VENV ?= $(if $(LWSL_VENV),$(LWSL_VENV),$(CURDIR)/.venv)
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.lwsl-env-ok
PYTEST_ARGS ?=

.PHONY: env demo test test-fast system-deps clean-env help gpu-check mutation

help:
	@echo "make demo   - create the environment if missing, then run the end-to-end demo"
	@echo "make test   - create the environment if missing, then run the default test suite"
	@echo "make env    - only create/refresh the environment ($(VENV))"

env: $(STAMP)

# Order matters: torch first (pinned: a newer one is a multi-GB download), then the pinned lock,
# then DeepSpeed built against that torch without build isolation, with the CPU shared-memory comm
# op precompiled (saves 36-86 s of JIT compile on the first init_distributed of every fresh machine).
$(STAMP): pyproject.toml requirements/lock.txt
	@echo "==> creating environment in $(VENV)"
	test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check pip==24.3.1 setuptools==84.2.1 wheel==0.48.0
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q -r requirements/lock.txt
	DS_BUILD_SHM_COMM=1 $(PIP) install -q --no-build-isolation --no-cache-dir deepspeed==0.19.8
	$(PIP) install -q --no-deps --no-build-isolation -e .
	$(PY) -c "import torch, deepspeed, nvidia.dali, fvcore, yaml, scipy; print('environment ok: torch', torch.__version__, 'deepspeed', deepspeed.__version__)"
	touch $(STAMP)

# Debian packages some tests need (real Slurm, headless Chromium). Needs root; tests that need a
# package that could not be installed are skipped with the reason.
system-deps:
	@bash scripts/system_deps.sh || echo "warning: some system packages could not be installed (see above)"

demo: env
	$(PY) -m lwsl_ds.demo $(DEMO_ARGS)

test: env system-deps
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: env
	$(PY) -m pytest -m "not slow and not slurm" $(PYTEST_ARGS)

# GPU acceptance check (docs/gpu_check.md): report in runs/gpu-check/. With CUDA it measures (about 8 min);
# without, it is the CPU rehearsal (GPU items skipped with the reason). Uses $(PY) when the venv exists, else
# a python3 that has torch (the lent GPU machine's), else builds the venv first.
gpu-check:
	@if [ -x "$(PY)" ]; then py="$(PY)"; elif python3 -c "import torch" 2>/dev/null; then py=python3; \
	else $(MAKE) env && py="$(PY)"; fi; $$py -m lwsl_ds.gpucheck $(GPU_CHECK_ARGS)

# Mutation testing, not part of `make test`: mutmut (pinned in requirements/mutation.txt; configured in
# setup.cfg) mutates the layer-wise step (MUTANTS: mutant-name patterns, i.e. functions; docs/testing.md
# lists a wider set) and runs the fast reference-backend tests covering each mutant; prints the kill rate
# and every survivor. Duration and results: docs/testing.md.
MUTATION_JOBS ?= 2
MUTANTS ?= 'lwsl_ds.strategies.base.x_step_rng__mutmut_*' \
	'lwsl_ds.strategies.layerwise.*LayerwiseStrategy*train_layer__mutmut_*' \
	'lwsl_ds.strategies.greedy.*Greedy*choice_loss__mutmut_*' \
	'lwsl_ds.strategies.non_greedy.*NonGreedy*choice_loss__mutmut_*' \
	'lwsl_ds.strategies.non_greedy.*NonGreedy*rng_draws__mutmut_*'

mutation: env
	$(PIP) install -q --disable-pip-version-check -r requirements/mutation.txt
	rm -rf mutants
	$(VENV)/bin/mutmut run --max-children $(MUTATION_JOBS) $(MUTANTS) > mutants.log 2>&1 || (tail -c 3000 mutants.log; exit 1)
	$(PY) tests/oracle/mutation_report.py $(MUTANTS)

clean-env:
	rm -rf $(VENV)
