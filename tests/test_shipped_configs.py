"""The main job on every shipped config (issue 13): `sweep` completes on each file in configs/, scaled
down with --set, and `recommend --emit all` emits, for each hop, the values the sweep found safe."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import yaml

from sim.cli import main
from sim.config.load import load_config, with_values
from sim.integrations.recommend import HOP_OF, hop_target, target_socket
from sim.results.load import config_value
from tests.test_integrations import inspect_json, run

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "configs").rglob("*.yaml"))
#: as the before-stop hook scales them: every grid point, small and short
SCALE = ["--set", "replications=2", "--set", "connections=6", "--set", "duration=20m"]


def _swept(cfg: str) -> bool:
    return bool(yaml.safe_load((ROOT / cfg).read_text()).get("sweep"))


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> dict[str, tuple[int, str, Path]]:
    """Every shipped config swept once (serially), shared by the tests of this module."""
    out: dict[str, tuple[int, str, Path]] = {}
    base = tmp_path_factory.mktemp("shipped")
    for cfg in CONFIGS:
        folder = base / Path(cfg).with_suffix("").as_posix().replace("/", "-")
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["sweep", cfg, *SCALE, "--executor", "serial", "--quiet", "--out", str(folder)])
        out[cfg] = (code, err.getvalue(), folder)
    return out


@pytest.mark.parametrize("cfg", CONFIGS)
def test_sweep_completes_on_every_shipped_config(cfg, swept):
    code, err, folder = swept[cfg]
    assert code in (0, 3), f"{cfg}: exit {code}: {err}"
    assert "internal error" not in err and "Traceback" not in err, err
    for name in ("points.parquet", "summary.csv", "sweep.json", "report.md", "config.resolved.yaml"):
        assert (folder / name).exists(), f"{cfg}: no {name}"
    meta = json.loads((folder / "sweep.json").read_text())
    assert meta["failed_points"] == []


@pytest.mark.parametrize("cfg", [c for c in CONFIGS if _swept(c)])
def test_recommend_emits_each_hops_safe_values(cfg, swept, capsys, tmp_path):
    _, _, folder = swept[cfg]
    meta = json.loads((folder / "sweep.json").read_text())
    # the same --set values as the sweep, so recommend reads its sweep.json
    rc, out, err = run(["recommend", cfg, "--emit", "all", "--results", str(folder), *SCALE], capsys)
    rec = meta["recommended"]
    if rec is None:  # nothing safe in the scaled-down sweep: one line, exit 2
        assert rc == 2 and len(err.strip().splitlines()) == 1, err
        return
    assert rc == 0, err
    loaded = load_config(cfg, SCALE[1::2])
    params = {k: config_value(v) for k, v in rec["params"].items()}
    sc = with_values(loaded, params)
    docs = [d for d in yaml.safe_load_all(out) if d]
    emitted = tmp_path / "emitted.yaml"
    emitted.write_text(out)
    hops = inspect_json(emitted, capsys)["hops"] if docs else []
    side_of = {"envoyfilter": "listener", "destinationrule": "cluster"}
    for kind, label in HOP_OF.items():
        want = hop_target(sc, label) if sc.envoy else None
        got = [h for h in hops if h["side"] == side_of[kind]]
        if want is None or not want.enabled:
            assert not got, f"{cfg}: a {kind} for a hop with keepalive off"
            continue
        assert len(got) == 1, f"{cfg}: {kind}: {got}"
        ka = got[0]["keepalive"]
        assert (ka["idle"], ka["interval"], ka["count"]) == (want.idle, want.interval, want.count), cfg
    # the sysctl lines (comments in --emit all) are the swept socket's values
    t = target_socket(sc, params)
    if t.enabled:
        assert f"# net.ipv4.tcp_keepalive_time = {t.idle}" in out, cfg
