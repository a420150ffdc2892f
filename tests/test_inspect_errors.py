"""``inspect`` on malformed EnvoyFilters, DestinationRules and socket options: one line naming the
key and what is allowed, exit 2 (DESIGN §4); and the values that are legal but change nothing."""

from __future__ import annotations

import pytest

from tests.test_inspect_defects import DR, EF, one_error, report


def _ef_listener(socket_options: str) -> str:
    return (EF + "spec:\n  configPatches:\n  - applyTo: LISTENER\n"
            "    match: {context: GATEWAY, listener: {portNumber: 8080}}\n"
            f"    patch:\n      operation: MERGE\n      value:\n        socket_options: {socket_options}\n")


def _ef_cluster(tcp_keepalive: str) -> str:
    return (EF + "spec:\n  configPatches:\n  - applyTo: CLUSTER\n"
            "    match: {context: SIDECAR_OUTBOUND, cluster: {service: backend.default.svc.cluster.local}}\n"
            "    patch:\n      operation: MERGE\n      value:\n"
            f"        upstream_connection_options: {{tcp_keepalive: {tcp_keepalive}}}\n")


def _dr(tcp_keepalive: str) -> str:
    return (DR + "spec:\n  host: backend\n  trafficPolicy:\n    connectionPool:\n      tcp:\n"
            f"        tcpKeepalive: {tcp_keepalive}\n")


OPTS = "spec.configPatches[0].patch.value.socket_options"
KA = "spec.configPatches[0].patch.value.upstream_connection_options.tcp_keepalive"
DR_KA = "spec.trafficPolicy.connectionPool.tcp.tcpKeepalive"

CASES = {
    "socket_options not a list": (_ef_listener("{level: 1}"), OPTS, "socket_options must be a list"),
    "a socket option not a mapping": (_ef_listener("[5]"), f"{OPTS}[0]", "each socket option is a mapping"),
    "a socket option without its name": (_ef_listener("[{level: 1, int_value: 1}]"), f"{OPTS}[0]", "missing name"),
    "an unknown socket option field": (_ef_listener("[{level: 1, name: 9, int_value: 1, colour: red}]"),
                                       f"{OPTS}[0].colour", "unknown field 'colour' of SocketOption"),
    "int_value and buf_value together": (_ef_listener("[{level: 1, name: 9, int_value: 1, buf_value: AQ==}]"),
                                         f"{OPTS}[0]", "value"),
    "tcp_keepalive not a mapping": (_ef_cluster("[1]"), KA, "should be a mapping"),
    "keepalive probes the kernel refuses": (_ef_cluster("{keepalive_probes: 500}"), f"{KA}.keepalive_probes",
                                            "TCP_KEEPCNT 500 is rejected by the kernel with EINVAL"),
    "configPatches not a list": (EF + "spec:\n  configPatches: {applyTo: LISTENER}\n", "spec.configPatches",
                                 "configPatches must be a list"),
    "a config patch not a mapping": (EF + "spec:\n  configPatches:\n  - 5\n", "spec.configPatches[0]",
                                     "each config patch is a mapping"),
    "an apiVersion that does not serve the kind": (EF.replace("networking.istio.io/v1alpha3", "v1"), "apiVersion",
                                                    "does not serve kind EnvoyFilter"),
    "DestinationRule tcpKeepalive not a mapping": (_dr("[1]"), DR_KA, "should be a mapping"),
    "an unknown DestinationRule keepalive key": (_dr("{tme: 5s}"), f"{DR_KA}.tme", "unknown key 'tme'"),
    "probes beyond uint32": (_dr("{probes: 5000000000}"), f"{DR_KA}.probes", "out of range"),
    "probes the kernel refuses": (_dr("{probes: 200}"), f"{DR_KA}.probes",
                                  "TCP_KEEPCNT 200 is rejected by the kernel with EINVAL"),
    "a time the kernel refuses": (_dr("{time: 40000s}"), f"{DR_KA}.time",
                                  "TCP_KEEPIDLE 40000 is rejected by the kernel with EINVAL"),
    "a negative time": (_dr("{time: -5s}"), f"{DR_KA}.time", "negative"),
    "tcpKeepalive in the mesh's ProxyConfig": ("apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\n"
                                               "metadata: {name: io}\nspec:\n  meshConfig:\n    defaultConfig:\n"
                                               "      tcpKeepalive: {time: 300s}\n",
                                               "spec.meshConfig.defaultConfig.tcpKeepalive",
                                               "ProxyConfig has no tcpKeepalive field"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_malformed_artefact_is_one_line_naming_the_key(name, tmp_path, capsys):
    text, key, problem = CASES[name]
    err = one_error(tmp_path, capsys, text)
    assert f": {key}: " in err and problem in err, err


def test_probes_0_in_a_destinationrule_is_unset_not_an_error():
    rep = report(_dr("{time: 300s, probes: 0}"))
    ka = rep["hops"][0]["keepalive"]
    assert (ka["idle"], ka["count"]) == (300, 9)
    assert ka["sources"]["count"].startswith("net.ipv4.tcp_keepalive_probes = 9 (kernel default)")
    assert any(w.endswith("probes: 0 means unset to Istio (it copies probes only when > 0)") for w in rep["warnings"])


def test_a_port_level_connection_pool_is_its_own_hop():
    text = (DR + "spec:\n  host: backend\n  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 8080}\n"
            "      connectionPool:\n        tcp:\n          tcpKeepalive: {time: 120s}\n")
    hops = report(text)["hops"]
    assert any("port 8080" in h["name"] and h["keepalive"]["idle"] == 120 for h in hops), hops
