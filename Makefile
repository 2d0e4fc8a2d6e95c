# fwassemble: the two commands a newcomer runs are `make demo` and `make test`.
SHELL := /bin/bash
export PATH := /opt/swift/usr/bin:$(PATH)

# Debian packages the build, the test disks and the tests need (installed only when missing).
APT_PACKAGES := pkg-config libblkid-dev libext2fs-dev zlib1g-dev libdeflate-dev liblz4-dev libzstd-dev liblzma-dev \
	liblzo2-dev e2fsprogs mtd-utils fdisk binutils-arm-linux-gnueabihf gdisk util-linux squashfs-tools erofs-utils dosfstools mtools attr libcap2-bin \
	pigz libarchive-tools xz-utils zstd golang-go python3 f2fs-tools btrfs-progs xfsprogs gcc g++ binutils qemu-utils zip unzip \
	containerd podman libubootenv-tool grub-common mmdebstrap libsqlite3-dev qemu-system-x86

SWIFT_FLAGS ?=
BIN := .build/debug/fwassemble
IMAGES := images/out

.PHONY: all deps build release native wheel venv images demo test bench bench-batch fuzz clean

all: build

deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		if [ "$$(id -u)" != 0 ]; then echo "need root to apt-get install: $$missing" >&2; exit 1; fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@command -v swift >/dev/null || { echo "Swift 6 is needed (expected at /opt/swift)" >&2; exit 1; }
	@python3 -c 'import pytest' 2>/dev/null || { echo "installing: python3-pytest"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pytest >/dev/null; }

build: deps
	swift build $(SWIFT_FLAGS)
	ln -sf libCFwassemble.so $$(swift build $(SWIFT_FLAGS) --show-bin-path)/libfwassemble.so

release: deps
	swift build -c release $(SWIFT_FLAGS)
	ln -sf libCFwassemble.so $$(swift build -c release $(SWIFT_FLAGS) --show-bin-path)/libfwassemble.so

# The native parts the Python wheel carries (python/fwassemble/_native): the fwassemble executable
# and libfwassemble.so, release builds with the Swift runtime linked statically, so they need only
# the Debian C libraries (python/README.md), stripped of their symbol tables (the wheel's size:
# docs/library.md). SwiftPM links only executables with
# --static-swift-stdlib, so the library is linked again from the same objects with -static-stdlib.
# Fails if either still needs a libswift*.so.
NATIVE := python/fwassemble/_native
NATIVE_FLAGS := -c release --static-swift-stdlib -Xlinker -L/opt/swift/usr/lib/swift_static/linux $(SWIFT_FLAGS)
native: deps
	swift build $(NATIVE_FLAGS) --product fwassemble
	swift build $(NATIVE_FLAGS) --product CFwassemble
	mkdir -p $(NATIVE)
	bin=$$(swift build -c release $(SWIFT_FLAGS) --show-bin-path); \
	swiftc -emit-library -static-stdlib -module-name CFwassemble -o $(NATIVE)/libfwassemble.so.tmp \
		@$$bin/CFwassemble.product/Objects.LinkFileList -Xlinker --gc-sections 2>&1 | grep -v "use of .mktemp" || true; \
	install -m 755 $$bin/fwassemble $(NATIVE)/fwassemble && mv $(NATIVE)/libfwassemble.so.tmp $(NATIVE)/libfwassemble.so
	strip --strip-unneeded $(NATIVE)/fwassemble $(NATIVE)/libfwassemble.so
	@ls -l $(NATIVE)/fwassemble $(NATIVE)/libfwassemble.so | awk '{ printf "%s: %.1f MiB (stripped)\n", $$9, $$5 / 1048576 }'
	@if ldd $(NATIVE)/fwassemble $(NATIVE)/libfwassemble.so | grep libswift; then \
		echo "$(NATIVE) still needs the Swift runtime libraries above" >&2; exit 1; fi

# python/dist/fwassemble-*.whl: the Python module with the native parts inside (platform wheel).
wheel: native venv
	rm -rf python/build dist/fwassemble-*.whl
	$(VENV)/bin/pip wheel -q --no-deps --no-build-isolation -w dist ./python
	@ls dist/fwassemble-*.whl

# The Python test environment (gitignored): pytest, dask.distributed, wheel/setuptools from PyPI,
# installed once (again only when the stamp is missing).
VENV := .venv-test
venv: $(VENV)/.installed
$(VENV)/.installed:
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q "dask[distributed]" pytest setuptools wheel
	touch $@

# Test disks: built by the recipes in images/, once per run (a recipe runs again only when it
# or the shared tree changed).
images: deps
	bash images/build.sh $(IMAGES)

demo: build
	bash images/build.sh $(IMAGES) sample
	$(BIN) inspect $(IMAGES)/sample.img
	$(BIN) plan $(IMAGES)/sample.img
	$(BIN) assemble $(IMAGES)/sample.img -o sample.rootfs.tar.gz

test: build images native venv
	@bash images/fetch-e2fsprogs.sh || echo "e2fsprogs >= 1.47.1 could not be fetched: the penguin-recipe tests skip"
	@bash images/fetch-dissect-jffs.sh || echo "dissect.jffs's test data could not be fetched: its JFFS2 tests skip"
	@bash images/fetch-dissect-btrfs.sh || echo "dissect.btrfs's test data could not be fetched: its btrfs tests skip"
	swift test $(SWIFT_FLAGS)
	FWASSEMBLE_LIB=$$(swift build $(SWIFT_FLAGS) --show-bin-path)/libfwassemble.so $(VENV)/bin/python -m pytest -q python/tests

# Speed and memory (docs/benchmarks.md): builds a ~1.5 GB HAOS-style disk once (bench/out, never
# committed), times fwassemble against the privileged kernel pipeline, appends the table.
bench: release images venv
	BIN=$$(swift build -c release $(SWIFT_FLAGS) --show-bin-path)/fwassemble bash bench/run.sh
	BIN=$$(swift build -c release $(SWIFT_FLAGS) --show-bin-path)/fwassemble bash bench/journal.sh
	BIN=$$(swift build -c release $(SWIFT_FLAGS) --show-bin-path)/fwassemble bash bench/browse.sh

# Disks per minute of `fwassemble batch` with --jobs 1 and 2, and of fwassemble.batch on a
# LocalCluster of 1 and 2 workers, on small test disks (docs/benchmarks.md, docs/scale.md).
bench-batch: native images venv
	BIN=$(NATIVE)/fwassemble PYTHON=$(VENV)/bin/python bash bench/batch.sh

# Fuzzing (docs/fuzzing.md): one libFuzzer binary per target in .build-fuzz, FUZZ_SECONDS each;
# crashing inputs are copied to Tests/Corpus/<target>/, which make test replays.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= partition-table squashfs erofs fat fstab unit-file boot-environment bolt tar jbd2 ext4-writer containerd-store podman-store podman-db layer-export
fuzz: deps
	bash Fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

clean:
	rm -rf .build $(IMAGES) bench/out
