"""Consul Connect parts usable against any Consul agent (HashiCorp's or `nomadmesh agent --dev`).

    envoy.py        Envoy's bootstrap (pure), its command line, finding the binary, a process wrapper
    sidecar_for.py  `nomadmesh connect envoy --sidecar-for`: find a service's sidecar over Consul's
                    HTTP API and exec Envoy as it

Product code; it never imports `nomadmesh.agent` (the agent imports `envoy` from here).
"""
