#!/bin/bash
# Bench/gemv_ab.sh [BASE] [ROUNDS] [MODEL] [hot] — builds Bench/gemv_ab.c against two copies of
# Kernels/linear_q8.c: BASE's (a git revision, default main) as old_, the working tree's as new_
# (the other kernels from the working tree), then runs it under the exclusive benchmark lock.
# MODEL: gemma2-2b (default) or qwen2.5-0.5b. Needs clang, OpenBLAS and an OpenMP runtime.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
base=${1:-main} rounds=${2:-7} model=${3:-gemma2-2b} mode=${4:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
omp=$(ls -d /usr/lib/llvm-*/lib 2>/dev/null | while read -r d; do [ -f "$d/libomp.so" ] && echo "$d"; done | tail -1)
ompinc=$(dirname "$(find "$omp" -name omp.h | head -1)")
K=$root/Kernels
cflags=(-O3 -march=native -ffp-contract=fast -fno-math-errno -fopenmp "-I$ompinc" "-I$K" "-I$K/include")
git -C "$root" show "$base:Kernels/linear_q8.c" > "$work/old_linear_q8.c"
build() {
  for f in "$K"/*.c; do
    [ "$(basename "$f")" = linear_q8.c ] || clang "${cflags[@]}" -c "$f" -o "$work/dep_$(basename "$f" .c).o"
  done
  ar rcs "$work/kernels.a" "$work"/dep_*.o   # an archive: only what linear_q8.c needs is linked
  for side in old new; do
    src=$K/linear_q8.c
    [ $side = old ] && src=$work/old_linear_q8.c
    clang "${cflags[@]}" -c "$src" -o "$work/$side.o"
    # Every global the file defines gets the side's prefix, so both copies link into one program.
    nm --defined-only -g "$work/$side.o" | awk -v p=$side '{print $3" "p"_"$3}' > "$work/$side.syms"
    objcopy --redefine-syms="$work/$side.syms" "$work/$side.o"
  done
  clang "${cflags[@]}" "$root/Bench/gemv_ab.c" "$work"/old.o "$work"/new.o "$work/kernels.a" \
    "-L$omp" "-Wl,-rpath,$omp" -lopenblas -lm -o "$work/gemv_ab"
}
nice -n 5 flock -s /tmp/attune-build.lock bash -c "$(declare -p cflags root K work omp); $(declare -f build); build"
flock -x /tmp/attune-build.lock "$work/gemv_ab" "$rounds" "$model" $mode
