#!/usr/bin/env bash
# The seed tutorial, end to end, on the embedded dev agent:
#   order -> invoice -> tax, each behind an Envoy sidecar; calls go through the upstream listeners
#   over mTLS. Zero trust: `up` starts the agent with --default-policy deny, and the chain works only
#   because deploy wrote an allow per declared upstream (`up --default-policy allow` for the seed's
#   original setting). `intent deny invoice tax` makes the order call fail; deleting it gives the
#   declared allow back.
#   The host reaches order only through the ingress gateway (services/ingress): the apps bind
#   127.0.0.1 in their namespaces and publish nothing; `intent deny ingress order` closes the door.
# Leaves the mesh running (web UI at http://127.0.0.1:8500/ui/); `.venv/bin/nomadmesh down` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
nm=.venv/bin/nomadmesh
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

step nomadmesh up
$nm up
# The agent keeps state across runs: put back the declared allows over a deny left by an interrupted run.
$nm deploy --reset-overrides >/dev/null

step nomadmesh intent list; $nm intent list   # the allows deploy derived from the declared upstreams

# The gateway's published listener: the mesh's one way in from the host.
order=$($nm status --json | .venv/bin/python -c \
  'import json, sys; print(next(j["addresses"][0] for j in json.load(sys.stdin) if j["job"] == "ingress"))')

call_order() {
  step curl "http://$order/"
  # A bounded wait: a fresh allow or deny reaches the sidecars within milliseconds.
  for _ in 1 2 3 4 5; do
    if curl -sS --max-time 5 -w 'HTTP %{http_code}\n' "http://$order/"; then return 0; fi
    sleep 1
  done
  return 1
}

call_refused() {
  step curl "http://$order/"
  # order's sidecar refuses the gateway's identity: the connection is closed, no answer.
  if curl -sS --max-time 5 "http://$order/"; then echo "unexpected: the gateway still reaches order"; return 1; fi
  echo "(refused: order's sidecar denies the gateway)"
}

call_order
step nomadmesh intent check order invoice; $nm intent check order invoice
step nomadmesh intent check invoice tax;   $nm intent check invoice tax || true

step nomadmesh intent deny invoice tax
$nm intent deny invoice tax
sleep 0.2
call_order   # now 502: invoice's sidecar refuses to connect to tax (Envoy RBAC on tax's public listener)

step nomadmesh intent delete invoice tax
$nm intent delete invoice tax
sleep 0.2
call_order   # the chain works again: the delete gave the declared allow back

step nomadmesh intent deny ingress order
$nm intent deny ingress order
sleep 0.2
call_refused   # the gateway is a source like any other: order's sidecar closes its connection

step nomadmesh intent delete ingress order
$nm intent delete ingress order
sleep 0.2
call_order   # open again

step nomadmesh status
$nm status
cat <<TXT

The mesh is still running:
  web UI:       http://127.0.0.1:8500/ui/
  call order:   curl http://$order/   (through the ingress gateway)
  stop it all:  .venv/bin/nomadmesh down
TXT
