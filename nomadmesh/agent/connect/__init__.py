"""Consul Connect's data plane for the dev agent.

    ca.py          Connect CA: persisted EC P-256 root, SPIFFE leaf certs, Consul's CA JSON
    identity.py    trust domain, SPIFFE IDs, SNI names (pure)
    snapshot.py    ProxySnapshot: everything one sidecar needs, immutable, content-versioned
    resources/     pure builders: ProxySnapshot -> {type_url: [Envoy messages]}
                   (listeners, clusters, endpoints (EDS), secrets (SDS), rbac)
    cache.py       SnapshotCache: consistency check, per-type versions, latest-wins watchers
    xds.py         XdsServer: state-of-the-world ADS over grpc.aio, TCP + unix socket
    proxies.py     pure: the agent's catalog, intentions and CA -> one ProxySnapshot per sidecar
    manager.py     ProxyManager: watches the state, rebuilds snapshots, signs and rotates leaves
    signer.py      LeafSigner: fresh leaves asked over HTTP signed in a child process, off the loop
    plane.py       ConnectRuntime: CA + manager + ADS server started and stopped with the agent
    admin_stats.py pure: Envoy admin stats -> the figures the web UI shows

Envoy's bootstrap and `connect envoy --sidecar-for` live outside the agent, in nomadmesh/connect;
the tests' builders (pinned CA, snapshots, backend) in tests/connect_support.py.

The agent feeds it: it builds a ProxySnapshot per sidecar from its catalog, intentions and CA, and
calls `SnapshotCache.set(proxy_id, snap)` whenever any of them changes; the ADS server pushes
the difference to the Envoy whose node id is `proxy_id`.
"""
