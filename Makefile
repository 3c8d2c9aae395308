# The two commands of the README, plus the pieces they are made of.
.PHONY: deps example test release bench-pytorch clean

deps:
	@scripts/install-deps.sh

release: deps
	swift build -c release --product attune

# The main job on the default example: flash attention on a causal prefill
# shape, with same-process SGEMM and memory-bandwidth baselines.
example: release
	.build/release/attune bench attention --kernel flash --heads 8 --q-len 2048 --head-dim 128 --causal

test: deps
	swift build --build-tests
	swift test --skip-build --disable-swift-testing

bench-pytorch: release
	python3 Bench/compare_pytorch.py

clean:
	rm -rf .build
