# The two commands of the README, plus the pieces they are made of.
.PHONY: deps example bench test release install uninstall bench-pytorch pareto clean

PREFIX ?= /usr/local
BINDIR = $(DESTDIR)$(PREFIX)/bin

deps:
	@scripts/install-deps.sh

# The Swift runtime is linked statically, so the binary runs without the toolchain's
# .so files (Docs/BUILDING.md, "Installing").
release: deps
	swift build -c release --product attune --static-swift-stdlib

# The release binary alone, stripped: it carries the kernel sources and needs no source tree.
install: release
	install -d $(BINDIR)
	install -m 755 -s .build/release/attune $(BINDIR)/attune

uninstall:
	rm -f $(BINDIR)/attune

# The main job on the bundled example: compile the tiny Llama checkpoint in
# Tests/Fixtures/models/llama to C, build it, prefill 16 tokens and greedily
# generate 8 more (transformers generates the same 8: see its golden.json).
example: release
	.build/release/attune run Tests/Fixtures/models/llama --tokens 1,17,42,99,3,64,127,8,55,23,77,0,91,34,110,12 --max-new-tokens 8

# Flash attention on a causal prefill shape, with same-process SGEMM and
# memory-bandwidth baselines.
bench: release
	.build/release/attune bench attention --kernel flash --heads 8 --q-len 2048 --head-dim 128 --causal

test: deps
	swift build --build-tests
	swift test --skip-build --disable-swift-testing
	.build/debug/attune check

bench-pytorch: release
	python3 Bench/compare_pytorch.py

pareto: release
	python3 Bench/pareto.py

clean:
	rm -rf .build
