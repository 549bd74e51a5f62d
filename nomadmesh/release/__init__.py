"""`nomadmesh release`: ship a service's new version as Nomad canaries, shift traffic to it step by
step through the mesh (a Consul service-resolver with `stable`/`canary` subsets and a
service-splitter), watch each version's figures from its sidecars, and promote or roll back.

Pure in the middle, I/O at the edges:

    options.py    --steps / --interval / --max-error-rate / --max-p99 parsed and checked
    decide.py     one step's verdict from the versions' figures: advance, wait, promote, rollback
    metrics.py    Envoy's Prometheus text → counters; two reads → a version's figures over an interval
    entries.py    the resolver and splitter the release writes, and the resolver it restores
    target.py     the I/O: Nomad deployment, Consul entries (check-and-set), sidecar stats
    controller.py the loop: checks, deploy the canaries, shift, watch, decide, finish
"""
