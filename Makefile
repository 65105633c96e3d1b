# amorph — the two commands:
#   make demo   install what is missing, build, generate Shakespeare with
#               the bundled demo model
#   make test   install what is missing, build, run every test
#               (normal build, then again under ASan+UBSan)
# Other targets: build, bench, fuzz, format, format-check, clean.

BUILD     ?= build
BUILD_SAN ?= build-san
BUILD_FUZZ ?= build-fuzz
FUZZ_SECONDS ?= 30
JOBS      ?= $(shell nproc 2>/dev/null || echo 2)
# Debian packages the build needs: toolchain, CMake, pkg-config, OpenBLAS,
# cJSON (safetensors headers, configs), PCRE2 and utf8proc (tokenizer).
DEB_PKGS  := build-essential cmake pkg-config libopenblas-dev libcjson-dev \
             libpcre2-dev libutf8proc-dev

.PHONY: all deps build demo test test-normal test-san bench fuzz format format-check clean

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

# The bundled demo: a 4.75M-parameter qwen3_next model (4-bit, MLX layout)
# trained on Tiny Shakespeare (scripts/train_demo.py), generated with the
# whole decode step compiled once; ends with speed and compile statistics.
DEMO_PROMPT ?= ROMEO:
demo: build
	./$(BUILD)/tools/amorph inspect --model models/demo
	./$(BUILD)/tools/amorph generate --model models/demo --prompt "$(DEMO_PROMPT)" \
	  --max-tokens 200 --temperature 0.8 --top-k 40 --repetition-penalty 1.1 \
	  --seed 7 --stats

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

# libFuzzer targets (clang): each runs FUZZ_SECONDS from the committed
# fixtures as seeds; a crash, leak or sanitizer report fails the target.
fuzz: deps
	CC=clang cmake -S . -B $(BUILD_FUZZ) -DCMAKE_BUILD_TYPE=Debug -DAM_FUZZ=ON \
	  -DAM_BUILD_TESTS=OFF -DAM_BUILD_BENCH=OFF
	cmake --build $(BUILD_FUZZ) -j $(JOBS) --target fuzz_safetensors fuzz_config fuzz_tokenizer
	mkdir -p $(BUILD_FUZZ)/corpus_st $(BUILD_FUZZ)/corpus_cfg $(BUILD_FUZZ)/corpus_tok
	printf '\001To be, or not to be: caf\303\251 \344\275\240\345\245\275 42!' > $(BUILD_FUZZ)/corpus_tok/text
	(printf '\000'; cat tests/data/tokenizer/tiny.json) > $(BUILD_FUZZ)/corpus_tok/json
	cp tests/data/*.safetensors tests/data/sharded/*.safetensors $(BUILD_FUZZ)/corpus_st/
	cp tests/data/config/*.json $(BUILD_FUZZ)/corpus_cfg/
	ASAN_OPTIONS=detect_leaks=1 ./$(BUILD_FUZZ)/fuzz_safetensors \
	  -max_total_time=$(FUZZ_SECONDS) -max_len=65536 $(BUILD_FUZZ)/corpus_st
	ASAN_OPTIONS=detect_leaks=1 ./$(BUILD_FUZZ)/fuzz_config \
	  -max_total_time=$(FUZZ_SECONDS) -max_len=65536 $(BUILD_FUZZ)/corpus_cfg
	ASAN_OPTIONS=detect_leaks=1 ./$(BUILD_FUZZ)/fuzz_tokenizer \
	  -max_total_time=$(FUZZ_SECONDS) -max_len=65536 $(BUILD_FUZZ)/corpus_tok

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(BUILD_SAN) $(BUILD_FUZZ)
