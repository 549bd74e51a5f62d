"""Bridge networking for allocations with Debian's standard CNI plugins, as Nomad sets it up.

Each allocation gets a network namespace (`ip netns add nm-<alloc8>` → /run/netns/nm-<alloc8>)
joined to a Linux bridge by the CNI chain Nomad generates (client/allocrunner/networking_bridge_linux.go):

    loopback → bridge (bridge "nomad", 172.26.64.0/20, ipMasq, isGateway, hairpin) → firewall
    (iptables, admin chain NOMAD-ADMIN) → portmap (runtimeConfig.portMappings, snat)

The plugins are run through the CNI exec protocol the way libcni does it: CNI_* variables, one
plugin config on stdin with `name`, `cniVersion`, the previous plugin's result as `prevResult` and
the runtimeConfig its capabilities ask for; DEL runs the chain in reverse with the ADD result.

Teardown must leave nothing behind even after a crash mid-setup, so every allocation's config and
result are recorded in the state dir before any change is made, and after CNI DEL a sweep removes
IP leases and iptables rules that still name the allocation (e.g. when the namespace vanished
before DEL could read its addresses). Shared chains (CNI-FORWARD, CNI-HOSTPORT-*, NOMAD-ADMIN)
and the bridge itself stay, as with Nomad; `remove_bridge()` deletes the bridge when it is unused.
Setup and teardown of one allocation never overlap (a job stopped while its network is being set
up), and `reconcile()` removes what stopped allocations of this agent still left on the host.
"""
from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nomadmesh.errors import AgentError

CNI_PATH = "/usr/lib/cni"
CNI_VERSION = "0.4.0"
NETNS_DIR = Path("/run/netns")
PLUGINS = ("loopback", "bridge", "host-local", "firewall", "portmap")
PLUGIN_TIMEOUT_S = 30


class NetworkError(AgentError):
    """Setting up or tearing down an allocation's network failed."""


@dataclass(frozen=True)
class PortMap:
    host_port: int
    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""  # the host address the mapping answers on; "" = every local address

    def to_cni(self) -> dict[str, Any]:
        """A portMappings entry; with hostIP, portmap's DNAT rule carries `-d <hostIP>`."""
        entry: dict[str, Any] = {"hostPort": self.host_port, "containerPort": self.container_port,
                                 "protocol": self.protocol}
        if self.host_ip:
            entry["hostIP"] = self.host_ip
        return entry


@dataclass(frozen=True)
class Netns:
    name: str
    path: str
    ip: str  # the allocation's address on the bridge, without prefix length


def build_conflist(bridge: str, subnet: str, ipam_dir: str, network_name: str = "nomad",
                   admin_chain: str = "NOMAD-ADMIN") -> dict[str, Any]:
    """The conflist Nomad generates for bridge networking, with our bridge, subnet and state dir."""
    return {
        "cniVersion": CNI_VERSION,
        "name": network_name,
        "plugins": [
            {"type": "loopback"},
            {
                "type": "bridge",
                "bridge": bridge,
                "ipMasq": True,
                "isGateway": True,
                "forceAddress": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": subnet}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": ipam_dir,
                },
            },
            {"type": "firewall", "backend": "iptables", "iptablesAdminChainName": admin_chain},
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
        ],
    }


def plugin_config(conflist: dict[str, Any], plugin: dict[str, Any], prev_result: dict[str, Any] | None,
                  runtime_config: dict[str, Any]) -> dict[str, Any]:
    """One plugin's stdin, as libcni's buildOneConfig makes it."""
    conf = dict(plugin)
    conf["name"] = conflist["name"]
    conf["cniVersion"] = conflist["cniVersion"]
    if prev_result is not None:
        conf["prevResult"] = prev_result
    caps = plugin.get("capabilities") or {}
    wanted = {k: v for k, v in runtime_config.items() if caps.get(k)}
    if wanted:
        conf["runtimeConfig"] = wanted
    return conf


def result_ip(result: dict[str, Any] | None) -> str:
    """The first IPv4 address in a CNI result, without its prefix length."""
    for entry in (result or {}).get("ips", []):
        addr = str(entry.get("address", ""))
        if addr and ipaddress.ip_interface(addr).version == 4 and not addr.startswith("127."):
            return str(ipaddress.ip_interface(addr).ip)
    return ""


class BridgeNetwork:
    def __init__(self, state_dir: Path, bridge: str = "nomad", subnet: str = "172.26.64.0/20",
                 network_name: str = "nomad", cni_path: str = CNI_PATH, netns_prefix: str = "nm-",
                 admin_chain: str = "NOMAD-ADMIN"):
        if len(bridge) > 15:
            raise ValueError(f"bridge name {bridge!r} is longer than Linux's 15 characters")
        ipaddress.ip_network(subnet)  # fail early on a bad subnet
        self.state_dir = Path(state_dir)
        self.bridge = bridge
        self.subnet = subnet
        self.network_name = network_name
        self.cni_path = cni_path
        self.netns_prefix = netns_prefix
        self.ipam_dir = self.state_dir / "ipam"
        self.records_dir = self.state_dir / "allocs"
        self.conflist = build_conflist(bridge, subnet, str(self.ipam_dir), network_name, admin_chain)
        self._cond = threading.Condition()
        self._busy: set[str] = set()  # allocations whose setup or teardown runs now
        self._live: set[str] = set()  # allocations this process set up and has not torn down

    # --- public API ---------------------------------------------------------------------------

    def available(self) -> str | None:
        """None if bridge networking can work here, else the reason it cannot."""
        if os.geteuid() != 0:
            return "bridge networking needs root (network namespaces, iptables); run as root or use host mode"
        missing = [p for p in PLUGINS if not os.access(os.path.join(self.cni_path, p), os.X_OK)]
        if missing:
            return (f"CNI plugins missing in {self.cni_path}: {', '.join(missing)} "
                    f"(install Debian's containernetworking-plugins)")
        for tool in ("iptables", "ip"):
            if shutil.which(tool) is None:
                return f"{tool} not found in PATH (install iptables and iproute2)"
        return None

    def netns_name(self, alloc_id: str) -> str:
        return f"{self.netns_prefix}{alloc_id[:8]}"

    def setup(self, alloc_id: str, port_maps: list[PortMap] | tuple[PortMap, ...] = ()) -> Netns:
        """Create the allocation's namespace and run CNI ADD; on failure nothing is left behind."""
        reason = self.available()
        if reason:
            raise NetworkError(reason)
        with self._exclusive(alloc_id):
            name = self.netns_name(alloc_id)
            if (NETNS_DIR / name).exists() or self._record_path(alloc_id).exists():
                self._teardown(alloc_id)  # left over from a crash: start clean
            with self._cond:
                self._live.add(alloc_id)
            runtime = {"portMappings": [p.to_cni() for p in port_maps]}
            # Record before changing anything, so teardown can undo a half-done setup.
            self._write_record(alloc_id, {"netns": name, "runtimeConfig": runtime, "result": None})
            try:
                _run(["ip", "netns", "add", name])
                result = self._chain("ADD", alloc_id, str(NETNS_DIR / name), runtime, None)
            except NetworkError:
                self._teardown(alloc_id)
                raise
            ip = result_ip(result)
            self._write_record(alloc_id, {"netns": name, "runtimeConfig": runtime, "result": result})
            return Netns(name, str(NETNS_DIR / name), ip)

    def teardown(self, alloc_id: str) -> None:
        """CNI DEL with the recorded config, delete the namespace, sweep leftovers. Idempotent.

        Waits for a setup of the same allocation still in progress (a job stopped right after it
        was placed), so DEL sees the addresses and rules ADD made instead of racing it."""
        with self._exclusive(alloc_id):
            self._teardown(alloc_id)

    def _teardown(self, alloc_id: str) -> None:
        record = self._read_record(alloc_id)
        name = record.get("netns") or self.netns_name(alloc_id)
        path = NETNS_DIR / name
        runtime = record.get("runtimeConfig") or {"portMappings": []}
        result = record.get("result")
        errors: list[str] = []
        path_existed = path.exists()
        try:
            self._chain("DEL", alloc_id, str(path) if path.exists() else "", runtime, result)
        except NetworkError as e:
            errors.append(str(e))
        if path.exists():
            try:
                _run(["ip", "netns", "delete", name])
            except NetworkError as e:
                errors.append(str(e))
        leased = self._sweep_leases(alloc_id)
        # Matching by address is only a fallback for when DEL could not do its job: the address
        # goes back to the pool at DEL and may soon belong to another allocation.
        fallback_ip = (result_ip(result) or leased) if (errors or not path_existed or result is None) else ""
        self._sweep_iptables(alloc_id, fallback_ip)
        with self._cond:
            self._live.discard(alloc_id)
        if not errors:
            self._record_path(alloc_id).unlink(missing_ok=True)
        else:
            raise NetworkError(f"teardown of allocation {alloc_id}: " + "; ".join(errors))

    def teardown_orphans(self, keep_alloc_ids: set[str] | list[str]) -> list[str]:
        """Tear down every allocation network we hold a record of that is not in `keep`."""
        keep = set(keep_alloc_ids)
        gone: list[str] = []
        for alloc_id in self.recorded_alloc_ids():
            if alloc_id not in keep and not self._in_use(alloc_id):
                self.teardown(alloc_id)
                gone.append(alloc_id)
        return gone

    def reconcile(self, keep: set[str], known: set[str]) -> list[str]:
        """Remove what is left on the host of allocations that no longer run; returns what it found.

        `keep`: allocations whose network must stay. `known`: every allocation in this agent's
        state; those not kept, and recorded ones not kept, are stale. Only what provably belongs
        to this agent goes: namespaces with our prefix named after a stale allocation, rules whose
        CNI comment names our network and a stale allocation, forward rules for an address a stale
        allocation still leases in our IPAM dir, and those leases. Namespaces, rules and addresses
        of allocations we never knew stay: another agent sharing the default bridge, subnet and
        prefix may own them. Allocations whose setup or teardown runs right now are never touched.
        """
        gone = self.teardown_orphans(keep)
        stale = (set(known) | set(self.recorded_alloc_ids())) - keep
        # Read the host first and decide after: an allocation set up in between is in use by then.
        dumps = {table: _run(["iptables-save", "-t", table], check=False) for table in ("nat", "filter")}
        namespaces = sorted(p.name for p in NETNS_DIR.glob(f"{self.netns_prefix}*")) if NETNS_DIR.is_dir() else []
        leases = self._leases()
        dead = {a for a in stale if not self._in_use(a)}
        dead_names = {self.netns_name(a) for a in dead} - {self.netns_name(a) for a in keep | self._in_use_ids()}
        found: list[str] = []
        for name in namespaces:
            if name in dead_names:
                _run(["ip", "netns", "delete", name], check=False)
                found.append(f"netns {name}")
        doomed_ips: set[str] = set()
        for lease, owner in leases:
            if owner in dead:
                lease.unlink(missing_ok=True)
                doomed_ips.add(lease.name)
                found.append(f"lease {lease.name}")
        found += self._delete_rules(dumps, lambda owner: owner in dead, doomed_ips)
        return gone + found

    @contextmanager
    def _exclusive(self, alloc_id: str) -> Iterator[None]:
        """One setup or teardown per allocation at a time: wait for the other, then hold it."""
        with self._cond:
            while alloc_id in self._busy:
                self._cond.wait()
            self._busy.add(alloc_id)
        try:
            yield
        finally:
            with self._cond:
                self._busy.discard(alloc_id)
                self._cond.notify_all()

    def _in_use(self, alloc_id: str) -> bool:
        with self._cond:
            return alloc_id in self._live or alloc_id in self._busy

    def _in_use_ids(self) -> set[str]:
        with self._cond:
            return self._live | self._busy

    def recorded_alloc_ids(self) -> list[str]:
        if not self.records_dir.is_dir():
            return []
        return sorted(p.stem for p in self.records_dir.glob("*.json"))

    def remove_bridge(self) -> bool:
        """Delete the bridge if no allocation uses it any more; True if it was removed."""
        if self.recorded_alloc_ids():
            return False
        if not Path(f"/sys/class/net/{self.bridge}").exists():
            return False
        if any(Path(f"/sys/class/net/{self.bridge}/brif").iterdir()):
            return False  # another agent's allocations are still plugged into it
        _run(["ip", "link", "delete", self.bridge, "type", "bridge"], check=False)
        return True

    # --- CNI exec protocol ----------------------------------------------------------------------

    def _chain(self, command: str, alloc_id: str, netns: str, runtime: dict[str, Any],
               result: dict[str, Any] | None) -> dict[str, Any]:
        plugins = self.conflist["plugins"]
        if command == "ADD":
            prev: dict[str, Any] | None = None
            for plugin in plugins:
                prev = self._exec(command, alloc_id, netns, plugin_config(self.conflist, plugin, prev, runtime))
            return prev or {}
        errors = []
        for plugin in reversed(plugins):
            try:
                self._exec(command, alloc_id, netns, plugin_config(self.conflist, plugin, result, runtime))
            except NetworkError as e:  # keep going: the other plugins still have things to undo
                errors.append(str(e))
        if errors:
            raise NetworkError("; ".join(errors))
        return {}

    def _exec(self, command: str, alloc_id: str, netns: str, conf: dict[str, Any]) -> dict[str, Any]:
        plugin = conf["type"]
        env = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": alloc_id,
            "CNI_NETNS": netns,
            "CNI_IFNAME": "eth0",
            "CNI_PATH": self.cni_path,
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        }
        try:
            proc = subprocess.run([os.path.join(self.cni_path, plugin)], input=json.dumps(conf).encode(),
                                  env=env, capture_output=True, timeout=PLUGIN_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise NetworkError(f"CNI plugin {plugin} {command}: {e}") from None
        out = proc.stdout.decode(errors="replace").strip()
        if proc.returncode != 0:
            try:
                err = json.loads(out)
                msg = err.get("msg", out) + (f": {err['details']}" if err.get("details") else "")
            except (ValueError, AttributeError):
                msg = out or proc.stderr.decode(errors="replace").strip()
            raise NetworkError(f"CNI plugin {plugin} {command} for allocation {alloc_id}: {msg}")
        if command != "ADD" or not out:
            return {}
        return json.loads(out)

    # --- records and sweeps ---------------------------------------------------------------------

    def _record_path(self, alloc_id: str) -> Path:
        if "/" in alloc_id or alloc_id in ("", ".", ".."):
            raise ValueError(f"invalid allocation id {alloc_id!r}")
        return self.records_dir / f"{alloc_id}.json"

    def _write_record(self, alloc_id: str, record: dict[str, Any]) -> None:
        self.records_dir.mkdir(parents=True, exist_ok=True)
        path = self._record_path(alloc_id)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, path)  # atomic: a crash leaves the old or the new record, never half of one

    def _read_record(self, alloc_id: str) -> dict[str, Any]:
        try:
            return json.loads(self._record_path(alloc_id).read_text())
        except (OSError, ValueError):
            return {}

    def _leases(self) -> list[tuple[Path, str]]:
        """host-local's lease files (named after the address) with the container id they hold."""
        net_dir = self.ipam_dir / self.network_name
        if not net_dir.is_dir():
            return []
        leases = []
        for lease in net_dir.iterdir():
            if lease.name.startswith(("last_reserved_ip", "lock")):
                continue
            try:
                owner = lease.read_text().split()
            except OSError:
                continue
            leases.append((lease, owner[0] if owner else ""))
        return leases

    def _sweep_leases(self, alloc_id: str) -> str:
        """Drop this allocation's leases; returns the (last) address it held, or ""."""
        ip = ""
        for lease, owner in self._leases():
            if owner == alloc_id:
                lease.unlink(missing_ok=True)
                ip = lease.name
        return ip

    def _sweep_iptables(self, alloc_id: str, ip: str) -> None:
        """Delete rules that still name this allocation (by its CNI comment or its /32 address)."""
        dumps = {table: _run(["iptables-save", "-t", table], check=False) for table in ("nat", "filter")}
        # By id in any network: the allocation is ours by its record, and its id is unique.
        self._delete_rules(dumps, lambda owner: owner == alloc_id, {ip} if ip else set(), any_network=True)

    def _delete_rules(self, dumps: dict[str, str], doomed_owner: Callable[[str], bool],
                      doomed_ips: set[str], any_network: bool = False) -> list[str]:
        """Delete the rules in `dumps` (iptables-save per table) that CNI made for a doomed
        allocation of our network (comment `name: "<network>" id: "<alloc>"`), or that the
        firewall plugin made in CNI-FORWARD for a doomed address; then the chains they jumped to."""
        deleted: list[str] = []
        net_name = None if any_network else self.network_name
        for table, dump in dumps.items():
            own_chains: set[str] = set()
            doomed: list[list[str]] = []
            for line in dump.splitlines():
                if not line.startswith("-A "):
                    continue
                owner = cni_rule_owner(line, net_name)
                mine = (owner is not None and doomed_owner(owner)) or (
                    line.startswith("-A CNI-FORWARD ") and any(f" {ip}/32 " in f"{line} " for ip in doomed_ips))
                if mine:
                    args = shlex.split(line)
                    doomed.append(args)
                    if "-j" in args:
                        target = args[args.index("-j") + 1]
                        if target.startswith("CNI-") and target not in ("CNI-FORWARD",) \
                                and not target.startswith("CNI-HOSTPORT-"):
                            own_chains.add(target)
            for args in doomed:
                _run(["iptables", "-t", table, "-D", *args[1:]], check=False)
                deleted.append(f"{table} {' '.join(args)}")
            for chain in own_chains:
                _run(["iptables", "-t", table, "-F", chain], check=False)
                _run(["iptables", "-t", table, "-X", chain], check=False)
        return deleted


_CNI_COMMENT = re.compile(r'name: \\?"([^"\\]*)\\?" id: \\?"([^"\\]*)\\?"')


def cni_rule_owner(line: str, network_name: str | None) -> str | None:
    """The container id in a CNI plugin's rule comment (`name: "<net>" id: "<id>"`, as
    iptables-save prints it) when the rule belongs to `network_name` (any network if None)."""
    m = _CNI_COMMENT.search(line)
    return m.group(2) if m and network_name in (None, m.group(1)) else None


def _run(argv: list[str], check: bool = True) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=PLUGIN_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as e:
        if check:
            raise NetworkError(f"{' '.join(argv)}: {e}") from None
        return ""
    if check and proc.returncode != 0:
        raise NetworkError(f"{' '.join(argv)}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout.decode(errors="replace")
