# Two commands set up a fresh machine and run everything:  make demo  and  make test.
# TORCH_SPEC picks the torch build installed before everything else (and pinned for the rest, so that
# nnunetv2 -> timm -> torchvision cannot swap it). CPU here; on a GPU machine e.g.
#   make demo TORCH_SPEC=torch==2.13.0 TORCH_INDEX=<the CUDA wheel index of your site or of PyTorch>
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
CORES ?= 2

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo report test lint clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -c "import torch; print('torch', torch.__version__)" | sed 's/^torch /torch==/' > $(VENV)/torch-constraint.txt
	$(BIN)/python -m pip install --quiet -c $(VENV)/torch-constraint.txt -e ".[test]"
	touch $@

install: $(STAMP)

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
