"""Plots: pure functions from result frames to matplotlib figures (shared by report and notebooks)."""

from __future__ import annotations

import sys

import matplotlib

if "ipykernel" not in sys.modules:  # files only, no display; a notebook keeps its inline backend
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sim.report.fmt import fmt_count, fmt_param, point_label, short_keys  # noqa: E402


def heatmap(pp: pd.DataFrame, x: str, others: list[str]) -> plt.Figure:
    """Silent drops per replication: the first swept key across, one row per combination of every
    other swept key (knobs and conditions), so no two grid points share a cell."""
    df = pp.copy()
    df["_v"] = df["silent_drops"] / df["replications"]
    shorts = short_keys([x, *others])
    df["_x"] = df[x].map(fmt_param)
    df["_y"] = [point_label(r, others, shorts) if others else "" for _, r in df.iterrows()]
    xs = sorted(df["_x"].unique(), key=_sort_key)
    ys = list(dict.fromkeys(df["_y"]))  # grid order
    grid = np.full((len(ys), len(xs)), np.nan)
    for _, r in df.iterrows():
        grid[ys.index(r["_y"]), xs.index(r["_x"])] = r["_v"]
    # room for the labels: a row label of 8-point text is about 0.07 in a character, a column
    # label (10-point, at 45 degrees) about 0.06 in of height a character
    label_w = 0.07 * max((len(y) for y in ys), default=0)
    label_h = 0.06 * max((len(x) for x in xs), default=0)
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(xs) + 3 + label_w), max(2.2, 0.45 * len(ys) + 1.6 + label_h)))
    im = ax.imshow(grid, cmap="Reds", aspect="auto", vmin=0)
    ax.set_xticks(range(len(xs)), xs, rotation=45, ha="right")
    ax.set_yticks(range(len(ys)), ys, fontsize=8)
    ax.set_xlabel(shorts[x])
    for i in range(len(ys)):
        for j in range(len(xs)):
            v = grid[i, j]
            if not np.isnan(v):
                ax.text(j, i, "safe" if v == 0 else fmt_count(float(v)), ha="center", va="center", fontsize=7,
                        color="green" if v == 0 else "black")
    fig.colorbar(im, ax=ax, label="silent drops per replication")
    ax.set_title("Silent drops per replication (0 = safe)")
    fig.tight_layout()
    return fig


def _sort_key(s: str):
    try:
        return (0, float(s), s)
    except ValueError:
        return (1, 0.0, s)


def detection_times(conns: pd.DataFrame, by: str | None = None) -> plt.Figure:
    """How long after the drop each side found out (log scale)."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    values = []
    for side in ("client", "server"):
        v = conns[f"{side}_detect_s"].dropna()
        values.append(v[v > 0])
    bins = np.logspace(-3, 4, 50)
    for side, v in zip(("client", "server"), values, strict=True):
        if len(v):
            ax.hist(v, bins=bins, alpha=0.6, label=f"{side} ({len(v)})")
    ax.set_xscale("log")
    ax.set_xlabel("seconds from the LB's drop until the side's kernel knew (RST or ETIMEDOUT)")
    ax.set_ylabel("connections")
    ax.set_title("Detection time after a silent drop")
    if any(len(v) for v in values):
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no drops were detected", transform=ax.transAxes, ha="center")
    fig.tight_layout()
    return fig


def cost_vs_safety(table: pd.DataFrame, knobs: list[str], device: str = "the LB") -> plt.Figure:
    """Keepalive cost against safety, one point per knob setting, labelled with every knob; settings
    that land on the same spot share one label."""
    fig, ax = plt.subplots(figsize=(8, 4.2))
    shorts = short_keys(knobs)
    spots: dict[tuple[float, float], list[str]] = {}
    # a sampled fleet (fleet.sample): expected drops per fleet-day, with their 95 % intervals as error bars
    sampled = "expected_drops_per_day_ci95" in table
    y_col = "expected_drops_per_day" if sampled else "silent_drops"
    for safe, color, label in ((True, "tab:green", "safe"), (False, "tab:red", "unsafe")):
        sub = table[table["safe"] == safe]
        ax.scatter(sub["ka_pps_per_1000"].fillna(0), sub[y_col], c=color, label=label, zorder=3)
        if sampled and len(sub):
            y = sub[y_col].to_numpy(dtype=float)
            lo_hi = np.array([list(v) for v in sub["expected_drops_per_day_ci95"]], dtype=float)
            ax.errorbar(sub["ka_pps_per_1000"].fillna(0), y, yerr=[y - lo_hi[:, 0], lo_hi[:, 1] - y], fmt="none",
                        ecolor=color, capsize=3, zorder=2)
        for _, r in sub.iterrows():
            xy = (round(float(np.nan_to_num(r["ka_pps_per_1000"])), 3), float(r[y_col]))
            spots.setdefault(xy, []).append(point_label(r, knobs, shorts))
    # staggered offsets: neighbours in x order alternate above and below their point
    for k, (xy, labels) in enumerate(sorted(spots.items())):
        text = labels[0] if len(labels) == 1 else f"{labels[0]} (+{len(labels) - 1} more)"
        ax.annotate(text, xy, fontsize=6.5, textcoords="offset points",
                    xytext=(4, (6, -10, 14, -18)[k % 4]), zorder=4)
    ax.set_xlabel(f"keepalive packets/s at {device} per 1,000 connections")
    ax.set_ylabel("expected silent drops per fleet-day (95 % interval)" if sampled
                  else "silent drops (all conditions, all replications)")
    ax.set_title("Cost vs safety, one point per knob setting")
    ax.legend()
    fig.tight_layout()
    return fig


def timeline(trace: list[tuple], title: str, drop_s: float | None = None,
             names: dict[str, str] | None = None) -> plt.Figure:
    """Packets and verdicts of one connection: the whole story (top) and a zoom on the drop (bottom).
    Lanes are the connection's opener, the middlebox and its acceptor, named by ``names`` (for
    example Envoy and the upstream server on the upstream leg). Labels closer than 3% of the axis to
    the previous one on the same lane are left out, so they never overprint."""
    lanes = {"client": 2, "lb": 1, "server": 0}
    names = {"client": "client", "lb": "LB", "server": "server", **(names or {})}
    colors = {"DATA": "tab:blue", "ACK": "tab:gray", "PROBE": "tab:orange", "RST": "tab:red", "FIN": "tab:purple",
              "SYN": "tab:gray", "SYNACK": "tab:gray", "drop": "black", "expired": "black", "error": "tab:red"}
    fig, axes = plt.subplots(2, 1, figsize=(11, 6.4))
    windows: list[tuple[float, float] | None] = [None]
    if drop_s is not None:
        after = sorted(t for t, w, what, _ in trace if t >= drop_s and what in ("PROBE", "RST", "error", "drop"))
        hi = (after[0] if after else drop_s) + 5
        windows.append((drop_s - 0.25 * (hi - drop_s) - 1, hi))
    for ax, win in zip(axes, windows + [None] * (2 - len(windows)), strict=True):
        shown = [e for e in trace if win is None or win[0] <= e[0] <= win[1]]
        if not shown:
            continue
        min_gap = 0.03 * max(max(e[0] for e in shown) - min(e[0] for e in shown), 1e-9)
        last: dict[int, float] = {}
        nth: dict[int, int] = {}
        for t, where, what, note in shown:
            y = lanes.get(where, 1)
            ax.scatter([t], [y], c=colors.get(what, "tab:green"), s=22, zorder=3)
            if what in ("PROBE", "RST", "expired", "error", "drop") and (win is not None or what != "PROBE"):
                if t - last.get(y, -np.inf) < min_gap:
                    continue
                last[y] = t
                nth[y] = nth.get(y, 0) + 1
                label = ("keepalive probe sent" if what == "PROBE" and note == "sent"
                         else f"{what} {note}" if note in ("sent", "received") else (note or what))
                ax.annotate(label, (t, y), fontsize=7, textcoords="offset points",
                            xytext=(4, (9, -13, 18)[nth[y] % 3]))
        if drop_s is not None:
            ax.axvline(drop_s, color="black", ls="--", lw=0.8)
        ax.set_yticks(list(lanes.values()), [names[k] for k in lanes])
        ax.ticklabel_format(axis="x", useOffset=False, style="plain")
        ax.set_ylim(-0.6, 2.6)
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlabel("simulated time (s)" + ("" if win is None else "  (zoom on the drop; dashed = LB expiry)"))
    axes[0].set_title(title)
    if len(windows) < 2:
        axes[1].set_visible(False)
    fig.tight_layout()
    return fig


def active_flows(series: pd.DataFrame, labels: dict[str, str], title: str) -> plt.Figure:
    """LB flow-table size per minute, one line per labelled point (first replication)."""
    fig, ax = plt.subplots(figsize=(8, 3.8))
    for pid, label in labels.items():
        sub = series[(series["point_id"] == pid) & (series["replication"] == series["replication"].min())]
        ax.plot(sub["minute"], sub["active_flows"], label=label, lw=1.2)
    ax.set_xlabel("simulated minute")
    ax.set_ylabel("active flows in the LB")
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def nlcu(pp: pd.DataFrame, keys: list[str]) -> plt.Figure:
    """Estimated NLB capacity units (mean and peak minute) per grid point, every swept key in the
    label (a fleet-size condition gets its own bars); an estimate from AWS's published NLCU
    dimensions."""
    fig, ax = plt.subplots(figsize=(max(8, 0.45 * len(pp) + 2), 4.2))
    shorts = short_keys(keys)
    labels = [point_label(r, keys, shorts) for _, r in pp.iterrows()]
    x = np.arange(len(labels))
    ax.bar(x - 0.2, pp["nlcu_mean"], 0.4, label="mean minute")
    ax.bar(x + 0.2, pp["nlcu_peak"], 0.4, label="peak minute")
    ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("NLCU (estimate)")
    ax.set_title("Estimated NLB capacity units per grid point")
    ax.legend()
    fig.tight_layout()
    return fig


def occupancy(frame: pd.DataFrame, device: str, kind: str, exhausted_at_s: float | None = None) -> plt.Figure:
    """One limited device of one run against its limit (issue 16 point 5): ``frame`` has the rows
    of sim.metrics.limits.limit_series_frame for it (``t_s``, ``bucket_s``, ``occupancy_peak``,
    ``limit``); each bucket shows the most ``kind`` (flows, ports) held at one instant in it. A
    dashed line marks ``exhausted_at_s``, when the limit was first reached."""
    fig, ax = plt.subplots(figsize=(8, 3.6))
    t: np.ndarray = np.append(frame["t_s"].to_numpy(dtype=float),
                              float(frame["t_s"].iloc[-1] + frame["bucket_s"].iloc[-1]))
    peaks: np.ndarray = frame["occupancy_peak"].to_numpy()
    limit = int(frame["limit"].iloc[0])
    # the occupancy on top: at the limit the two lines meet, and the occupancy must stay visible
    ax.step(t, np.append(peaks, peaks[-1]), where="post", lw=2.2, zorder=3, label=f"peak {kind} in each bucket")
    ax.plot([t[0], t[-1]], [limit, limit], color="tab:red", ls=":", lw=1.6, zorder=4, label=f"limit ({limit} {kind})")
    if exhausted_at_s is not None:
        ax.plot([exhausted_at_s, exhausted_at_s], [0, limit], color="black", ls="--", lw=0.8,
                label=f"full from t = {exhausted_at_s:g} s")
    ax.set_ylim(0, max(limit, int(peaks.max())) * 1.12 + 1)
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel(f"{kind} held (peak per {frame['bucket_s'].iloc[0]:g} s)")
    ax.set_title(f"{device}: {kind} against the limit", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def save(fig: plt.Figure, path) -> None:
    fig.savefig(path, dpi=110)
    plt.close(fig)
