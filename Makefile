# The two commands a newcomer needs:
#   make run   build everything and run the benchmark (the main job)
#   make test  build everything and run every test through CTest
# Both install the Debian packages they need when they are missing.

BUILD      ?= build
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=
PACKAGES   := cmake gcc g++ make pkg-config libcmocka-dev gnuplot-nox clang libclang-rt-14-dev
FUZZ_SECONDS ?= 60

.PHONY: all run test deps build sanitize tsan fuzz coverage install clean

all: build

deps:
	@missing=""; for p in $(PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

build: deps
	cmake -S . -B $(BUILD) $(CMAKE_ARGS)
	cmake --build $(BUILD) -j $(JOBS)

run: build
	@if [ -x $(BUILD)/bench/percpu-bench ]; then \
	  $(BUILD)/bench/percpu-bench --json $(BUILD)/bench-results.json --plots $(BUILD)/plots; \
	else \
	  $(BUILD)/examples/stats_demo; \
	fi

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600

sanitize: deps
	$(MAKE) test BUILD=build-asan CMAKE_ARGS="-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DPCPU_SANITIZE=ON -DPCPU_DEBUG_LEVEL=2 -DCMAKE_BUILD_TYPE=Debug"

tsan: deps
	$(MAKE) test BUILD=build-tsan CMAKE_ARGS="-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DPCPU_TSAN=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo"

fuzz: deps
	cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DPCPU_FUZZ=ON -DPCPU_DEBUG_LEVEL=2
	cmake --build build-fuzz -j $(JOBS) --target fuzz_model
	mkdir -p build-fuzz/corpus
	build-fuzz/tests/fuzz_model -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 build-fuzz/corpus tests/corpus

coverage: deps
	$(MAKE) test BUILD=build-cov CMAKE_ARGS="-DPCPU_COVERAGE=ON -DCMAKE_BUILD_TYPE=Debug"
	cd build-cov && gcov -o CMakeFiles/percpu_obj.dir/src ../src/*.c > gcov.txt 2>&1; grep -A1 "File '../src" gcov.txt | grep Lines || true

install: build
	cmake --install $(BUILD)

clean:
	rm -rf build build-asan build-tsan build-fuzz build-cov
