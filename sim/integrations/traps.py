"""The known ways a hop's declared keepalive is not what its sockets run, as warnings."""

from __future__ import annotations

from sim.integrations.effective import OPTION_OF, SYSCTL_OF, Effective
from sim.integrations.model import KEEP_OPTS, HopDecl


def hop_traps(hop: HopDecl, eff: Effective) -> list[str]:
    """The known ways this hop's declared keepalive is not what the sockets run."""
    out = list(hop.notes)
    if hop.side == "listener":
        opts = hop.socket_options
        if opts is None and hop.origin != "config_dump":  # a dump lists every listener; shown compactly
            out.append(f"listener {hop.name}: no socket_options, so Envoy leaves SO_KEEPALIVE off on the connections "
                       "it accepts")
        elif not eff.enabled and any((o.level, o.name) in KEEP_OPTS for o in opts or []):
            out.append(f"listener {hop.name}: TCP_KEEPIDLE/INTVL/CNT without SO_KEEPALIVE=1 (level 1, name 9) are "
                       "stored but never used: no probe is sent")
        if eff.enabled:
            out.append("Envoy sets listener socket_options on the listening socket; the connections it accepts get "
                       "them because Linux copies SO_KEEPALIVE and TCP_KEEP* from the listening socket. Declared is "
                       "not always effective: options on the listening socket only, missing from accepted sockets, "
                       "in Envoy >= 1.17 (envoy #18107), and socket_options changes on a listener update ignored "
                       "before envoy PR #23189. Restart the gateway pods after applying, then check the accepted "
                       "connections: `ss -nteo` piped to `python -m sim inspect -` must show timer:(keepalive,...)")
            if any(o.state == "STATE_LISTENING" for o in opts or []):
                out.append(f"listener {hop.name}: STATE_LISTENING keepalive options are the envoy #18107 setup that "
                           "stopped working in 1.17; the seed uses STATE_PREBIND")
        if hop.context == "SIDECAR_OUTBOUND":
            out.append(f"listener {hop.name}: SIDECAR_OUTBOUND listeners accept the app's own connections to its "
                       "sidecar inside the pod; their probes never reach a load balancer. For connections leaving the "
                       "pod use a DestinationRule tcpKeepalive (cluster side)")
        if hop.bind_to_port is False:
            out.append(f"listener {hop.name}: bind_to_port is false, so it has no listening socket of its own; "
                       "connections arrive through another listener (virtualInbound/virtualOutbound) whose "
                       "socket_options apply instead")
        if hop.listener_state in ("warming", "draining"):
            out.append(f"listener {hop.name} is {hop.listener_state}: not the one serving new connections")
        if hop.origin == "config_dump" and eff.enabled:
            out.append("config_dump shows what Envoy was told, not what its sockets have (istio #32289): confirm "
                       "with `ss -nteo` on the gateway pod")
    else:
        if hop.origin == "destinationrule":
            out.append("DestinationRule tcpKeepalive applies to Envoy's upstream connections only (Envoy -> "
                       f"{hop.name.split(' ')[0]}); it does not touch client -> gateway connections. An LB in front "
                       "of the gateway needs EnvoyFilter LISTENER socket_options "
                       "(`python -m sim recommend CONFIG --emit envoyfilter`)")
        if hop.tcp_keepalive is None and not eff.enabled and hop.origin != "config_dump":
            out.append(f"cluster {hop.name}: no tcpKeepalive, so Envoy leaves SO_KEEPALIVE off on its upstream "
                       "connections")
        elif not eff.enabled and any((o.level, o.name) in KEEP_OPTS for o in hop.socket_options or []):
            out.append(f"cluster {hop.name}: TCP_KEEPIDLE/INTVL/CNT in upstream_bind_config without SO_KEEPALIVE=1 "
                       "are stored but never used: no probe is sent")
        if hop.socket_options and hop.tcp_keepalive is not None:
            out.append(f"cluster {hop.name}: Envoy applies tcp_keepalive first and upstream_bind_config.socket_options "
                       "after it, so a keepalive option set in both takes the socket option's value")
    if eff.user_timeout_ms and not eff.enabled:
        out.append(f"{hop.side} {hop.name}: TCP_USER_TIMEOUT {eff.user_timeout_ms} ms without SO_KEEPALIVE only bounds "
                   "how long sent data may stay unacknowledged (R32-R34): an idle connection sends nothing, so an LB "
                   "still forgets it")
    if hop.broken:
        out.append(f"{hop.side} {hop.name}: {hop.broken}")
    if eff.enabled and eff.fallbacks:
        names = ", ".join(SYSCTL_OF[k] for k in eff.fallbacks)
        out.append(f"{hop.side} {hop.name}: {', '.join(OPTION_OF[k] for k in eff.fallbacks)} not set, so the kernel "
                   f"uses {names} of the Envoy pod's own network namespace. Sysctls are per netns (Linux >= 4.5) and "
                   "a pod starts from the kernel defaults 7200/75/9, whatever the node has")
    return out


SYSCTL_TRAPS = [
    "these sysctls are per network namespace (Linux >= 4.5): a pod starts from the kernel defaults 7200/75/9, "
    "whatever the node's values. Values read or set on the node do not reach pods; read them inside the pod "
    "(`kubectl exec POD -- sysctl net.ipv4.tcp_keepalive_time`) and set them in the pod's "
    "securityContext.sysctls",
    "they only apply to sockets with SO_KEEPALIVE on and no per-socket TCP_KEEP* values: an app that never "
    "enables SO_KEEPALIVE sends no probe whatever these say (configs/nlb-long-sql.yaml)",
]


def dedupe(items: list[str]) -> list[str]:
    """Keep the first of each repeated warning, in order."""
    return list(dict.fromkeys(items))

