# Front door: `make run` builds and runs the demo server, `make test` builds and passes the
# tests (AddressSanitizer+UBSan, once per event backend). Both install missing Debian packages
# when run as root.
JOBS ?= $(shell nproc)
BUILD ?= build
TEST_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_TIME ?= 30

.PHONY: all deps test-deps build run test test-fast fuzz bench clean format

all: build

deps:
	@scripts/deps.sh

test-deps:
	@scripts/deps.sh --test
	@test -d tests/integration/node_modules/ws -a -d tests/integration/node_modules/puppeteer-core || npm ci --prefix tests/integration --no-audit --no-fund --silent

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

run: build
	$(BUILD)/srv start -c examples/demo.toml

test: test-deps
	@cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSRV_ASAN=ON >/dev/null
	@cmake --build $(TEST_BUILD) -j$(JOBS)
	@echo "== ctest, io_uring backend =="
	SRV_REACTOR_BACKEND=io_uring ctest --test-dir $(TEST_BUILD) --output-on-failure -j2 --timeout 600
	@echo "== ctest, epoll backend =="
	SRV_REACTOR_BACKEND=epoll ctest --test-dir $(TEST_BUILD) --output-on-failure -j2 --timeout 600
	@$(MAKE) --no-print-directory fuzz

# Every libFuzzer harness of tests/fuzz for FUZZ_TIME seconds each (clang, ASan+UBSan), over a
# copy of its corpus (the committed seeds stay as they are); fails on the first crash found,
# leaving the input in $(FUZZ_BUILD)/fuzz-run/<name>/crash-*.
fuzz: test-deps
	@CC=clang CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DSRV_FUZZ=ON -DSRV_ASAN=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j$(JOBS) --target srv_fuzzers
	@for src in tests/fuzz/fuzz_*.c; do \
		name=$$(basename $$src .c); what=$${name#fuzz_}; run=$(FUZZ_BUILD)/fuzz-run/$$what; \
		rm -rf $$run && mkdir -p $$run/corpus && cp -r tests/fuzz/corpus/$$what/. $$run/corpus/; \
		echo "== $$name, $(FUZZ_TIME) s"; \
		$(FUZZ_BUILD)/tests/fuzz/$$name -max_total_time=$(FUZZ_TIME) -timeout=25 -rss_limit_mb=2048 \
			-artifact_prefix=$$run/ -print_final_stats=1 $$run/corpus >$$run/log 2>&1; \
		rc=$$?; grep -E '^#[0-9]+[[:space:]]+DONE|number_of_executed_units' $$run/log; \
		if [ $$rc -ne 0 ]; then tail -40 $$run/log; echo "$$name: crash, see $$run" >&2; exit 1; fi; \
	done

# A quicker loop while developing: no sanitizers, default backend.
test-fast: test-deps build
	ctest --test-dir $(BUILD) --output-on-failure -j2

bench: build
	bench/http.sh $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h' '*.cc')

clean:
	rm -rf $(BUILD) $(TEST_BUILD)
