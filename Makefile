# fwassemble: the two commands a newcomer runs are `make demo` and `make test`.
SHELL := /bin/bash
export PATH := /opt/swift/usr/bin:$(PATH)

# Debian packages the build, the test disks and the tests need (installed only when missing).
APT_PACKAGES := pkg-config libblkid-dev libext2fs-dev zlib1g-dev libdeflate-dev liblz4-dev libzstd-dev liblzma-dev \
	liblzo2-dev e2fsprogs fdisk gdisk util-linux squashfs-tools erofs-utils dosfstools mtools attr \
	pigz libarchive-tools xz-utils zstd golang-go python3 f2fs-tools btrfs-progs xfsprogs gcc g++ binutils qemu-utils zip unzip \
	containerd podman

SWIFT_FLAGS ?=
BIN := .build/debug/fwassemble
IMAGES := images/out

.PHONY: all deps build release images demo test bench fuzz clean

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

# Test disks: built by the recipes in images/, once per run (a recipe runs again only when it
# or the shared tree changed).
images: deps
	bash images/build.sh $(IMAGES)

demo: build
	bash images/build.sh $(IMAGES) sample
	$(BIN) inspect $(IMAGES)/sample.img
	$(BIN) plan $(IMAGES)/sample.img
	$(BIN) assemble $(IMAGES)/sample.img -o sample.rootfs.tar.gz

test: build images
	@bash images/fetch-e2fsprogs.sh || echo "e2fsprogs >= 1.47.1 could not be fetched: the penguin-recipe tests skip"
	swift test $(SWIFT_FLAGS)
	FWASSEMBLE_LIB=$$(swift build $(SWIFT_FLAGS) --show-bin-path)/libfwassemble.so python3 -m pytest -q python/tests

# Speed and memory (docs/benchmarks.md): builds a ~1.5 GB HAOS-style disk once (bench/out, never
# committed), times fwassemble against the privileged kernel pipeline, appends the table.
bench: release images
	BIN=$$(swift build -c release $(SWIFT_FLAGS) --show-bin-path)/fwassemble bash bench/run.sh
	BIN=$$(swift build -c release $(SWIFT_FLAGS) --show-bin-path)/fwassemble bash bench/journal.sh

# Fuzzing (docs/fuzzing.md): one libFuzzer binary per target in .build-fuzz, FUZZ_SECONDS each;
# crashing inputs are copied to Tests/Corpus/<target>/, which make test replays.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= partition-table squashfs erofs fat fstab unit-file boot-environment bolt tar jbd2
fuzz: deps
	bash Fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

clean:
	rm -rf .build $(IMAGES) bench/out
