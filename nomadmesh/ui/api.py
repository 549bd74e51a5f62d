"""The UI's only I/O: reads from the Nomad and Consul HTTP APIs of a `Target`, nothing else.

Reads go through the product's one client per API (`deploy.nomad_api.NomadAPI`,
`deploy.consul_api.ConsulAPI`) with the target's token and TLS settings, so the UI works the same
against the dev agent and a real cluster. `get` returns the decoded JSON and the blocking index
(`X-Consul-Index` / `X-Nomad-Index`); `wait_index` is one blocking query. Failures become the
clients' `TargetError` naming the address, never a traceback in the page.
"""
from __future__ import annotations

from dataclasses import dataclass

from nomadmesh.deploy.consul_api import ConsulAPI
from nomadmesh.deploy.http_api import READ_TIMEOUT_S, HttpApi, Reply
from nomadmesh.deploy.nomad_api import NomadAPI
from nomadmesh.deploy.target import Target

ApiClient = HttpApi  # what the UI needs of either client: get, wait_index, session, endpoint
__all__ = ["READ_TIMEOUT_S", "ApiClient", "Apis", "Reply", "apis_for"]


@dataclass
class Apis:
    consul: ConsulAPI
    nomad: NomadAPI

    def close(self) -> None:
        self.consul.close()
        self.nomad.close()


def apis_for(target: Target) -> Apis:
    return Apis(consul=ConsulAPI(target), nomad=NomadAPI(target))
