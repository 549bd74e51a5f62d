"""The dev agent's Consul half: what Consul's server and agent decide, without HTTP.

    catalog.py          Catalog: agent services and checks, registered, deregistered and health-checked
    service_defs.py     service definitions as Consul decodes them (any case, snake_case), expanded
                        into agent services, checks and sidecars (pure)
    config_entries.py   config entries as Consul decodes and validates them; protocol lookups (pure)
    chain_support.py    fields of resolver/splitter/router entries the agent's data plane cannot serve (pure)
    config_store.py     config entries in the state: CAS writes and deletes with Consul's protocol checks
    ingress_gateway.py  the `ingress-gateway` config entry: from a Nomad job, and as Consul validates it (pure)
    external.py         /v1/catalog/register: nodes, services and checks outside the agent
    sessions.py         sessions (TTL, behaviors, lock delay) and the KV locks they hold
    filter.py           `?filter=` expressions (go-bexpr grammar on Lark, RE2 regexes) per endpoint (pure)

The HTTP views in agent/http/consul_*.py parse a request, call one function here and shape the answer.
"""
