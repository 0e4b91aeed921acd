#!/usr/bin/env bash
# Coverage-guided fuzzing of every target (libFuzzer through cargo-fuzz, on stable Rust with
# --sanitizer none): `fuzz/run.sh [seconds per target] [target...]` (default 300 s, all four).
# Installs cargo-fuzz if missing. Each target starts from its checked-in seeds
# (fuzz/corpus/<target>/) plus its regressions and grows a working corpus in fuzz/work/<target>/
# (not checked in). A crash stops that target and leaves its input in
# fuzz/artifacts/<target>/: minimise it (`cargo fuzz tmin --sanitizer none <target> <file>`),
# add it to fuzz/regressions/<target>/, fix the parser, and `cargo test -p strata-fuzz`
# replays it from then on. To keep new seeds, minimise the working corpus
# (`cargo fuzz cmin --sanitizer none <target> work/<target>`) and copy the few worth keeping.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-300}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  targets=(sigv4 s3_xml extent_records log_records)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

# libFuzzer itself is C++ (built by libfuzzer-sys); everything else is stable Rust.
cargo fuzz build --sanitizer none --release

status=0
for target in "${targets[@]}"; do
  mkdir -p "work/$target" "regressions/$target"
  echo "== $target: ${seconds} s"
  if ! cargo fuzz run --sanitizer none --release "$target" "work/$target" "corpus/$target" \
    "regressions/$target" -- -max_total_time="$seconds" -print_final_stats=1; then
    echo "!! $target crashed: see fuzz/artifacts/$target/"
    status=1
  fi
done
exit "$status"
