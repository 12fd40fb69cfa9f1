#!/bin/sh
# Builds the generator on SmartOS / illumos (see docs/smartos.md).
#
# The zmq crate builds libzmq from source through zeromq-src 0.2.6, whose build script
# knows Linux, macOS and Windows but not illumos (it stops on a missing platform.hpp). This
# script copies that crate out of cargo's registry into target/, applies
# zeromq-src-illumos.patch (the defines libzmq's own CMake uses on SunOS, poll(2) as the
# poller, -lsocket -lnsl), and builds with a cargo [patch] pointing at the copy. Cargo.lock
# is restored afterwards, so the checkout stays clean.
#
#   generator/smartos/build.sh            # -> target/release/generator
#   generator/smartos/build.sh --debug    # -> target/debug/generator
set -eu
cd "$(dirname "$0")/../.."
profile="--release"
[ "${1:-}" = "--debug" ] && profile=""

version="0.2.6+4.3.4"
cargo fetch --locked
src=""
for d in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/zeromq-src-"$version"; do
  [ -d "$d" ] && src="$d"
done
[ -n "$src" ] || { echo "zeromq-src $version not found in cargo's registry" >&2; exit 1; }

dst="target/zeromq-src-illumos"
rm -rf "$dst"
mkdir -p target
cp -R "$src" "$dst"
(cd "$dst" && patch -p1 < ../../generator/smartos/zeromq-src-illumos.patch)

cp Cargo.lock target/Cargo.lock.orig
trap 'cp target/Cargo.lock.orig Cargo.lock' EXIT
cargo build $profile -p generator --config "patch.crates-io.zeromq-src.path=\"$dst\""
