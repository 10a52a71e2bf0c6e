# Two commands set up a fresh machine and run everything:  make demo  and  make test.
# The install is locked: requirements.lock holds the exact version and sha256 hashes of every package except the
# torch build (see `make install` below); `make lock` refreshes it (README, Development).
# TORCH_SPEC and TORCHVISION_SPEC pick the torch build (the two versions must match), installed after the lock
# from TORCH_INDEX (PyPI when empty: a CPU build here). On a GPU machine e.g.
#   make demo TORCH_INDEX=<the CUDA wheel index of your site or of PyTorch>
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCHVISION_SPEC ?= torchvision==0.28.0
TORCH_INDEX ?=
CORES ?= 2
# The lock tool, in its own environment (only `make lock` needs it).
UV_SPEC ?= uv==0.13.9
LOCK_VENV ?= .venv-lock

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock

.PHONY: install demo report test lint clean lock

# 1. pip itself at the lock's version and hash; 2. every locked package, the exact files by hash and no resolver
#    (--no-deps: nothing can pull another torch), sdists built with the lock's setuptools and wheel;
# 3. the torch build from TORCH_INDEX, with everything already installed held at the lock (-c), so that only
#    torch, torchvision and a GPU build's CUDA packages come in; 4. the project; 5. the environment must be
#    exactly the lock plus the torch build (what an older lock left is removed), and consistent (pip check).
$(STAMP): pyproject.toml Makefile $(LOCK) tools/check_venv.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	awk '/^[^ #]/ { p = /^pip==/ } p && !/^ *#/' $(LOCK) > $(VENV)/pip.lock
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(VENV)/pip.lock
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps --build-constraint $(LOCK) -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-require-hashes -c $(LOCK) "$(TORCH_SPEC)" "$(TORCHVISION_SPEC)" \
	    $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python tools/check_venv.py $(LOCK) --remove-extra
	$(BIN)/python -m pip check
	touch $@

install: $(STAMP)

# Refresh requirements.lock from pyproject.toml (dependencies and the test extra) and requirements-build.in, for
# Python >= 3.11 on every platform, with the hashes of all files of each version: `make lock` keeps the pinned
# versions that still fit, `make lock UPGRADE=1` takes the newest. Resolved against the torch of TORCH_SPEC and
# TORCHVISION_SPEC (plain versions), whose build (torch, torchvision and their CUDA packages) is left out.
$(LOCK_VENV)/bin/uv:
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet "$(UV_SPEC)"

UV_COMPILE = $(LOCK_VENV)/bin/uv pip compile pyproject.toml requirements-build.in --extra test --universal \
    --python-version 3.11 --generate-hashes -c $(LOCK_VENV)/torch.txt $(if $(UPGRADE),--upgrade) \
    --custom-compile-command "make lock" --quiet

lock: $(LOCK_VENV)/bin/uv
	printf '%s\n' "$(TORCH_SPEC)" "$(TORCHVISION_SPEC)" > $(LOCK_VENV)/torch.txt
	cp $(LOCK) $(LOCK_VENV)/all.txt 2>/dev/null || true
	$(UV_COMPILE) -o $(LOCK_VENV)/all.txt
	$(UV_COMPILE) -o $(LOCK) $$(grep -oE '^(torch|torchvision|triton|nvidia-[a-z0-9-]+|cuda-[a-z0-9-]+)==' \
	    $(LOCK_VENV)/all.txt | sed 's/==$$//; s/^/--no-emit-package /')

demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) all
	$(BIN)/snakemake --report results/report.html

test: $(STAMP)
	$(BIN)/python -m pytest -ra

lint: $(STAMP)
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile workflow/rules

clean:
	rm -rf results .snakemake
