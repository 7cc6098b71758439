# Two commands do all setup on a fresh machine:
#   make app    install (once) and start the app on the bundled models: http://127.0.0.1:7860
#   make test   install (once, Chromium too) and run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: app test lint bench chromium

$(STAMP): requirements.txt requirements-bundled.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt -r requirements-dev.txt
	$(BIN)/python -m pip install -q --no-deps -r requirements-bundled.txt
	touch $@

chromium:
	@command -v /usr/bin/chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium; }

app: $(STAMP)
	$(BIN)/python app.py $(ARGS)

test: $(STAMP) chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python bench/chat_throughput.py
	HF_HUB_OFFLINE=1 $(BIN)/python bench/attention_views.py
	HF_HUB_OFFLINE=1 $(BIN)/python bench/latent_sampling.py
	HF_HUB_OFFLINE=1 $(BIN)/python bench/text_to_image.py
	HF_HUB_OFFLINE=1 $(BIN)/python bench/compute.py
