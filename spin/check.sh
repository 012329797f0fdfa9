#!/usr/bin/env bash
# Check spin/paxos.pml exhaustively with Spin, then show that each mutant fails.
#   spin/check.sh            the mutants, then the full model (minutes, GBs of memory)
#   spin/check.sh mutants    only the mutants (seconds)
# Needs spin and gcc (apt-get install spin). The model is generated: python spin/generate.py
set -euo pipefail
model="$(cd "$(dirname "$0")" && pwd)/paxos.pml"
work="$(mktemp -d /tmp/harunner-spin.XXXXXX)"
trap 'rm -rf "$work"' EXIT
cd "$work"
cp "$model" .

verify() {  # verify <name> <expect: ok|error> <search: -DBFS|-DCOLLAPSE> [spin -D flags...]
    local name="$1" expect="$2" search="$3"
    shift 3
    spin "$@" -a paxos.pml >/dev/null
    gcc -O2 -DSAFETY "$search" -DMEMLIM=4000 -o pan pan.c 2>/dev/null
    local out errors
    out="$(./pan -E -m1000000)"
    errors="$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' <<<"$out")"
    echo "$name: errors=$errors, $(grep -o '[0-9.e+]* states, stored' <<<"$out"), $(grep -o 'depth reached [0-9]*' <<<"$out"), $(grep -o 'violated.*at depth [0-9]*' <<<"$out" | grep -o 'at depth [0-9]*' || true)"
    if grep -q "Search not completed" <<<"$out" && [ "$errors" = 0 ]; then
        echo "$name: search incomplete"; exit 1
    fi
    if { [ "$expect" = ok ] && [ "$errors" != 0 ]; } || { [ "$expect" = error ] && [ "$errors" = 0 ]; }; then
        echo "$name: expected $expect"; exit 1
    fi
    rm -f paxos.pml.trail
}

# Mutants: breadth-first, so the depth of the error is the shortest counterexample.
verify "quorum of one (mutant)" error -DBFS -DQUORUM=1
verify "reply before persisting (mutant)" error -DBFS -DPERSIST_LATE
verify "round not reloaded (mutant)" error -DBFS -DFORGET_ROUND
if [ "${1:-}" != mutants ]; then
    verify "protocol" ok -DCOLLAPSE
fi
