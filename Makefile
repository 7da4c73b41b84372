# Two commands on a fresh machine: `make run` (the platform) and `make test` (every test).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench lock venv clean

run: $(STAMP)
	$(PY) -m controlplane.launcher run

test: $(STAMP)
	$(PY) -m controlplane.launcher test $(ARGS)

bench: $(STAMP)
	$(PY) -m controlplane.launcher bench $(ARGS)

venv: $(STAMP)

$(STAMP): requirements/dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements/dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Regenerate the pinned, hashed lock files after editing requirements/*.in.
lock:
	$(PYTHON) -m venv /tmp/plinth-piptools && /tmp/plinth-piptools/bin/pip install --quiet pip-tools
	cd requirements && /tmp/plinth-piptools/bin/pip-compile --quiet --allow-unsafe --generate-hashes --no-emit-find-links --no-emit-index-url --strip-extras -o base.txt base.in
	cd requirements && /tmp/plinth-piptools/bin/pip-compile --quiet --allow-unsafe --generate-hashes --no-emit-find-links --no-emit-index-url --strip-extras -o dev.txt dev.in

clean:
	rm -rf $(VENV) .pytest_cache
