"""The report of a benchmark run: the ratios and targets derived from it, the table, the chart, the files.

Everything here is a pure function of the ``report`` dict the runs filled in (or, for
``versions()``, of the environment), so a table or chart can be redrawn from a saved
``results.json`` without measuring anything again (from ``benchmarks/``)::

    python -c "import json, report; print(report.table(json.load(open('results/results.json'))))"

Files go to ``benchmarks/results/`` (``--out`` picks another directory): ``results.json`` and
``chart.png`` for a full run; ``quick-*.tmp`` for ``--quick`` and ``only-NAME.json.tmp`` for
``--only``, which git ignores, so a smoke run or an experiment never replaces the committed results.
This module imports nothing from the rest of the benchmark.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

#: What the issue asks for; reported, never asserted.
TARGETS = {
    "e2e_vs_celery": 3.0,
    "e2e_vs_urllib3": 0.5,
    "idle_p50_ms": 2.0,
    "idle_p99_ms": 5.0,
    "enqueue_vs_celery": 3.0,
    "bulk_enqueue_per_s": 5000,
    # issue 13, point 3: many slow calls at once
    "slow_100ms_calls_per_s": 1000,
    "slow_peak_rss_mib": 200,
    "slow_rss_slope_mib_per_1000_calls": 0.5,
}
#: Targets met by staying at or under the goal; the others are met at or over it.
AT_MOST = {"idle_p50_ms", "idle_p99_ms", "slow_peak_rss_mib", "slow_rss_slope_mib_per_1000_calls"}


def aligned(rows: list[tuple[str, ...]]) -> list[str]:
    """``rows`` as text columns: the first left-aligned, the rest right-aligned, a rule under the header row."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for j, row in enumerate(rows):
        lines.append(
            "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
        )
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def versions() -> dict[str, str]:
    """The installed versions on the measured path, so two results files can be told apart."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("dispatch", "dramatiq", "pika", "redis", "requests", "urllib3", "celery", "kombu", "amqp"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "-"
    return out


def derive(report: dict[str, Any]) -> None:
    """Add ``ratios`` (this package / the others) and ``targets`` (each goal, measured, met or not)."""
    d, c, nq = report["dispatch"], report["celery"], report["no_queue"]
    ratios = {
        "e2e_vs_celery": d["e2e"]["calls_per_s"] / c["e2e"]["calls_per_s"],
        "e2e_vs_urllib3": d["e2e"]["calls_per_s"] / nq["urllib3"]["e2e"]["calls_per_s"],
        "e2e_vs_requests": d["e2e"]["calls_per_s"] / nq["requests"]["e2e"]["calls_per_s"],
        "celery_e2e_vs_urllib3": c["e2e"]["calls_per_s"] / nq["urllib3"]["e2e"]["calls_per_s"],
        "enqueue_vs_celery": d["enqueue"]["calls_per_s"] / c["enqueue"]["calls_per_s"],
        "bulk_enqueue_vs_celery": d["bulk_enqueue"]["calls_per_s"] / c["enqueue"]["calls_per_s"],
        "bulk_e2e_vs_celery": d["bulk_e2e"]["calls_per_s"] / c["e2e"]["calls_per_s"],
        "enqueue_vs_celery_confirmed": d["enqueue"]["calls_per_s"] / c["enqueue_confirmed"]["calls_per_s"],
        "enqueue_under_load_vs_celery": d["e2e"]["enqueue_calls_per_s"] / c["e2e"]["enqueue_calls_per_s"],
        "idle_p50_vs_celery": d["latency"]["p50_ms"] / c["latency"]["p50_ms"],
        "worker_rss_vs_celery": d["worker_memory"]["rss_mib"] / c["worker_memory"]["rss_mib"],
    }
    slow = report.get("slow")
    if slow:
        for delay in ("100", "1000"):
            if delay in slow["dispatch"] and delay in slow["celery"]:
                ratios[f"slow_{delay}ms_vs_celery"] = (
                    slow["dispatch"][delay]["calls_per_s"] / slow["celery"][delay]["calls_per_s"]
                )
                ratios[f"slow_{delay}ms_rss_vs_celery"] = (
                    slow["dispatch"][delay]["peak_rss_mib"] / slow["celery"][delay]["peak_rss_mib"]
                )
    report["ratios"] = ratios
    measured = {
        "e2e_vs_celery": ratios["e2e_vs_celery"],
        "e2e_vs_urllib3": ratios["e2e_vs_urllib3"],
        "idle_p50_ms": d["latency"]["p50_ms"],
        "idle_p99_ms": d["latency"]["p99_ms"],
        "enqueue_vs_celery": ratios["enqueue_vs_celery"],
        "bulk_enqueue_per_s": d["bulk_enqueue"]["calls_per_s"],
    }
    fast = slow and slow["dispatch"].get("100")
    if fast:
        measured["slow_100ms_calls_per_s"] = fast["calls_per_s"]
        measured["slow_peak_rss_mib"] = fast["peak_rss_mib"]
        measured["slow_rss_slope_mib_per_1000_calls"] = abs(fast["rss_slope_mib_per_1000_calls"])
    report["targets"] = {
        name: {
            "target": ("<= " if name in AT_MOST else ">= ") + f"{goal:g}",
            "measured": measured[name],
            "met": measured[name] <= goal if name in AT_MOST else measured[name] >= goal,
        }
        for name, goal in TARGETS.items()
        if name in measured
    }


def table(report: dict[str, Any]) -> str:
    """The text table printed at the end of a run (and kept in results.json): one row per system."""
    d, c, nq = report["dispatch"], report["celery"], report["no_queue"]
    rows = [
        ("system", "e2e calls/s", "enqueue/s", "enq/s load", "p50 ms", "p99 ms", "worker RSS", "CPU ms/call"),
        (
            "dispatch (this package)",
            f"{d['e2e']['calls_per_s']:,.0f}",
            f"{d['enqueue']['calls_per_s']:,.0f}",
            f"{d['e2e']['enqueue_calls_per_s']:,.0f}",
            f"{d['latency']['p50_ms']:.2f}",
            f"{d['latency']['p99_ms']:.2f}",
            f"{d['worker_memory']['rss_mib']:.0f} MiB",
            f"{d['e2e']['cpu_ms_per_call']['total']:.2f}",
        ),
        (
            "dispatch, sent with URL.map",
            f"{d['bulk_e2e']['calls_per_s']:,.0f}",
            f"{d['bulk_enqueue']['calls_per_s']:,.0f}",
            f"{d['bulk_e2e']['enqueue_calls_per_s']:,.0f}",
            "-",
            "-",
            "-",
            f"{d['bulk_e2e']['cpu_ms_per_call']['total']:.2f}",
        ),
        (
            f"celery port ({c['worker'].split(' worker ')[1].split(' --')[0]})",
            f"{c['e2e']['calls_per_s']:,.0f}",
            f"{c['enqueue']['calls_per_s']:,.0f}",
            f"{c['e2e']['enqueue_calls_per_s']:,.0f}",
            f"{c['latency']['p50_ms']:.2f}",
            f"{c['latency']['p99_ms']:.2f}",
            f"{c['worker_memory']['rss_mib']:.0f} MiB",
            f"{c['e2e']['cpu_ms_per_call']['total']:.2f}",
        ),
    ]
    for name in ("requests", "urllib3"):
        r = nq[name]
        rows.append(
            (
                f"no queue: {name} loop",
                f"{r['e2e']['calls_per_s']:,.0f}",
                "-",
                "-",
                f"{r['latency']['p50_ms']:.2f}",
                f"{r['latency']['p99_ms']:.2f}",
                "-",
                f"{r['e2e']['cpu_ms_per_call']['total']:.2f}",
            )
        )
    lines = aligned(rows)
    r = report["ratios"]
    lines += [
        "",
        "enqueue/s: N sends with no worker consuming; this package with publisher confirms, Celery's delay() without",
        f"           (Celery delay() with confirm_publish=True: {c['enqueue_confirmed']['calls_per_s']:,.0f}/s)."
        " enq/s load: the send half of the e2e run.",
        "p50/p99: single send->result round trips at idle (no queue: one request).",
        "CPU ms/call: client + worker tree + RabbitMQ + Redis + receiver during the e2e run.",
        "",
        "ratios (this package / other):",
        f"  e2e vs Celery port      {r['e2e_vs_celery']:.2f}x",
        f"  e2e vs urllib3 loop     {r['e2e_vs_urllib3']:.2f}x",
        f"  e2e vs requests loop    {r['e2e_vs_requests']:.2f}x",
        f"  e2e with URL.map vs Celery  {r['bulk_e2e_vs_celery']:.2f}x",
        f"  enqueue vs delay()      {r['enqueue_vs_celery']:.2f}x  (vs delay() with confirms: "
        f"{r['enqueue_vs_celery_confirmed']:.2f}x; under load: {r['enqueue_under_load_vs_celery']:.2f}x)",
        f"  URL.map enqueue vs delay()  {r['bulk_enqueue_vs_celery']:.2f}x",
        f"  idle p50 vs Celery      {r['idle_p50_vs_celery']:.2f}x",
        f"  worker RSS vs Celery    {r['worker_rss_vs_celery']:.2f}x",
        "",
        "targets (issue):",
    ]
    for name, t in report["targets"].items():
        lines.append(f"  {name:<20} {t['target']:<8} measured {t['measured']:.2f}  {'met' if t['met'] else 'NOT met'}")
    noisy = [
        f"{name} {run['cpu_ms_per_call']['other_processes']:.2f} ms/call"
        for name, run in (("dispatch", d["e2e"]), ("celery", c["e2e"]))
        if run["cpu_ms_per_call"]["other_processes"] > 0.15 * run["cpu_ms_per_call"]["total"]
    ]
    if noisy:
        lines += [
            "",
            "NOTE: other processes used the CPU during the e2e runs (" + ", ".join(noisy) + "): the machine was "
            "shared, so throughput and latency are low; CPU ms/call is the steadier number.",
        ]
    mem = d.get("memory_run")
    if mem:
        lines += [
            "",
            f"worker memory over {mem['calls']:,} calls (this package, fresh worker, RSS after each "
            f"{mem['every']:,}): first {mem['first_rss_mib']:.1f} MiB, last {mem['last_rss_mib']:.1f} MiB, "
            f"growth {mem['growth_mib']:+.1f} MiB ({mem['growth_pct']:+.1f}%, "
            f"{mem['growth_mib_per_1000_calls']:+.2f} MiB per 1,000 calls)",
        ]
    if c.get("scan"):
        lines += [
            "",
            "Celery worker scan ("
            + f"{c['scan'][0]['n']:,} calls each): "
            + ", ".join(f"-P {s['pool']} -c {s['concurrency']}: {s['calls_per_s']:.0f}/s" for s in c["scan"]),
        ]
    if report.get("outbox", {}).get("runs"):
        lines += ["", outbox_table(report["outbox"])]
    if report.get("slow"):
        lines += ["", slow_table(report["slow"])]
    return "\n".join(lines)


def outbox_table(outbox: dict[str, Any]) -> str:
    """The outbox row (issue 23) beside URL.map of the same calls, each the median of its runs."""
    o, b, paced = outbox["outbox"], outbox["bulk_e2e"], outbox.get("paced")
    rows = [
        ("outbox row", "calls", "e2e calls/s", "sent/s", "commit->endpoint p50", "p99", "CPU ms/call"),
        (
            f"outbox, {o['transactions']} transactions, dispatch relay",
            f"{o['n']:,}",
            f"{o['calls_per_s']:,.0f}",
            f"{o['enqueue_calls_per_s']:,.0f}",
            f"{o['commit_to_endpoint_p50_ms']:.1f} ms",
            f"{o['commit_to_endpoint_p99_ms']:.1f} ms",
            f"{o['cpu_ms_per_call']['total']:.2f}",
        ),
        (
            "URL.map of the same calls",
            f"{b['n']:,}",
            f"{b['calls_per_s']:,.0f}",
            f"{b['enqueue_calls_per_s']:,.0f}",
            "-",
            "-",
            f"{b['cpu_ms_per_call']['total']:.2f}",
        ),
    ]
    if paced:
        rows.insert(
            2,
            (
                f"outbox, offered at {paced['offered_calls_per_s']:,.0f} calls/s",
                f"{paced['n']:,}",
                f"{paced['calls_per_s']:,.0f}",
                f"{paced['enqueue_calls_per_s']:,.0f}",
                f"{paced['commit_to_endpoint_p50_ms']:.1f} ms",
                f"{paced['commit_to_endpoint_p99_ms']:.1f} ms",
                f"{paced['cpu_ms_per_call']['total']:.2f}",
            ),
        )
    return "\n".join(
        [
            *aligned(rows),
            "outbox: one writer commits the calls (outbox.send() in each transaction), one `dispatch relay` publishes",
            "them, the worker performs them; e2e from the first transaction to the last result.  sent/s: committed",
            "(outbox) or confirmed by RabbitMQ (URL.map) per second.  commit->endpoint: each call's first HTTP attempt",
            "as the worker recorded it, less its transaction's commit.  CPU adds the relay and PostgreSQL (all of it).",
        ]
    )


def slow_rows(slow: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(system label, endpoint, run) for every slow run, this package first."""
    rows = []
    for system in ("dispatch", "celery"):
        part = slow.get(system) or {}
        for delay in ("100", "1000"):
            if delay in part:
                worker = part[delay].get("worker", "")
                label = (
                    f"dispatch ({worker.split('dispatch.tasks ')[-1]})"
                    if system == "dispatch"
                    else f"celery port ({worker.split(' worker ')[-1].split(' --')[0]})"
                )
                rows.append((label, f"{int(delay):,} ms", part[delay]))
    return rows


def slow_table(slow: dict[str, Any]) -> str:
    """The slow-endpoint rows: calls/s and the worker's memory over the run."""
    rows = [
        (
            "slow endpoint",
            "delay",
            "calls",
            "e2e calls/s",
            "RSS first -> last",
            "peak",
            "MiB/1k calls",
            "CPU ms/call",
            "in flight",
        )
    ]
    for label, delay, r in slow_rows(slow):
        rows.append(
            (
                label,
                delay,
                f"{r['n']:,}",
                f"{r['calls_per_s']:,.0f}",
                f"{r['first_rss_mib']:.0f} -> {r['last_rss_mib']:.0f} MiB",
                f"{r['peak_rss_mib']:.0f} MiB",
                f"{r['rss_slope_mib_per_1000_calls']:+.2f}",
                f"{r['cpu_ms_per_call']['total']:.2f}",
                str(r.get("receiver_peak_pending", "-")),
            )
        )
    lines = aligned(rows)
    lines += [
        "slow endpoint: the receiver answers delay ms later; this package sends all the calls with one URL.map, Celery",
        "with delay(); then every result is collected.  RSS: the worker tree, sampled every "
        f"{next(iter(slow_rows(slow)))[2]['every']:,} results (first, last) and every 0.5 s (peak);",
        "MiB/1k calls: least-squares slope of those samples.  in flight: the most calls the receiver held at once.",
    ]
    scan = (slow.get("celery") or {}).get("scan")
    if scan:
        lines.append(
            f"Celery slow scan ({scan[0]['n']:,} calls, {scan[0]['delay_ms']} ms): "
            + ", ".join(f"-P {s['pool']} -c {s['concurrency']}: {s['calls_per_s']:.0f}/s" for s in scan)
        )
    return "\n".join(lines)


def chart(report: dict[str, Any], path: Path) -> None:
    """``chart.png``: throughput, enqueue, idle latency, CPU per call and worker memory, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d, c, nq = report["dispatch"], report["celery"], report["no_queue"]
    slow = report.get("slow")
    fig, axes = plt.subplots(3 if slow else 2, 3, figsize=(16, 13.5 if slow else 9))
    colors = {"dispatch": "#1f77b4", "celery": "#ff7f0e", "requests": "#7f7f7f", "urllib3": "#2ca02c"}

    def bars(ax, labels, values, cols, title, unit, fmt="{:,.0f}"):
        rects = ax.bar(labels, values, color=cols)
        for rect, value in zip(rects, values, strict=False):
            ax.annotate(
                fmt.format(value),
                (rect.get_x() + rect.get_width() / 2, rect.get_height()),
                ha="center",
                va="bottom",
                fontsize=9,
            )
        ax.set_title(title)
        ax.set_ylabel(unit)
        ax.tick_params(axis="x", labelsize=8)

    bars(
        axes[0][0],
        ["dispatch", "dispatch\n(URL.map)", "celery port", "requests loop", "urllib3 loop"],
        [
            d["e2e"]["calls_per_s"],
            d["bulk_e2e"]["calls_per_s"],
            c["e2e"]["calls_per_s"],
            nq["requests"]["e2e"]["calls_per_s"],
            nq["urllib3"]["e2e"]["calls_per_s"],
        ],
        [colors["dispatch"], colors["dispatch"], colors["celery"], colors["requests"], colors["urllib3"]],
        f"end to end, N={d['e2e']['n']:,} (higher is better)",
        "calls/s",
    )
    bars(
        axes[0][1],
        [
            "dispatch\n(confirms)",
            "dispatch\nURL.map",
            "celery delay()",
            "celery delay()\n(confirms)",
            "dispatch\nunder load",
            "celery\nunder load",
        ],
        [
            d["enqueue"]["calls_per_s"],
            d["bulk_enqueue"]["calls_per_s"],
            c["enqueue"]["calls_per_s"],
            c["enqueue_confirmed"]["calls_per_s"],
            d["e2e"]["enqueue_calls_per_s"],
            c["e2e"]["enqueue_calls_per_s"],
        ],
        [
            colors["dispatch"],
            colors["dispatch"],
            colors["celery"],
            colors["celery"],
            colors["dispatch"],
            colors["celery"],
        ],
        "enqueue (higher is better)",
        "calls/s",
    )
    ax = axes[0][2]
    names = ["dispatch", "celery port", "requests (1 req)", "urllib3 (1 req)"]
    lat = [d["latency"], c["latency"], nq["requests"]["latency"], nq["urllib3"]["latency"]]
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], [v["p50_ms"] for v in lat], width=0.4, label="p50")
    ax.bar([x + 0.2 for x in xs], [v["p99_ms"] for v in lat], width=0.4, label="p99")
    for x, v in zip(xs, lat, strict=False):
        ax.annotate(f"{v['p50_ms']:.2f}", (x - 0.2, v["p50_ms"]), ha="center", va="bottom", fontsize=8)
        ax.annotate(f"{v['p99_ms']:.2f}", (x + 0.2, v["p99_ms"]), ha="center", va="bottom", fontsize=8)
    ax.axhline(TARGETS["idle_p50_ms"], color="C0", ls=":", lw=1)
    ax.axhline(TARGETS["idle_p99_ms"], color="C1", ls=":", lw=1)
    ax.set_xticks(list(xs), names, fontsize=8)
    ax.set_title("idle latency, send -> result (lower is better)")
    ax.set_ylabel("ms")
    ax.legend()

    ax = axes[1][0]
    labels = ["client", "worker", "rabbitmq", "redis", "receiver"]
    systems = [
        ("dispatch", d["e2e"]),
        ("celery port", c["e2e"]),
        ("requests loop", nq["requests"]["e2e"]),
        ("urllib3 loop", nq["urllib3"]["e2e"]),
    ]
    bottom = [0.0] * len(systems)
    for label in labels:
        values = [s[1]["cpu_ms_per_call"].get(label, 0.0) for s in systems]
        ax.bar([s[0] for s in systems], values, bottom=bottom, label=label)
        bottom = [b + v for b, v in zip(bottom, values, strict=False)]
    ax.set_title("CPU per call during the e2e run (lower is better)")
    ax.set_ylabel("CPU ms / call")
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(fontsize=8)

    bars(
        axes[1][1],
        ["dispatch RSS", "celery RSS", "dispatch PSS", "celery PSS"],
        [
            d["worker_memory"]["rss_mib"],
            c["worker_memory"]["rss_mib"],
            d["worker_memory"]["pss_mib"],
            c["worker_memory"]["pss_mib"],
        ],
        [colors["dispatch"], colors["celery"], colors["dispatch"], colors["celery"]],
        "worker process tree memory after the run",
        "MiB",
        "{:.0f}",
    )

    ax = axes[1][2]
    mem = d.get("memory_run")
    if mem:
        ax.plot([s["calls"] for s in mem["samples"]], [s["rss_mib"] for s in mem["samples"]], marker="o", label="RSS")
        ax.plot([s["calls"] for s in mem["samples"]], [s["pss_mib"] for s in mem["samples"]], marker=".", label="PSS")
        ax.set_ylim(0, max(s["rss_mib"] for s in mem["samples"]) * 1.25)
        ax.set_title(f"dispatch worker memory over {mem['calls']:,} calls")
        ax.set_xlabel("calls")
        ax.set_ylabel("MiB")
        ax.legend(loc="lower right")
    else:
        ax.axis("off")
    if slow:
        runs = slow_rows(slow)
        bars(
            axes[2][0],
            [f"{label.split(' (')[0]}\n{delay}" for label, delay, _ in runs],
            [r["calls_per_s"] for _, _, r in runs],
            [colors["dispatch" if label.startswith("dispatch") else "celery"] for label, _, _ in runs],
            "slow endpoints, end to end (higher is better)",
            "calls/s",
        )
        ax = axes[2][1]
        for label, delay, r in runs:
            ax.plot(
                [x["calls"] for x in r["samples"]],
                [x["rss_mib"] for x in r["samples"]],
                marker="o",
                ls="-" if label.startswith("dispatch") else "--",
                label=f"{label.split(' (')[0]}, {delay}",
            )
        ax.set_ylim(0, max(r["peak_rss_mib"] for _, _, r in runs) * 1.25)
        ax.set_title("worker RSS during the slow runs")
        ax.set_xlabel("results collected")
        ax.set_ylabel("MiB")
        ax.legend(fontsize=8, loc="lower right")
        ax = axes[2][2]
        bottom = [0.0] * len(runs)
        for label in ["client", "worker", "rabbitmq", "redis", "receiver"]:
            values = [r["cpu_ms_per_call"].get(label, 0.0) for _, _, r in runs]
            ax.bar(range(len(runs)), values, bottom=bottom, label=label)
            bottom = [b + v for b, v in zip(bottom, values, strict=False)]
        ax.set_xticks(range(len(runs)), [f"{lb.split(' (')[0]}\n{dl}" for lb, dl, _ in runs], fontsize=8)
        ax.set_title("CPU per call, slow endpoints (lower is better)")
        ax.set_ylabel("CPU ms / call")
        ax.legend(fontsize=8)
    fig.suptitle(
        f"dispatch vs Celery port vs no queue -- {report['machine']['cpus']} CPUs, "
        f"{report['started']}   (e2e: {report['ratios']['e2e_vs_celery']:.2f}x Celery, "
        f"{report['ratios']['e2e_vs_urllib3']:.2f}x urllib3 loop)"
    )
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


# files -----------------------------------------------------------------------------------------


def result_paths(out: Path, quick: bool) -> tuple[Path, Path]:
    """Where a full run writes ``results.json`` and ``chart.png``; a quick run's names end in .tmp."""
    prefix, suffix = ("quick-", ".tmp") if quick else ("", "")
    return out / f"{prefix}results.json{suffix}", out / f"{prefix}chart.png{suffix}"


def write(report: dict[str, Any], json_path: Path, png_path: Path) -> None:
    """Derive the ratios and targets, print the table, then write the JSON (table included) and the chart."""
    derive(report)
    text = table(report)
    print("\n" + text + "\n", flush=True)
    report["table"] = text
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    chart(report, png_path)


def write_only(report: dict[str, Any], name: str, out: Path) -> Path:
    """An ``--only NAME`` run: one system's numbers have nothing to compare with, so no table or chart."""
    path = out / f"only-{name}.json.tmp"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report[name], indent=2))
    return path
