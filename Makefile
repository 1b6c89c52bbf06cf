# Ember — build, test and demo. `make test` and `make demo` install what they need.
SWIFT ?= swift
DEPS := ocl-icd-opencl-dev opencl-headers libclblast-dev pocl-opencl-icd libopenblas-dev clinfo pkg-config zlib1g-dev libopenmpi-dev openmpi-bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# mpirun as root (CI containers) needs Open MPI's permission variables; 2+ ranks on a small
# machine need --oversubscribe; containers forbid the shared-memory transport's cross-process attach.
MPIRUN := OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none mpirun --oversubscribe
RANKS ?= 2

.PHONY: deps build release test demo bench bench-distributed train-distributed soak sanitize-thread sanitize-address chromium plots-check docs clean

## Install the system packages Ember needs (skipped when all are present).
deps:
	@missing=""; for p in $(DEPS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "make deps: installing$$missing"; \
	  $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends $$missing; \
	else echo "make deps: all system packages present"; fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

## Run the whole test suite (Swift Testing, on the CPU and on PoCL). The optimized build of
## EmberMisuse lets the tests check that error messages survive -O.
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) build -c release --product EmberMisuse
	$(SWIFT) test --skip-build

## List the devices, then train the digits MLP on the default device.
demo: release
	$(SWIFT) run -c release --skip-build ember devices
	$(SWIFT) run -c release --skip-build ember train

## Compare the devices (see README).
bench: release
	$(SWIFT) run -c release --skip-build ember-bench

## ember-bench --distributed on $(RANKS) local ranks (step time, unhidden communication, bytes).
bench-distributed: release
	$(MPIRUN) -np $(RANKS) .build/release/ember-bench --distributed

## Train the digits MLP on $(RANKS) local processes.
train-distributed: release
	$(MPIRUN) -np $(RANKS) .build/release/ember train --distributed --device cpu

## 10,000 training steps per device, checking that memory stays flat.
soak: release
	$(SWIFT) run -c release --skip-build ember-bench --soak 10000

## The test suite under ThreadSanitizer / AddressSanitizer (separate build folders).
sanitize-thread: deps
	$(SWIFT) test --sanitize=thread --scratch-path .build-tsan

## PoCL compiles kernels with LLVM, which gives the compiling thread an alternate signal
## stack from malloc; ASan's own one (use_sigaltstack) would then be unmapped wrongly when
## that thread exits, so ASan leaves signal stacks alone here.
sanitize-address: deps
	ASAN_OPTIONS=use_sigaltstack=0 LSAN_OPTIONS=suppressions=$(CURDIR)/Tests/lsan-suppressions.txt \
		$(SWIFT) test --sanitize=address --scratch-path .build-asan

## The DocC reference (Ember's catalog and every public symbol) as a static site in
## .build/docs-site; broken links, unknown symbols and undocumented parameters fail the build.
## EMBER_DOCS=1 adds swift-docc-plugin to the package (its own build folder, .build-docs).
docs: deps
	EMBER_DOCS=1 $(SWIFT) package --scratch-path .build-docs --allow-writing-to-directory .build/docs-site \
		generate-documentation --target Ember --output-path .build/docs-site \
		--transform-for-static-hosting --warnings-as-errors
	@echo "make docs: serve it with python3 -m http.server -d .build/docs-site and open /documentation/ember"

## Headless Chromium, for plots-check (optional: not part of deps, to keep CI's installs short).
chromium:
	@command -v chromium >/dev/null 2>&1 || { echo "make chromium: installing chromium"; \
	  $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends chromium; }

## Draw ember train's curves in headless Chromium and check the picture (size, not blank,
## series colours); then render the README's example picture.
plots-check: chromium deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --filter PlotTests
	$(SWIFT) run --skip-build ember train --device cpu --epochs 20 --plot .build/training-curves.svg
	chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 --window-size=960,636 \
		--user-data-dir=.build/chromium --screenshot=docs/training-curves.png file://$(CURDIR)/.build/training-curves.svg

clean:
	rm -rf .build
