"""The Job's shape, declared once: which API fields exist, their types, their HCL names.

One table drives three things, so they cannot drift apart:
- decoding HCL (`hcl` is the attribute/block name in the jobspec),
- checking Job JSON (`from_json`: unknown field or wrong type → error naming the path),
- filling every field in `canonicalize` (`zero` is the Go zero value of non-pointer fields; pointer,
  map and slice fields that nobody set stay None, as Nomad's JSON has them `null`).

Field kinds: str, int, bool, dur (Go duration: integer nanoseconds), strs (list of str), smap
(map str→str), any (free-form map: driver config, proxy config), hdr (map str→list of str), obj
(one nested object), objs (list of nested objects), omap (map of nested objects by name: labelled
blocks in HCL, `volume "data" {}`), unsupported (API field we accept only when empty/null, and whose
HCL block we reject by name).
"""
from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

NONE: Any = None


@dataclass(frozen=True)
class Field:
    api: str
    kind: str
    hcl: str | None = None
    obj: str | None = None
    zero: Any = NONE


def F(api: str, kind: str, hcl: str | None = None, obj: str | None = None, zero: Any = NONE) -> Field:
    return Field(api, kind, hcl, obj, zero)


def U(api: str, hcl: str | None = None) -> Field:
    """A field Nomad has and this agent does not implement."""
    return Field(api, "unsupported", hcl)


OBJECTS: dict[str, list[Field]] = {
    "Job": [
        F("Region", "str", "region"), F("Namespace", "str", "namespace"), F("ID", "str", "id"),
        F("Name", "str", "name"), F("Type", "str", "type"), F("Priority", "int", "priority"),
        F("AllAtOnce", "bool", "all_at_once"), F("Datacenters", "strs", "datacenters"),
        F("NodePool", "str", "node_pool"),
        F("Constraints", "objs", "constraint", "Constraint"), F("Affinities", "objs", "affinity", "Affinity"),
        F("TaskGroups", "objs", "group", "TaskGroup"), F("Update", "obj", "update", "Update"),
        U("Multiregion", "multiregion"), U("Spreads", "spread"), U("Periodic", "periodic"),
        F("ParameterizedJob", "obj", "parameterized", "ParameterizedJobConfig"),
        F("Reschedule", "obj", "reschedule", "ReschedulePolicy"),
        F("Migrate", "obj", "migrate", "Migrate"), F("Meta", "smap", "meta"),
        F("ConsulToken", "str"), F("VaultToken", "str"), F("ConsulNamespace", "str"),
        F("VaultNamespace", "str"), F("NomadTokenID", "str"), U("UI", "ui"), U("Vault", "vault"),
        F("Stop", "bool"), F("ParentID", "str"), F("Dispatched", "bool", zero=False), F("Payload", "str"),
        F("DispatchIdempotencyToken", "str"),
        F("Status", "str"), F("StatusDescription", "str"), F("Stable", "bool"), F("Version", "int"),
        F("SubmitTime", "int"), F("CreateIndex", "int"), F("ModifyIndex", "int"),
        F("JobModifyIndex", "int"),
    ],
    "TaskGroup": [
        F("Name", "str"), F("Count", "int", "count"),
        F("Constraints", "objs", "constraint", "Constraint"), F("Affinities", "objs", "affinity", "Affinity"),
        F("Tasks", "objs", "task", "Task"), U("Spreads", "spread"), F("Volumes", "omap", "volume", "VolumeRequest"),
        F("RestartPolicy", "obj", "restart", "RestartPolicy"), U("Disconnect", "disconnect"),
        F("ReschedulePolicy", "obj", "reschedule", "ReschedulePolicy"),
        F("EphemeralDisk", "obj", "ephemeral_disk", "EphemeralDisk"),
        F("Update", "obj", "update", "Update"), F("Migrate", "obj", "migrate", "Migrate"),
        F("Networks", "objs", "network", "Network"), F("Meta", "smap", "meta"),
        F("Services", "objs", "service", "Service"), F("ShutdownDelay", "dur", "shutdown_delay"),
        U("StopAfterClientDisconnect", "stop_after_client_disconnect"),
        U("MaxClientDisconnect", "max_client_disconnect"), U("Scaling", "scaling"),
        U("Consul", "consul"), U("PreventRescheduleOnLost", "prevent_reschedule_on_lost"),
    ],
    "Task": [
        F("Name", "str", zero=""), F("Driver", "str", "driver", zero=""), F("User", "str", "user", zero=""),
        F("Lifecycle", "obj", "lifecycle", "Lifecycle"), F("Config", "any", "config"),
        F("Constraints", "objs", "constraint", "Constraint"), F("Affinities", "objs", "affinity", "Affinity"),
        F("Env", "smap", "env"), F("Services", "objs", "service", "Service"),
        F("Resources", "obj", "resources", "Resources"), F("RestartPolicy", "obj", "restart", "RestartPolicy"),
        F("Meta", "smap", "meta"), F("KillTimeout", "dur", "kill_timeout"),
        F("LogConfig", "obj", "logs", "LogConfig"), F("Artifacts", "objs", "artifact", "Artifact"),
        F("Vault", "obj", "vault", "Vault"), U("Consul", "consul"), F("Templates", "objs", "template", "Template"),
        F("DispatchPayload", "obj", "dispatch_payload", "DispatchPayloadConfig"),
        F("VolumeMounts", "objs", "volume_mount", "VolumeMount"), U("CSIPluginConfig", "csi_plugin"),
        F("Leader", "bool", "leader", zero=False),
        F("ShutdownDelay", "dur", "shutdown_delay", zero=0), F("KillSignal", "str", "kill_signal", zero=""),
        F("Kind", "str", "kind", zero=""), U("ScalingPolicies", "scaling"), U("Secrets", "secret"),
        U("Identity", "identity"), U("Identities"), U("Actions", "action"), U("Schedule", "schedule"),
    ],
    "Constraint": [
        F("LTarget", "str", "attribute", zero=""), F("RTarget", "str", "value", zero=""),
        F("Operand", "str", "operator", zero=""),
    ],
    "ParameterizedJobConfig": [
        F("Payload", "str", "payload"), F("MetaRequired", "strs", "meta_required"),
        F("MetaOptional", "strs", "meta_optional"),
    ],
    "DispatchPayloadConfig": [F("File", "str", "file", zero="")],
    "VolumeRequest": [
        F("Name", "str", zero=""), F("Type", "str", "type", zero=""), F("Source", "str", "source", zero=""),
        F("ReadOnly", "bool", "read_only", zero=False), F("Sticky", "bool", "sticky", zero=False),
        F("AccessMode", "str", "access_mode", zero=""), F("AttachmentMode", "str", "attachment_mode", zero=""),
        U("MountOptions", "mount_options"), F("PerAlloc", "bool", "per_alloc", zero=False),
    ],
    "VolumeMount": [
        F("Volume", "str", "volume", zero=""), F("Destination", "str", "destination", zero=""),
        F("ReadOnly", "bool", "read_only", zero=False), F("PropagationMode", "str", "propagation_mode"),
        F("SELinuxLabel", "str", "selinux_label", zero=""),
    ],
    "Update": [
        F("Stagger", "dur", "stagger"), F("MaxParallel", "int", "max_parallel"),
        F("HealthCheck", "str", "health_check"), F("MinHealthyTime", "dur", "min_healthy_time"),
        F("HealthyDeadline", "dur", "healthy_deadline"), F("ProgressDeadline", "dur", "progress_deadline"),
        F("Canary", "int", "canary"), F("AutoRevert", "bool", "auto_revert"),
        F("AutoPromote", "bool", "auto_promote"),
    ],
    "RestartPolicy": [
        F("Interval", "dur", "interval"), F("Attempts", "int", "attempts"), F("Delay", "dur", "delay"),
        F("Mode", "str", "mode"), F("RenderTemplates", "bool", "render_templates"),
    ],
    "ReschedulePolicy": [
        F("Attempts", "int", "attempts"), F("Interval", "dur", "interval"), F("Delay", "dur", "delay"),
        F("DelayFunction", "str", "delay_function"), F("MaxDelay", "dur", "max_delay"),
        F("Unlimited", "bool", "unlimited"),
    ],
    "Migrate": [
        F("MaxParallel", "int", "max_parallel"), F("HealthCheck", "str", "health_check"),
        F("MinHealthyTime", "dur", "min_healthy_time"), F("HealthyDeadline", "dur", "healthy_deadline"),
    ],
    "EphemeralDisk": [
        F("Sticky", "bool", "sticky"), F("Migrate", "bool", "migrate"), F("SizeMB", "int", "size"),
    ],
    "Network": [
        F("Mode", "str", "mode", zero=""), F("Device", "str", "device", zero=""),
        F("CIDR", "str", "cidr", zero=""), F("IP", "str", "ip", zero=""),
        F("Hostname", "str", "hostname", zero=""), F("MBits", "int", "mbits", zero=0),
        F("DNS", "obj", "dns", "DNS"), F("ReservedPorts", "objs", None, "Port"),
        F("DynamicPorts", "objs", None, "Port"), U("CNI", "cni"),
    ],
    "Port": [
        F("Label", "str", zero=""), F("Value", "int", "static", zero=0), F("To", "int", "to", zero=0),
        F("HostNetwork", "str", "host_network", zero=""), U("IgnoreCollision", "ignore_collision"),
    ],
    "DNS": [F("Servers", "strs", "servers"), F("Searches", "strs", "searches"), F("Options", "strs", "options")],
    "Service": [
        F("Name", "str", "name", zero=""), F("Tags", "strs", "tags"), F("CanaryTags", "strs", "canary_tags"),
        F("EnableTagOverride", "bool", "enable_tag_override", zero=False),
        F("PortLabel", "str", "port", zero=""), F("AddressMode", "str", "address_mode", zero=""),
        F("Address", "str", "address", zero=""), F("Checks", "objs", "check", "Check"),
        F("CheckRestart", "obj", "check_restart", "CheckRestart"),
        F("Connect", "obj", "connect", "Connect"), F("Meta", "smap", "meta"),
        F("CanaryMeta", "smap", "canary_meta"), F("TaggedAddresses", "smap", "tagged_addresses"),
        F("TaskName", "str", "task", zero=""), F("OnUpdate", "str", "on_update", zero=""),
        U("Identity", "identity"), U("Weights", "weights"), F("Provider", "str", "provider", zero=""),
        F("Cluster", "str", "cluster", zero=""),
    ],
    "Check": [
        F("Name", "str", "name", zero=""), F("Type", "str", "type", zero=""),
        F("Command", "str", "command", zero=""), F("Args", "strs", "args"),
        F("Path", "str", "path", zero=""), F("Protocol", "str", "protocol", zero=""),
        F("PortLabel", "str", "port", zero=""), F("Expose", "bool", "expose", zero=False),
        F("AddressMode", "str", "address_mode", zero=""), F("Advertise", "str", "advertise", zero=""),
        F("Interval", "dur", "interval", zero=0), F("Timeout", "dur", "timeout", zero=0),
        F("InitialStatus", "str", "initial_status", zero=""), F("Notes", "str", "notes", zero=""),
        F("TLSServerName", "str", "tls_server_name", zero=""),
        F("TLSSkipVerify", "bool", "tls_skip_verify", zero=False), F("Header", "hdr", "header"),
        F("Method", "str", "method", zero=""), F("CheckRestart", "obj", "check_restart", "CheckRestart"),
        F("GRPCService", "str", "grpc_service", zero=""), F("GRPCUseTLS", "bool", "grpc_use_tls", zero=False),
        F("TaskName", "str", "task", zero=""),
        F("SuccessBeforePassing", "int", "success_before_passing", zero=0),
        F("FailuresBeforeCritical", "int", "failures_before_critical", zero=0),
        F("FailuresBeforeWarning", "int", "failures_before_warning", zero=0),
        F("Body", "str", "body", zero=""), F("OnUpdate", "str", "on_update", zero=""),
    ],
    "CheckRestart": [
        F("Limit", "int", "limit", zero=0), F("Grace", "dur", "grace"),
        F("IgnoreWarnings", "bool", "ignore_warnings", zero=False),
    ],
    "Connect": [
        F("Native", "bool", "native", zero=False), F("Gateway", "obj", "gateway", "ConsulGateway"),
        F("SidecarService", "obj", "sidecar_service", "SidecarService"),
        F("SidecarTask", "obj", "sidecar_task", "SidecarTask"),
    ],
    # Connect gateways: only `ingress` is implemented (terminating and mesh gateways stay refused).
    "ConsulGateway": [
        F("Proxy", "obj", "proxy", "ConsulGatewayProxy"), F("Ingress", "obj", "ingress", "ConsulIngressConfigEntry"),
        U("Terminating", "terminating"), U("Mesh", "mesh"),
    ],
    "ConsulGatewayProxy": [
        F("ConnectTimeout", "dur", "connect_timeout"),
        F("EnvoyGatewayBindTaggedAddresses", "bool", "envoy_gateway_bind_tagged_addresses", zero=False),
        # A map of name -> {Address, Port}; HCL writes it as labelled blocks, which only JSON takes here.
        F("EnvoyGatewayBindAddresses", "any"),
        F("EnvoyGatewayNoDefaultBind", "bool", "envoy_gateway_no_default_bind", zero=False),
        F("EnvoyDNSDiscoveryType", "str", "envoy_dns_discovery_type", zero=""), F("Config", "any", "config"),
    ],
    "ConsulIngressConfigEntry": [U("TLS", "tls"), F("Listeners", "objs", "listener", "ConsulIngressListener")],
    "ConsulIngressListener": [
        F("Port", "int", "port", zero=0), F("Protocol", "str", "protocol", zero=""),
        F("Services", "objs", "service", "ConsulIngressService"),
    ],
    "ConsulIngressService": [
        F("Name", "str", "name", zero=""), F("Hosts", "strs", "hosts"), U("TLS", "tls"),
        U("RequestHeaders", "request_headers"), U("ResponseHeaders", "response_headers"),
        U("MaxConnections", "max_connections"), U("MaxPendingRequests", "max_pending_requests"),
        U("MaxConcurrentRequests", "max_concurrent_requests"),
    ],
    "SidecarService": [
        F("Tags", "strs", "tags"), F("Port", "str", "port", zero=""), F("Proxy", "obj", "proxy", "Proxy"),
        F("DisableDefaultTCPCheck", "bool", "disable_default_tcp_check", zero=False),
        F("Meta", "smap", "meta"),
    ],
    "Proxy": [
        F("LocalServiceAddress", "str", "local_service_address", zero=""),
        F("LocalServicePort", "int", "local_service_port", zero=0),
        F("Expose", "obj", "expose", "Expose"), U("ExposeConfig"),
        F("Upstreams", "objs", "upstreams", "Upstream"), U("TransparentProxy", "transparent_proxy"),
        F("Config", "any", "config"),
    ],
    "Expose": [F("Paths", "objs", "path", "ExposePath"), U("Path")],
    "ExposePath": [
        F("Path", "str", "path", zero=""), F("Protocol", "str", "protocol", zero=""),
        F("LocalPathPort", "int", "local_path_port", zero=0), F("ListenerPort", "str", "listener_port", zero=""),
    ],
    "Upstream": [
        F("DestinationName", "str", "destination_name", zero=""),
        F("DestinationNamespace", "str", "destination_namespace", zero=""),
        U("DestinationPeer", "destination_peer"), U("DestinationPartition", "destination_partition"),
        U("DestinationType", "destination_type"),
        F("LocalBindPort", "int", "local_bind_port", zero=0), F("Datacenter", "str", "datacenter", zero=""),
        F("LocalBindAddress", "str", "local_bind_address", zero=""),
        U("LocalBindSocketPath", "local_bind_socket_path"), U("LocalBindSocketMode", "local_bind_socket_mode"),
        F("MeshGateway", "obj", "mesh_gateway", "MeshGateway"), F("Config", "any", "config"),
    ],
    "MeshGateway": [F("Mode", "str", "mode", zero="")],
    "SidecarTask": [
        F("Name", "str", "name", zero=""), F("Driver", "str", "driver", zero=""),
        F("User", "str", "user", zero=""), F("Config", "any", "config"), F("Env", "smap", "env"),
        F("Resources", "obj", "resources", "Resources"), F("Meta", "smap", "meta"),
        F("KillTimeout", "dur", "kill_timeout"), F("LogConfig", "obj", "logs", "LogConfig"),
        F("ShutdownDelay", "dur", "shutdown_delay"), F("KillSignal", "str", "kill_signal", zero=""),
        U("VolumeMounts", "volume_mount"),
    ],
    "Resources": [
        F("CPU", "int", "cpu"), F("Cores", "int", "cores"), F("MemoryMB", "int", "memory"),
        F("MemoryMaxMB", "int", "memory_max"), F("DiskMB", "int"), U("Networks", "network"),
        U("Devices", "device"), U("IOPS"), U("NUMA", "numa"), U("SecretsMB", "secrets"),
    ],
    "Vault": [
        F("Policies", "strs", "policies"), F("Role", "str", "role", zero=""), F("Namespace", "str", "namespace"),
        F("Cluster", "str", "cluster", zero=""), F("Env", "bool", "env"), F("DisableFile", "bool", "disable_file"),
        F("ChangeMode", "str", "change_mode"), F("ChangeSignal", "str", "change_signal"),
        F("AllowTokenExpiration", "bool", "allow_token_expiration"),
    ],
    "Affinity": [
        F("LTarget", "str", "attribute", zero=""), F("RTarget", "str", "value", zero=""),
        F("Operand", "str", "operator", zero=""), F("Weight", "int", "weight"),
    ],
    "Lifecycle": [F("Hook", "str", "hook", zero=""), F("Sidecar", "bool", "sidecar", zero=False)],
    "LogConfig": [
        F("MaxFiles", "int", "max_files"), F("MaxFileSizeMB", "int", "max_file_size"),
        F("Enabled", "bool", "enabled"), F("Disabled", "bool", "disabled"),
    ],
    "Artifact": [
        F("GetterSource", "str", "source"), F("GetterOptions", "smap", "options"),
        F("GetterHeaders", "smap", "headers"), F("GetterMode", "str", "mode"),
        F("GetterInsecure", "bool", "insecure"), F("RelativeDest", "str", "destination"),
        F("Chown", "bool", "chown", zero=False),
    ],
    "Template": [
        F("SourcePath", "str", "source"), F("DestPath", "str", "destination"),
        F("EmbeddedTmpl", "str", "data"), F("ChangeMode", "str", "change_mode"),
        U("ChangeScript", "change_script"), F("ChangeSignal", "str", "change_signal"),
        F("Once", "bool", "once"), F("Splay", "dur", "splay"), F("Perms", "str", "perms"),
        F("Uid", "int", "uid"), F("Gid", "int", "gid"), F("LeftDelim", "str", "left_delimiter"),
        F("RightDelim", "str", "right_delimiter"), F("Envvars", "bool", "env"),
        F("VaultGrace", "dur"), U("Wait", "wait"), F("ErrMissingKey", "bool", "error_on_missing_key"),
    ],
}

# The name each object goes by in plan diffs (Nomad's ObjectDiff names).
DIFF_NAMES: dict[str, str] = {
    "Constraint": "Constraint", "Affinity": "Affinity", "Update": "Update", "RestartPolicy": "RestartPolicy",
    "ReschedulePolicy": "ReschedulePolicy", "Migrate": "Migrate", "EphemeralDisk": "EphemeralDisk",
    "Network": "Network", "Port": "Port", "DNS": "DNS", "Service": "Service", "Check": "Check",
    "CheckRestart": "CheckRestart", "Connect": "ConsulConnect", "SidecarService": "SidecarService",
    "Proxy": "ConsulProxy", "Expose": "Expose", "ExposePath": "Paths", "Upstream": "ConsulUpstreams",
    "MeshGateway": "MeshGateway", "ConsulGateway": "Gateway", "ConsulGatewayProxy": "Proxy",
    "ConsulIngressConfigEntry": "Ingress", "ConsulIngressListener": "Listeners",
    "ConsulIngressService": "ConsulIngressService",
    "SidecarTask": "SidecarTask", "Resources": "Resources",
    "Lifecycle": "Lifecycle", "LogConfig": "LogConfig", "Artifact": "Artifact", "Template": "Template",
    "Vault": "Vault",
}


def fields(obj: str) -> list[Field]:
    return OBJECTS[obj]


def by_api(obj: str) -> dict[str, Field]:
    return {f.api: f for f in OBJECTS[obj]}


@functools.cache  # asked for every block of every job decoded
def by_hcl(obj: str) -> Mapping[str, Field]:
    return {f.hcl: f for f in OBJECTS[obj] if f.hcl}


# The HCL names of blocks and attributes Nomad has and this parser refuses (the `U` fields).
UNDECODED = frozenset(f.hcl for fields in OBJECTS.values() for f in fields if f.kind == "unsupported" and f.hcl)
