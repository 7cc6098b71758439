# Two commands do all setup on a fresh machine:
#   make app    install (once) and start the app on the bundled models: http://127.0.0.1:7860
#   make test   install (once, Chromium too) and run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: app test lint bench chromium llama-server container-tools

# llama.cpp's server, built once from a pinned source and cached for every clone on this machine.
# PyPI ships llama.cpp only as source (inside llama-cpp-python's sdist). The build is portable:
# GGML_NATIVE=ON crashed with "Illegal instruction" on these VMs (the CPU advertises AMX the VM
# can't run), so the flags name the AVX2 level that every x86-64 CI machine here has.
LLAMA_CPP_PYTHON := 0.3.36
LLAMA_SHA256 := 832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
LLAMA_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/genai-playground/llama.cpp-$(LLAMA_CPP_PYTHON)
LLAMA_SERVER := $(LLAMA_CACHE)/llama-server
LLAMA_FLAGS := -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF \
	-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
	-DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_TESTS=OFF \
	-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON

$(STAMP): requirements.txt requirements-torch.txt requirements-bundled.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-torch.txt -r requirements.txt -r requirements-dev.txt
	$(BIN)/python -m pip install -q --no-deps -r requirements-bundled.txt
	touch $@

chromium:
	@command -v /usr/bin/chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium; }

LLAMA_SDIST := $(LLAMA_CACHE).src/llama_cpp_python-$(LLAMA_CPP_PYTHON).tar.gz
$(LLAMA_SDIST):
	mkdir -p $(dir $@)
	$(PYTHON) -m pip download -q --no-deps --no-binary :all: -d $(dir $@) \
	  llama-cpp-python==$(LLAMA_CPP_PYTHON)
	echo "$(LLAMA_SHA256)  $@" | sha256sum -c -

$(LLAMA_SERVER): $(LLAMA_SDIST)
	rm -rf $(LLAMA_CACHE).build && mkdir -p $(LLAMA_CACHE).build
	tar xzf $< -C $(LLAMA_CACHE).build
	cmake -S $(LLAMA_CACHE).build/llama_cpp_python-$(LLAMA_CPP_PYTHON)/vendor/llama.cpp \
	  -B $(LLAMA_CACHE).build/out $(LLAMA_FLAGS)
	cmake --build $(LLAMA_CACHE).build/out --target llama-server -j$$(nproc)
	mkdir -p $(LLAMA_CACHE) && cp $(LLAMA_CACHE).build/out/bin/llama-server $@.tmp && mv $@.tmp $@
	rm -rf $(LLAMA_CACHE).build

llama-server: $(LLAMA_SERVER)

app: $(STAMP)
	$(BIN)/python app.py $(ARGS)

test: $(STAMP) chromium llama-server container-tools
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python bench/chat_throughput.py
	HF_HUB_OFFLINE=1 $(BIN)/python bench/attention_views.py
	HF_HUB_OFFLINE=1 $(BIN)/python bench/latent_sampling.py
	HF_HUB_OFFLINE=1 $(BIN)/python bench/text_to_image.py
	HF_HUB_OFFLINE=1 $(BIN)/python bench/compute.py

# What tests/test_container.py needs: podman (+ buildah) to build and run the image, debootstrap for
# .ci/container-base.sh's local base image (CI here reaches no container registry). Root or sudo, like `chromium`.
container-tools:
	@{ command -v podman && command -v buildah && command -v debootstrap && command -v runc; } >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q \
	    podman buildah debootstrap runc; }
