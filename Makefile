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

# The main job on the bundled example: compile the trained example model in
# Tests/Fixtures/models/example (a 3.9M-parameter Llama, Tests/Fixtures/train_example_model.py)
# to C, build it, and continue a text prompt greedily with 48 tokens (transformers
# writes the same text: see its golden_text.json; ExampleRunCLITests checks this line).
example: release
	.build/release/attune run Tests/Fixtures/models/example --prompt "This program is free software; you can redistribute it and/or modify it" --max-new-tokens 48

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
