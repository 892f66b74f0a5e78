#!/bin/sh
# Stands in for `roost agent-exec <policy> -- program args…` in the process-handling tests:
# execs the program without confining it (the real helper is tested by the gateway's tests).
[ "$1" = agent-exec ] || { echo "expected agent-exec, got $1" >&2; exit 125; }
[ "$3" = -- ] || { echo "expected -- after the policy" >&2; exit 125; }
shift 3
unset PWD  # the shell sets it; the real helper adds nothing
exec "$@"
