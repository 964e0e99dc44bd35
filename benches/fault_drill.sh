#!/usr/bin/env bash
# Fault drill against a release build on this machine: kill -9 under mixed load, a full
# disk (SQLite on a small tmpfs, when this user may mount one), a database outage
# (PostgreSQL through a proxy). Prints a table of acknowledged / lost / wrongly revoked
# writes and time to recover. Traffic stays on 127.0.0.1; every phase is bounded.
#
#   benches/fault_drill.sh sqlite
#   benches/fault_drill.sh postgres postgres://postgres@127.0.0.1:5432/postgres
#
# Extra arguments after the database go to the drill (see examples/fault_drill.rs), e.g.
# `--kills 5 --grace 0s`.
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:?usage: fault_drill.sh sqlite|postgres [URL] [drill args]}
shift
cargo build --release --bin latchkey --example fault_drill
bin=$PWD/target/release/latchkey
drill=$PWD/target/release/examples/fault_drill

case $which in
sqlite)
    mnt=$(mktemp -d)
    if mount -t tmpfs -o size=64m tmpfs "$mnt" 2>/dev/null; then
        trap 'umount "$mnt"; rmdir "$mnt"' EXIT
        "$drill" --bin "$bin" --tmpfs "$mnt" "$@"
    else
        rmdir "$mnt"
        echo "no tmpfs (mounting needs root): the disk-full phase is skipped" >&2
        "$drill" --bin "$bin" "$@"
    fi
    ;;
postgres)
    url=${1:?a PostgreSQL admin URL}
    shift
    "$drill" --bin "$bin" --postgres "$url" "$@"
    ;;
*)
    echo "sqlite or postgres" >&2
    exit 2
    ;;
esac
