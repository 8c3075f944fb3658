# SPDX-License-Identifier: MIT
# The two commands a newcomer needs:
#   make run   build everything and run the benchmark (the main job)
#   make test  build everything and run every test through CTest
# Both install the Debian packages they need when they are missing.

BUILD      ?= build
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=
PACKAGES   := cmake gcc g++ make pkg-config libcmocka-dev gnuplot-nox clang libclang-rt-14-dev \
              systemtap-sdt-dev bpftrace doxygen man-db valgrind dpkg-dev file
FUZZ_SECONDS ?= 60
# V=1: show the whole build (every compile line); by default a build
# prints one line, then only what the compiler or CMake said beyond their
# progress lines (warnings, errors), and its log stays in the build tree.
V ?=

# No "make[N]: Entering directory" from the sub-makes CMake runs.
MAKEFLAGS += --no-print-directory

CROSS_PACKAGES := gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user

# `make deb` also lints the packages; `make test` checks them with lintian
# only where it is installed (it is big, and CI has no use for it twice).
DEB_PACKAGES := lintian

.PHONY: all run test deps build docs sanitize tsan fuzz coverage cross install deb clean

all: build

# $(call cmake_build,DIR,CONFIGURE ARGS,BUILD ARGS): configure and build
# DIR.  Quiet unless V=1: the configure and build logs go to DIR/cmake.log
# and DIR/build.log, and what is left of them without progress lines
# (CMake's "-- ..." status, "[ 42%] Building ...", "Built target ...") is
# printed, so warnings and errors show; a failure shows the failing
# step's log that way and stops.
ifeq ($(V),1)
define cmake_build
	cmake -S . -B $(1) $(2)
	cmake --build $(1) -j $(JOBS) $(3)
endef
else
BUILD_NOISE := ^-- |^\[ *[0-9]+%\] |^\[[0-9]+/[0-9]+\] |Built target |^Consolidate compiler generated|^Scanning dependencies|^Dependee .* is newer|^Clearing dependee|^Install the project|^$$
define cmake_build
	@mkdir -p $(1); echo "configure $(1)/  (log: $(1)/cmake.log)"; \
	cmake -S . -B $(1) $(2) > $(1)/cmake.log 2>&1; rc=$$?; \
	grep -Ev '$(BUILD_NOISE)' $(1)/cmake.log; [ $$rc = 0 ] || exit $$rc; \
	echo "build $(1)/ $(if $(3),[$(3)] )with $(JOBS) jobs  (log: $(1)/build.log; V=1 shows it all)"; \
	cmake --build $(1) -j $(JOBS) $(3) > $(1)/build.log 2>&1; rc=$$?; \
	grep -Ev '$(BUILD_NOISE)' $(1)/build.log; exit $$rc
endef
endif

# $(call install_missing,PACKAGES): apt-get install those not installed yet.
define install_missing
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
endef

deps:
	$(call install_missing,$(PACKAGES))

build: deps
	$(call cmake_build,$(BUILD),$(CMAKE_ARGS))

# The man pages (build/docs/man: man3, man7), generated from
# include/percpu.h by Doxygen; also part of `make build`.
docs: deps
	$(call cmake_build,$(BUILD),$(CMAKE_ARGS),--target docs)

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

# die_after_fork=0: the death tests and test_fork fork a multi-threaded
# process whose child may start the reclaim worker; TSan refuses that by
# default (it cannot vouch for its own state in such a child), not a race.
tsan: deps
	TSAN_OPTIONS="die_after_fork=0 $$TSAN_OPTIONS" $(MAKE) test BUILD=build-tsan CMAKE_ARGS="-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DPCPU_TSAN=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo"

# The model-based fuzzer (tests/fuzz_model.c, clang + libFuzzer + ASan/UBSan);
# new inputs go to build-fuzz/corpus, the seeds stay in tests/corpus.
fuzz: deps
	$(call cmake_build,build-fuzz,-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DPCPU_FUZZ=ON -DPCPU_DEBUG_LEVEL=2,--target fuzz_model)
	mkdir -p build-fuzz/corpus
	build-fuzz/tests/fuzz_model -max_total_time=$(FUZZ_SECONDS) -max_len=1024 -timeout=60 -print_final_stats=1 build-fuzz/corpus tests/corpus

# Line coverage of src/ with gcov: every test, then one line per file and
# the total (the .gcda files are named after the objects, core.c.gcda).
coverage: deps
	$(MAKE) test BUILD=build-cov CMAKE_ARGS="-DPCPU_COVERAGE=ON -DCMAKE_BUILD_TYPE=Debug"
	cd build-cov && gcov -n CMakeFiles/percpu_obj.dir/src/*.gcda 2>/dev/null | awk ' \
	  /^File / { f = $$2; gsub(/\x27/, "", f); next } \
	  /^Lines executed:/ && f ~ /\/src\/[^\/]*\.c$$/ { \
	    split($$2, a, ":"); pct = a[2]; sub(/%/, "", pct); n = $$4; \
	    hit = pct * n / 100; th += hit; tn += n; \
	    printf "%-28s %6.2f%% of %5d lines\n", f, pct, n; f = "" } \
	  END { if (tn) printf "%-28s %6.2f%% of %5d lines\n", "TOTAL src/", 100 * th / tn, tn }' \
	  | sed "s|^$(CURDIR)/||" | tee coverage.txt

# aarch64: the library and examples cross-compiled (the portable atomic
# fallback, no rseq sequences) and run under qemu.
cross:
	$(call install_missing,$(CROSS_PACKAGES))
	$(call cmake_build,build-aarch64,-DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 \
	  -DCMAKE_C_COMPILER=aarch64-linux-gnu-gcc -DCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++ \
	  -DBUILD_TESTING=OFF -DCMAKE_C_FLAGS=-Werror)
	qemu-aarch64 -L /usr/aarch64-linux-gnu build-aarch64/examples/count_events
	qemu-aarch64 -L /usr/aarch64-linux-gnu build-aarch64/examples/server_stats 4 20000
	qemu-aarch64 -L /usr/aarch64-linux-gnu build-aarch64/tools/pcpu-live 100000 64 > /dev/null

# As root, ldconfig then updates the loader's cache: /usr/local/lib is
# searched only through it, so a new libpercpu.so.0 there is not found
# before it runs.
install: build
	cmake --install $(BUILD)
	@if [ "$$(id -u)" = 0 ] && command -v ldconfig > /dev/null; then ldconfig; fi

# The Debian packages libpercpu0, libpercpu-dev and percpu-tools, from the
# install rules (CPack, cmake/package.cmake), into $(BUILD)/packages;
# then `sudo apt install ./$(BUILD)/packages/*.deb`.
deb: build
	$(call install_missing,$(DEB_PACKAGES))
	rm -f $(BUILD)/packages/*.deb
	cd $(BUILD) && cpack --config CPackConfig.cmake
	lintian $(BUILD)/packages/*.deb
	@ls -l $(BUILD)/packages/*.deb

clean:
	rm -rf build build-asan build-tsan build-fuzz build-cov build-aarch64
