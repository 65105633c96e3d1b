# amorph — the two commands:
#   make demo   install what is missing, build, run the demo
#   make test   install what is missing, build, run every test
#               (normal build, then again under ASan+UBSan)
# Other targets: build, bench, format, format-check, clean.

BUILD     ?= build
BUILD_SAN ?= build-san
JOBS      ?= $(shell nproc 2>/dev/null || echo 2)
# Debian packages the build needs: toolchain, CMake, pkg-config, OpenBLAS,
# cJSON (safetensors headers, configs), PCRE2 and utf8proc (tokenizer).
DEB_PKGS  := build-essential cmake pkg-config libopenblas-dev libcjson-dev \
             libpcre2-dev libutf8proc-dev

.PHONY: all deps build demo test test-normal test-san bench format format-check clean

all: build

deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "missing packages; run: sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

demo: build
	./$(BUILD)/examples/00-readme
	./$(BUILD)/examples/02-shapeless-compile

test-normal: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-san: deps
	cmake -S . -B $(BUILD_SAN) -DCMAKE_BUILD_TYPE=Debug -DAM_SANITIZE=ON -DAM_BUILD_BENCH=OFF
	cmake --build $(BUILD_SAN) -j $(JOBS)
	cd $(BUILD_SAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 AM_TEST_QUICK=1 \
	  ctest --output-on-failure -j $(JOBS)

test: test-normal test-san

bench: build
	@for b in $(BUILD)/bench/bench_*; do echo "== $$b"; $$b || exit 1; done

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(BUILD_SAN)
