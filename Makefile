# Two commands do all setup on a fresh machine:
#   make app        install (once, from the lock) and start the app on the bundled models: http://127.0.0.1:7860
#   make test       the fast tier: what a newcomer runs after a change (no builds, no apt, no training)
#   make test-all   everything: the real llama-server, the container, the graded bundled models, Chromium
# And for the dependencies:
#   make lock       re-resolve requirements*.txt into the hashed locks (after editing a requirements file)
#   make drift      the newest versions the requirements allow, in a scratch venv, against the fast tier
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCKS := requirements-torch.lock requirements.lock requirements-bundled.lock

.PHONY: app test test-all lint lock drift bench chromium llama-server container-tools

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

# Everything installs from the locks: exact versions, every transitive package, with hashes (--no-deps:
# the lock is the whole environment, so pip resolves nothing and a new release upstream changes nothing).
$(STAMP): $(LOCKS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --require-hashes --no-deps $(addprefix -r ,$(LOCKS))
	touch $@

# The lock: uv resolves (seconds, and it can resolve for another platform than the one it runs on);
# pip installs. For this project's Python (3.11) on x86-64 Linux (glibc 2.36, Debian 12).
# torch's CPU build: in /opt/wheels on this project's machines, else on PyTorch's CPU index.
TORCH_SOURCE ?= $(if $(wildcard /opt/wheels/torch-*),--find-links /opt/wheels,\
	--extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match)
UV_COMPILE = $(BIN)/uv pip compile -q --generate-hashes --python-version 3.11 \
	--python-platform x86_64-manylinux_2_36 --custom-compile-command "make lock" $(TORCH_SOURCE)
lock: $(STAMP)
	$(UV_COMPILE) --no-emit-package torch requirements-torch.txt requirements.txt requirements-dev.txt \
	  -o requirements.lock
	$(UV_COMPILE) --no-deps requirements-bundled.txt -o requirements-bundled.lock
	$(BIN)/python .ci/lock_torch.py requirements-torch.txt requirements-torch.lock

drift: $(STAMP)
	$(BIN)/python .ci/drift.py

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

# The tiers are pytest markers (pyproject.toml): every test is `fast` or `full` (or `gpu`, deselected
# here on purpose); tests/app/test_tiers.py fails if one is in neither or both.
test: $(STAMP)
	$(BIN)/python -m pytest -m fast $(PYTEST_ARGS)

test-all: $(STAMP) chromium llama-server container-tools
	$(BIN)/python -m pytest -m "not gpu" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python bench/chat_throughput.py
	HF_HUB_OFFLINE=1 $(BIN)/python bench/attention_views.py
	HF_HUB_OFFLINE=1 $(BIN)/python bench/latent_sampling.py
	HF_HUB_OFFLINE=1 $(BIN)/python bench/text_to_image.py
	HF_HUB_OFFLINE=1 $(BIN)/python bench/compute.py

# What tests/app/test_container.py needs: podman (+ buildah) to build and run the image, debootstrap for
# .ci/container-base.sh's local base image (CI here reaches no container registry). Root or sudo, like `chromium`.
container-tools:
	@{ command -v podman && command -v buildah && command -v debootstrap && command -v runc; } >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q \
	    podman buildah debootstrap runc; }
