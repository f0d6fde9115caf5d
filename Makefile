# Front door: `make run` builds and runs the demo server, `make test` builds and passes the
# tests (AddressSanitizer+UBSan, once per event backend). Both install missing Debian packages
# when run as root.
JOBS ?= $(shell nproc)
BUILD ?= build
TEST_BUILD ?= build-asan

.PHONY: all deps test-deps build run test test-fast bench clean format

all: build

deps:
	@scripts/deps.sh

test-deps:
	@scripts/deps.sh --test
	@test -d tests/integration/node_modules/ws || npm ci --prefix tests/integration --no-audit --no-fund --silent

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

# A quicker loop while developing: no sanitizers, default backend.
test-fast: test-deps build
	ctest --test-dir $(BUILD) --output-on-failure -j2

bench: build
	bench/http.sh $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h' '*.cc')

clean:
	rm -rf $(BUILD) $(TEST_BUILD)
