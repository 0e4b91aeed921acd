#!/usr/bin/env bash
# Builds the static release binaries and the `FROM scratch` image every compose service runs.
#
#   docker/build-image.sh                 # cargo build (static), then docker build -t strata:local
#   docker/build-image.sh --skip-build    # reuse binaries already in --bin-dir (CI: tests/run built them)
#   docker/build-image.sh --tag NAME --bin-dir DIR
#
# Environment: STRATA_IMAGE (tag, default strata:local), STRATA_SKIP_BUILD=1 (= --skip-build),
# STRATA_BIN_DIR (default target/x86_64-unknown-linux-gnu/release).
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-gnu
tag="${STRATA_IMAGE:-strata:local}"
bin_dir="${STRATA_BIN_DIR:-$PWD/target/$target/release}"
skip_build="${STRATA_SKIP_BUILD:-0}"
while [ $# -gt 0 ]; do
  case "$1" in
    --skip-build) skip_build=1 ;;
    --tag) tag="$2"; shift ;;
    --bin-dir) bin_dir="$2"; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "build-image.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

binaries=(strata strata-location strata-stream-manager strata-extent-node
          strata-partition-manager strata-partition-server strata-frontend)

if [ "$skip_build" != 1 ]; then
  echo "== cargo build --release (static, $target)"
  RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --release --target "$target" --workspace --bins
fi

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/tmp"
for binary in "${binaries[@]}"; do
  path="$bin_dir/$binary"
  [ -x "$path" ] || { echo "build-image.sh: $path is missing; build without --skip-build" >&2; exit 1; }
  # A FROM scratch image has no shared libraries: refuse a dynamically linked binary.
  if command -v readelf >/dev/null && readelf -l "$path" | grep -q 'INTERP'; then
    echo "build-image.sh: $path is dynamically linked; build with RUSTFLAGS='-C target-feature=+crt-static' --target $target" >&2
    exit 1
  fi
  cp "$path" "$stage/bin/"
done
cp docker/Dockerfile "$stage/Dockerfile"

echo "== docker build -t $tag"
docker build --quiet -t "$tag" "$stage"
echo "built image $tag ($(du -sh "$stage/bin" | cut -f1) of binaries)"
