"""Bridge networking with the real CNI plugins: namespaces, port maps, and nothing left behind.

Each test uses its own bridge (`nmt<random>`), /24 subnet, network name and namespace prefix, so it
never touches Nomad's `nomad` bridge or another test's allocations.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from nomadmesh.agent.runtime.cni import NETNS_DIR, BridgeNetwork, PortMap, build_conflist, cni_rule_owner, plugin_config
from nomadmesh.agent.runtime.process import TaskProcess, TaskSpec
from support.net import free_port
from support.paths import REPO

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: creates network namespaces, a bridge and iptables rules"),
]


def sh(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout


def http_get(url: str, timeout: float = 10.0) -> str:
    """GET with retries until `timeout` (the server in the namespace needs a moment to listen)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while True:
        try:
            with opener.open(url, timeout=2) as r:
                return r.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture
def net(tmp_path: Path) -> Iterator[BridgeNetwork]:
    tag = f"{random.randrange(16**6):06x}"
    octet = random.randrange(1, 250)
    n = BridgeNetwork(tmp_path / "cni", bridge=f"nmt{tag}", subnet=f"10.{octet}.{random.randrange(1, 250)}.0/24",
                      network_name=f"nmt{tag}", netns_prefix=f"nmt{tag[:3]}-")
    try:
        yield n
    finally:
        for alloc_id in n.recorded_alloc_ids():
            n.teardown(alloc_id)
        n.teardown_orphans(set())
        n.remove_bridge()
        assert not Path(f"/sys/class/net/{n.bridge}").exists()


def leftovers(n: BridgeNetwork, alloc_ids: list[str], ips: list[str] | None = None) -> list[str]:
    """Everything on the host that still belongs to these allocations: by id and, with `ips`, by
    their addresses; without `ips`, anything at all in the test network's subnet or name."""
    found = []
    markers = [f"{ip}/32" for ip in ips] + [f"{ip}:" for ip in ips] if ips is not None \
        else [n.subnet.rsplit(".", 1)[0] + ".", n.network_name]
    for line in sh("iptables-save").splitlines():
        if any(a in line for a in alloc_ids) or any(m in line for m in markers):
            found.append(f"iptables: {line}")
    names = {n.netns_name(a) for a in alloc_ids}
    found += [f"netns: {p.name}" for p in NETNS_DIR.glob("*") if p.name in names]
    for line in sh("ip", "-o", "link").splitlines():
        if (ips is None and f"master {n.bridge}" in line) or any(f"link-netns {name}" in line for name in names):
            found.append(f"link: {line}")
    lease_dir = n.ipam_dir / n.network_name
    if lease_dir.is_dir():
        found += [f"lease: {p.name}" for p in lease_dir.iterdir()
                  if not p.name.startswith(("lock", "last_reserved_ip")) and p.read_text().split()[0] in alloc_ids]
    return found


def test_conflist_is_the_one_nomad_generates() -> None:
    conf = build_conflist("nomad", "172.26.64.0/20", "/var/lib/nm/ipam")
    assert conf["cniVersion"] == "0.4.0" and conf["name"] == "nomad"
    assert [p["type"] for p in conf["plugins"]] == ["loopback", "bridge", "firewall", "portmap"]
    bridge = conf["plugins"][1]
    assert {k: bridge[k] for k in ("bridge", "ipMasq", "isGateway", "forceAddress", "hairpinMode")} == {
        "bridge": "nomad", "ipMasq": True, "isGateway": True, "forceAddress": True, "hairpinMode": True}
    assert bridge["ipam"]["ranges"] == [[{"subnet": "172.26.64.0/20"}]]
    assert bridge["ipam"]["routes"] == [{"dst": "0.0.0.0/0"}]
    assert conf["plugins"][2] == {"type": "firewall", "backend": "iptables", "iptablesAdminChainName": "NOMAD-ADMIN"}
    portmap = plugin_config(conf, conf["plugins"][3], {"ips": []},
                            {"portMappings": [PortMap(8080, 80).to_cni()], "bandwidth": {}})
    assert portmap["runtimeConfig"] == {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}
    assert portmap["prevResult"] == {"ips": []} and portmap["name"] == "nomad" and portmap["snat"] is True
    assert "runtimeConfig" not in plugin_config(conf, conf["plugins"][1], None, {"portMappings": []})
    assert PortMap(8080, 80, host_ip="127.0.0.1").to_cni() == {
        "hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "127.0.0.1"}


def test_cni_rule_owner_reads_the_plugins_comment_for_one_network() -> None:
    rule = ('-A POSTROUTING -s 10.1.2.3/32 -m comment --comment "name: \\"nomad\\" id: \\"a1b2\\"" '
            '-j CNI-5b6ec3abec81b9b4bd2611a2')
    assert cni_rule_owner(rule, "nomad") == "a1b2"
    assert cni_rule_owner(rule.replace("-A POSTROUTING", "-A CNI-HOSTPORT-DNAT").replace('"name', '"dnat name'),
                          "nomad") == "a1b2"
    assert cni_rule_owner(rule, "nmt123") is None
    assert cni_rule_owner(rule, None) == "a1b2"  # any network
    assert cni_rule_owner("-A CNI-FORWARD -s 10.1.2.3/32 -j ACCEPT", "nomad") is None


def test_two_allocations_reachable_by_host_port_and_bridge_ip_then_nothing_left(net: BridgeNetwork,
                                                                                  tmp_path: Path) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    host_port = free_port()
    ns_a = net.setup(a, [PortMap(host_port, 8080)])
    ns_b = net.setup(b, [])
    assert Path(ns_a.path).exists() and ns_a.name == net.netns_name(a)
    assert ns_a.ip != ns_b.ip and ns_a.ip.startswith(net.subnet.rsplit(".", 1)[0])
    # The same container port in both namespaces: they are isolated from each other and the host.
    servers = []
    for alloc, ns in ((a, ns_a), (b, ns_b)):
        code = f"import http.server as h\nclass H(h.BaseHTTPRequestHandler):\n def do_GET(s):\n" \
               f"  s.send_response(200); s.end_headers(); s.wfile.write(b'{alloc[:8]}')\n" \
               f" def log_message(s,*a): pass\nh.HTTPServer(('0.0.0.0', 8080), H).serve_forever()"
        spec = TaskSpec(name="web", argv=(sys.executable, "-c", code), env={"PATH": "/usr/bin:/bin"},
                        cwd=tmp_path, stdout_path=tmp_path / f"{alloc}.out", stderr_path=tmp_path / f"{alloc}.err",
                        netns_path=ns.path, kill_timeout_s=2)
        tp = TaskProcess(spec)
        tp.start()
        servers.append(tp)
    try:
        # host → allocation A through the mapped host port on loopback: portmap's snat marks the
        # hairpin and enables route_localnet on the bridge; the bridge plugin turns on forwarding.
        assert http_get(f"http://127.0.0.1:{host_port}/") == a[:8]
        assert Path(f"/proc/sys/net/ipv4/conf/{net.bridge}/route_localnet").read_text().strip() == "1"
        assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "1"
        # allocation B → allocation A over the bridge
        probe = "import urllib.request,sys; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"
        out = subprocess.run(["ip", "netns", "exec", ns_b.name, sys.executable, "-c", probe,
                              f"http://{ns_a.ip}:8080/"], capture_output=True, text=True, timeout=20)
        assert out.stdout.strip() == a[:8], out.stderr
        # host → allocation B directly on its bridge IP
        assert http_get(f"http://{ns_b.ip}:8080/") == b[:8]
        assert leftovers(net, [a, b]), "the check for leftovers sees nothing while allocations exist"
    finally:
        for tp in servers:
            tp.stop()
    net.teardown(a)
    net.teardown(b)
    net.teardown(a)  # idempotent
    assert leftovers(net, [a, b]) == []
    assert net.recorded_alloc_ids() == []
    with pytest.raises(OSError, match="Connection refused"):  # nothing forwards the port any more
        http_get(f"http://127.0.0.1:{host_port}/", timeout=0.5)


def test_teardown_after_a_half_done_or_damaged_setup(net: BridgeNetwork) -> None:
    a = str(uuid.uuid4())
    net.setup(a, [PortMap(free_port(), 80)])
    # Someone deleted the namespace behind our back: DEL cannot read addresses from it any more.
    subprocess.run(["ip", "netns", "delete", net.netns_name(a)], check=True)
    net.teardown(a)
    assert leftovers(net, [a]) == []
    # A crash right after `ip netns add`, before any plugin ran.
    c = str(uuid.uuid4())
    net._write_record(c, {"netns": net.netns_name(c), "runtimeConfig": {"portMappings": []}, "result": None})
    subprocess.run(["ip", "netns", "add", net.netns_name(c)], check=True)
    net.teardown(c)
    assert leftovers(net, [c]) == [] and net.recorded_alloc_ids() == []


def test_setup_again_for_the_same_allocation_starts_clean(net: BridgeNetwork) -> None:
    a = str(uuid.uuid4())
    first = net.setup(a, [])
    second = net.setup(a, [])
    assert Path(second.path).exists() and second.name == first.name
    leases = [p.name for p in (net.ipam_dir / net.network_name).iterdir() if p.name[0].isdigit()]
    assert leases == [second.ip]  # the first lease was released, not leaked
    net.teardown(a)
    assert leftovers(net, [a]) == []


def test_teardown_orphans_keeps_only_the_given_allocations(net: BridgeNetwork) -> None:
    keep, drop = str(uuid.uuid4()), str(uuid.uuid4())
    net.setup(keep, [])
    dropped = net.setup(drop, [PortMap(free_port(), 80)])
    # A namespace with our prefix that we hold no record of may belong to another agent on this host.
    stray = f"{net.netns_prefix}deadbeef"
    subprocess.run(["ip", "netns", "add", stray], check=True)
    # What this process set up itself is in use (its runner may not be in `keep` yet): only an
    # agent started later, from the same records, treats it as an orphan.
    assert net.teardown_orphans({keep}) == []
    after_restart = BridgeNetwork(net.state_dir, bridge=net.bridge, subnet=net.subnet,
                                  network_name=net.network_name, netns_prefix=net.netns_prefix)
    try:
        gone = after_restart.teardown_orphans({keep})
        assert gone == [drop]
        assert (NETNS_DIR / stray).exists()
    finally:
        subprocess.run(["ip", "netns", "delete", stray], check=False)
    assert net.recorded_alloc_ids() == [keep]
    assert leftovers(net, [drop], [dropped.ip]) == []
    assert (NETNS_DIR / net.netns_name(keep)).exists()
    assert net.remove_bridge() is False  # still in use by `keep`
    net.teardown(keep)


def test_available_reasons(tmp_path: Path) -> None:
    assert BridgeNetwork(tmp_path).available() is None
    reason = BridgeNetwork(tmp_path, cni_path=str(tmp_path)).available()
    assert reason is not None and "bridge" in reason and "containernetworking-plugins" in reason
    code = ("import os; from pathlib import Path; from nomadmesh.agent.runtime.cni import BridgeNetwork;"
            "os.setgid(65534); os.setuid(65534); print(BridgeNetwork(Path('/nonexistent')).available())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                         cwd=REPO)
    assert "needs root" in out.stdout, out.stderr
    with pytest.raises(ValueError, match="longer than Linux's 15 characters"):
        BridgeNetwork(tmp_path, bridge="a-very-long-bridge-name")
