#!/bin/bash
# Bench/module_ab.sh BASE MODEL [ROUNDS] [STEPS] [ATTUNE-COMPILE-FLAGS...] — decode speed of MODEL
# compiled with BASE's kernels (a git revision: A) against the working tree's Kernels/ (B), in
# one process (Bench/module_ab.c): a 512-token prompt, then STEPS (default 32) decode steps per
# build per round, ROUNDS (default 16) rounds under the exclusive benchmark lock. The flags go
# to `attune compile` (e.g. --weights bf16). $ATTUNE names the binary (default: this checkout's
# release build); both sides use its compiler, only the kernel sources differ.
#   Bench/module_ab.sh main /tmp/qwen 24 32 --weights bf16
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 2 ] || { echo "usage: $0 BASE MODEL [ROUNDS] [STEPS] [attune compile flags...]" >&2; exit 2; }
base=$1 model=$2 rounds=${3:-16} steps=${4:-32}
shift $(($# < 4 ? $# : 4))
attune=${ATTUNE:-$root/.build/release/attune}
[ -x "$attune" ] || { echo "error: no attune binary at $attune (swift build -c release --product attune, or set ATTUNE)" >&2; exit 2; }
git -C "$root" rev-parse --verify --quiet "$base^{commit}" > /dev/null || { echo "error: '$base' is not a git revision of $root" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/base"
git -C "$root" archive "$base" Kernels | tar -x -C "$work/base"
compile() {  # SIDE KERNELS-DIR FLAGS...
  local side=$1 dir=$2
  shift 2
  ATTUNE_KERNELS_DIR=$dir ATTUNE_CACHE_DIR=$work/cache-$side "$attune" compile "$model" -o "$work/$side" "$@" > /dev/null
}
build() {  # FLAGS...
  compile A "$work/base/Kernels" "$@"
  compile B "$root/Kernels" "$@"
  clang -O2 "$root/Bench/module_ab.c" -ldl -o "$work/module_ab"
}
flags=$([ $# -eq 0 ] || printf '%q ' "$@")
nice -n 5 flock -s /tmp/attune-build.lock bash -c "$(declare -p work attune model root); $(declare -f compile build); build $flags"
so() { ls "$work/$1"/lib*.so; }
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} flock -x /tmp/attune-build.lock \
  "$work/module_ab" "$(so A)" "$work/A/weights.manifest" "$(so B)" "$work/B/weights.manifest" "$rounds" 512 "$steps"
