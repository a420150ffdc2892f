"""Examples shown at the end of each command's ``--help`` (argparse epilogs)."""

EXAMPLES = {
    "": """\
examples:
  python -m sim sweep configs/nlb.yaml             which keepalive settings survive the NLB
  python -m sim run configs/nlb.yaml --json        one scenario's summary as JSON
  python -m sim COMMAND --help                     a command's options and examples
""",
    "run": """\
examples:
  python -m sim run configs/nlb.yaml
  python -m sim run configs/nlb.yaml --set envoy.listener.keepalive.idle=340s --set connections=50 --json
  python -m sim run configs/fleet-idle.yaml --workers 2 --out results/fleet
  cat configs/nlb.yaml | python -m sim run - --set duration=30m
""",
    "sweep": """\
examples:
  python -m sim sweep configs/nlb.yaml
  python -m sim sweep configs/nlb.yaml --set connections=50 --workers 2 --out results/nlb-small
  python -m sim sweep configs/nlb.yaml --resume            finish a sweep that was interrupted
  python -m sim sweep configs/nlb.yaml --json --quiet | jq '.recommended'
  python -m sim sweep configs/nlb.yaml --fail-on-unsafe --keep summary   (CI)
""",
    "report": """\
example:
  python -m sim report results/nlb
""",
    "profiles": """\
example:
  python -m sim profiles
""",
    "inspect": """\
examples:
  python -m sim inspect envoyfilter.yaml --lb aws-nlb-tcp
  kubectl exec GATEWAY_POD -- ss -nteo sport = :8080 | python -m sim inspect - --lb aws-nlb-tcp
""",
    "recommend": """\
examples:
  python -m sim recommend configs/nlb.yaml --emit envoyfilter
  python -m sim recommend configs/envoy-ipvs.yaml --emit destinationrule --host backend.default.svc.cluster.local
""",
    "trace": """\
examples:
  python -m sim trace configs/nlb.yaml --set envoy.listener.keepalive.idle=360 --first-drop
  python -m sim trace configs/nlb.yaml --conn 0 --leg upstream
  python -m sim trace configs/nlb.yaml --set envoy.listener.keepalive.idle=360 --first-drop --at envoy --pcap drop.pcap
""",
    "validate": """\
example:
  sudo python -m sim validate --kernel --hz 250
""",
}
