#!/usr/bin/env python3
"""Two nodes joined by Redis against one node on the embedded backends, in the same run.

    .venv/bin/python scripts/bench_cluster.py                       # C = 1000, 3 repetitions (make bench-cluster)
    .venv/bin/python scripts/bench_cluster.py --clients 1000,5000 --reps 5
    .venv/bin/python scripts/bench_cluster.py --clients 50 --reps 1 --blast-deliveries 5000   # smoke run

What one measurement is (fresh processes every time):

* ``one``: ONE node (``websocket start``) on the embedded backends (no ``REALTIME_REDIS_URL``); all C
  subscribers on it; publishes to it.
* ``two``: TWO nodes (``--node-id bench-a``, ``bench-b``) joined by a private ``redis-server``
  (``REALTIME_REDIS_URL`` and a ``REALTIME_REDIS_PREFIX`` of the measurement's own); C/2 subscribers
  on each; every publish goes to node A only, so B gets each publication through Redis.
* ``one-redis`` (a diagnostic, only with ``--cases``): ONE node on that Redis, all subscribers on it.

Both are driven by ``scripts/bench_cluster_loadgen.js`` (Node): the harness's method and raw client
(../shared/bench/loadgen.js), with subscribers spread over several ports, because the harness's
generator drives one port and each of its processes publishes its own blast. Blast: M = ceil(300000 / C)
publishes over HTTP to one node, at most 16 in flight; deliveries/s = every delivery counted on every
subscriber / (last expected delivery - first publish queued). Repetitions are interleaved, and the
order of the two cases alternates from one repetition to the next.

Pinning (2 CPUs): every node on ``--node-cpus`` (default CPU 0), redis-server and the generator on
``--aux-cpu`` (default CPU 1), the same for both cases (in ``one`` Redis runs idle). So both cases get
one core for the engine: the two nodes share it, as the one node has it alone.

The nodes run as scripts/bench.sh runs the engine: ``REALTIME_WRITE_BUFFER_LIMIT=67108864``,
``REALTIME_MAX_CONNECTIONS=20000``, ``REALTIME_API_KEY=bench-api-key-not-a-secret-0123456789``, a var
folder of their own (``bench-results/cluster-var``, plugin activated there) with a SQLite database shared by the nodes,
and the write-behind recorder on (the default; it cannot be switched off).

Results: one JSON line per measurement appended to ``--out`` (``bench-results/cluster.jsonl``), node
and Redis logs in ``bench-results/cluster-logs/``, the tables printed and written to
``<out>.summary.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOADGEN = ROOT / "scripts" / "bench_cluster_loadgen.js"
PLUGIN = "websocket-realtime-engine"
API_KEY = "bench-api-key-not-a-secret-0123456789"  # 32+ characters: shorter keys are refused
NODE_ENV = {"REALTIME_WRITE_BUFFER_LIMIT": "67108864", "REALTIME_MAX_CONNECTIONS": "20000", "REALTIME_API_KEY": API_KEY}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


def http_get(port: int, path: str) -> int:
    """Status of a plain GET (no dependency beyond the standard library)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            head = s.recv(64).decode("latin1")
        return int(head.split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def redis_command(port: int, *words: str) -> str:
    """One RESP command to the private redis-server; the first line of the answer."""
    payload = f"*{len(words)}\r\n" + "".join(f"${len(w)}\r\n{w}\r\n" for w in words)
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(payload.encode())
        return s.recv(256).decode("latin1").split("\r\n", 1)[0]


def pin(cpus: str) -> list[str]:
    return ["taskset", "-c", cpus] if cpus and cpus != "-1" and shutil.which("taskset") else []


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process's group (its own session), SIGKILL after 5 s."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def log_tail(path: Path, n: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


class Bench:
    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.results = ROOT / "bench-results"
        self.var_dir = self.results / "cluster-var"
        self.logdir = self.results / "cluster-logs"
        self.base_env = {k: v for k, v in os.environ.items() if not k.startswith(("REALTIME_", "SHOPOLOGIC_"))}
        self.base_env.update(
            SHOPOLOGIC_VAR_DIR=str(self.var_dir),
            SHOPOLOGIC_DATABASE_URL=f"sqlite:///{self.var_dir}/shopologic.db",
        )
        self.redis: subprocess.Popen[bytes] | None = None
        self.redis_port = 0
        self.run_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{os.getpid()}"

    # ------------------------------------------------------------------ set-up
    def prepare(self) -> None:
        for tool in ("redis-server", self.a.node):
            if not shutil.which(tool):
                sys.exit(f"bench_cluster: {tool} not found")
        if not shutil.which("taskset"):
            print("warning: taskset not found, processes are not pinned", file=sys.stderr)
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.logdir.mkdir(parents=True, exist_ok=True)
        env = {**self.base_env, "REALTIME_API_KEY": API_KEY}
        subprocess.run(
            [self.a.python, "bootstrap_plugins.py", "plugin", "activate", PLUGIN],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        try:  # C subscribers need C descriptors in the generator (and C / nodes in each node)
            import resource

            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            want = hard if hard != resource.RLIM_INFINITY else 65536
            if soft < want:
                resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ImportError, ValueError, OSError) as exc:
            print("could not raise RLIMIT_NOFILE:", exc, file=sys.stderr)

    def start_redis(self) -> None:
        self.redis_port = free_port()
        log = open(self.logdir / f"{self.run_id}-redis.log", "w")  # noqa: SIM115 (kept open for the process)
        cmd = pin(self.a.aux_cpu) + [
            "redis-server",
            "--port",
            str(self.redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
        ]
        self.redis = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, stdin=subprocess.DEVNULL
        )
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                if redis_command(self.redis_port, "PING") == "+PONG":
                    return
            except OSError:
                time.sleep(0.05)
        sys.exit(f"bench_cluster: the private redis-server on port {self.redis_port} did not start")

    # ------------------------------------------------------------------ one measurement
    def start_node(self, tag: str, node_id: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int, Path]:
        port = free_port()
        log_path = self.logdir / f"{self.run_id}-{tag}-{node_id}.log"
        log = open(log_path, "w")  # noqa: SIM115 (kept open for the process)
        cmd = pin(self.a.node_cpus) + [
            self.a.python,
            "bootstrap_plugins.py",
            "websocket",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--node-id",
            node_id,
        ]
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        return proc, port, log_path

    def wait_ready(self, nodes: list[tuple[subprocess.Popen[bytes], int, Path]]) -> str | None:
        deadline = time.time() + 60
        for proc, port, log_path in nodes:
            while True:
                if proc.poll() is not None:
                    return f"node on {port} exited ({proc.returncode}): {log_tail(log_path)}"
                if port_open(port) and http_get(port, "/readyz") == 200:
                    break
                if time.time() > deadline:
                    return f"node on {port} not ready in 60 s: {log_tail(log_path)}"
                time.sleep(0.1)
        return None

    def measure(self, case: str, clients: int, rep: int) -> dict[str, Any]:
        env = {**self.base_env, **NODE_ENV}
        tag = f"{case}-c{clients}-r{rep}"
        if case in ("two", "one-redis"):
            assert self.redis is not None
            prefix = f"bench-{self.run_id}-{tag}:"
            env.update(REALTIME_REDIS_URL=f"redis://127.0.0.1:{self.redis_port}/0", REALTIME_REDIS_PREFIX=prefix)
            node_ids = ["bench-a", "bench-b"] if case == "two" else ["bench-one"]
        else:
            node_ids = ["bench-one"]
        rec: dict[str, Any] = dict(
            case=case,
            clients=clients,
            rep=rep,
            run_id=self.run_id,
            time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            node_cpus=self.a.node_cpus,
            aux_cpu=self.a.aux_cpu,
            cpus=os.cpu_count(),
            blast_deliveries=self.a.blast_deliveries,
            http_concurrency=self.a.http_concurrency,
        )
        nodes = [self.start_node(tag, node_id, env) for node_id in node_ids]
        try:
            error = self.wait_ready(nodes)
            if error:
                rec["error"] = error
                return rec
            time.sleep(self.a.settle)
            ports = [port for _, port, _ in nodes]
            labels = ["a", "b"] if case == "two" else ["one"]
            pids = [f"{label}:{proc.pid}" for label, (proc, _, _) in zip(labels, nodes, strict=True)]
            assert self.redis is not None
            pids.append(f"redis:{self.redis.pid}")
            cmd = pin(self.a.aux_cpu) + [
                self.a.node,
                str(LOADGEN),
                "--ws-urls",
                ",".join(f"ws://127.0.0.1:{p}/socket" for p in ports),
                "--publish-url",
                f"http://127.0.0.1:{ports[0]}/api/v1/broadcast",
                "--clients",
                str(clients),
                "--blast-deliveries",
                str(self.a.blast_deliveries),
                "--http-concurrency",
                str(self.a.http_concurrency),
                "--clk-tck",
                str(os.sysconf("SC_CLK_TCK")),
                "--pids",
                ",".join(pids),
            ]
            t0 = time.time()
            try:
                p = subprocess.run(
                    cmd,
                    capture_output=True,
                    text=True,
                    timeout=200,
                    cwd=ROOT,
                    env={**self.base_env, "REALTIME_API_KEY": API_KEY},
                    stdin=subprocess.DEVNULL,
                )
                lines = [line for line in p.stdout.splitlines() if line.startswith("{")]
                if lines:
                    rec["result"] = json.loads(lines[-1])
                else:
                    rec["error"] = "no JSON from the load generator"
                rec["loadgen_rc"] = p.returncode
                rec["loadgen_stderr_tail"] = p.stderr[-1500:]
            except subprocess.TimeoutExpired:
                rec["error"] = "load generator timeout"
            rec["wall_s"] = round(time.time() - t0, 2)
            for proc, port, log_path in nodes:
                if proc.poll() is not None:
                    rec.setdefault("node_exited", []).append(
                        {"port": port, "rc": proc.returncode, "log_tail": log_tail(log_path)}
                    )
        finally:
            for proc, _, _ in nodes:
                stop(proc)
        return rec

    # ------------------------------------------------------------------ the run
    def run(self) -> list[dict[str, Any]]:
        clients = [int(c) for c in self.a.clients.split(",") if c]
        out = Path(self.a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        records = []
        started = time.time()
        print(
            f"run {self.run_id}: redis on {self.redis_port}, nodes on CPU {self.a.node_cpus}, "
            f"redis + generator on CPU {self.a.aux_cpu}; results -> {out}",
            flush=True,
        )
        with out.open("a") as sink:
            for rep in range(1, self.a.reps + 1):
                cases = [c for c in self.a.cases.split(",") if c]
                order = cases if rep % 2 else cases[::-1]
                for c in clients:
                    for case in order:
                        rec = self.measure(case, c, rep)
                        sink.write(json.dumps(rec) + "\n")
                        sink.flush()
                        records.append(rec)
                        b = blast_of(rec)
                        procs = b.get("procs", {})
                        cpu = " ".join(f"{k}={v['cpuPct']}%" for k, v in procs.items())
                        print(
                            f"[{time.time() - started:5.0f}s] rep{rep} {case} C={c:5d} "
                            f"blast={b.get('deliveriesPerSec')}/s complete={b.get('complete')} "
                            f"gen={b.get('loadgenCpuPct')}% {cpu} "
                            f"err={rec.get('error') or (rec.get('result') or {}).get('errors') or ''}",
                            flush=True,
                        )
        return records

    def close(self) -> None:
        if self.redis is not None:
            stop(self.redis)


def blast_of(rec: dict[str, Any]) -> dict[str, Any]:
    result = rec.get("result") or {}
    return (result.get("phases") or {}).get("blast") or {}


def fmt_k(x: float | None) -> str:
    return "-" if x is None else f"{x / 1000:.0f}k"


def summarize(records: list[dict[str, Any]], run_id: str) -> str:
    """Markdown: one row per measurement, then medians and the ratio two / one per C."""
    rows = [
        "| rep | case | C | deliveries/s | on node A / B | complete | nodes CPU % | redis CPU % | gen CPU % "
        "| node CPU us/delivery | deliveries per write | blast p50 / p99 ms | p99 on A / B ms |",
        "|---:|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ok: dict[tuple[str, int], dict[int, dict[str, Any]]] = {}
    for rec in records:
        b = blast_of(rec)
        procs = b.get("procs", {})
        nodes = {k: v for k, v in procs.items() if k != "redis"}
        node_cpu_s = sum(v["cpuS"] for v in nodes.values())
        node_pct = sum(v["cpuPct"] for v in nodes.values())
        writes = [v.get("writeSyscalls") for v in nodes.values()]
        per = b.get("deliveriesPerUrl") or []
        lat = b.get("latencyMs") or {}
        per_lat = b.get("latencyMsPerUrl") or []
        errors = rec.get("error") or (rec.get("result") or {}).get("errors")
        good = bool(b) and bool(b.get("complete")) and not errors
        us = 1e6 * node_cpu_s / b["deliveries"] if b.get("deliveries") else None
        per_write = b["deliveries"] / sum(writes) if b.get("deliveries") and writes and all(writes) else None
        if good:
            ok.setdefault((str(rec["case"]), int(rec["clients"])), {})[int(rec["rep"])] = {
                "dps": b["deliveriesPerSec"],
                "us": us,
                "gen": b.get("loadgenCpuPct"),
                "redis": (procs.get("redis") or {}).get("cpuPct"),
                "nodes": node_pct,
                "per_write": per_write,
            }
        rows.append(
            f"| {rec['rep']} | {rec['case']} | {rec['clients']} | {fmt_k(b.get('deliveriesPerSec'))} "
            f"| {' / '.join(str(x) for x in per) if len(per) > 1 else '-'} "
            f"| {'yes' if good else 'NO: ' + str(errors or 'incomplete')[:80]} "
            f"| {node_pct:.0f} | {(procs.get('redis') or {}).get('cpuPct', '-')} | {b.get('loadgenCpuPct', '-')} "
            f"| {'-' if us is None else f'{us:.2f}'} | {'-' if per_write is None else f'{per_write:.1f}'} "
            f"| {lat.get('p50', '-')} / {lat.get('p99', '-')} "
            f"| {' / '.join(str((x or {}).get('p99', '-')) for x in per_lat) if len(per_lat) > 1 else '-'} |"
        )
    med = [
        "",
        "| case | C | reps | deliveries/s median (min-max) | nodes CPU % | redis CPU % | gen CPU % "
        "| node CPU us/delivery | deliveries per write |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ratios = [
        "",
        "| C | two nodes / one node, deliveries/s (medians) | per repetition | node CPU us/delivery, two / one |",
        "|---:|---:|---|---:|",
    ]

    def median(xs: list[dict[str, Any]], key: str) -> float:
        values = [x[key] for x in xs if x[key] is not None]
        return statistics.median(values) if values else float("nan")

    for c in sorted({c for _, c in ok}):
        for case in ("one", "one-redis", "two"):
            xs = list(ok.get((case, c), {}).values())
            if not xs:
                continue
            dps = [x["dps"] for x in xs]
            med.append(
                f"| {case} | {c} | {len(xs)} | {fmt_k(statistics.median(dps))} ({fmt_k(min(dps))}-{fmt_k(max(dps))}) "
                f"| {median(xs, 'nodes'):.0f} | {median(xs, 'redis'):.0f} | {median(xs, 'gen'):.0f} "
                f"| {median(xs, 'us'):.2f} | {median(xs, 'per_write'):.1f} |"
            )
        one, two = ok.get(("one", c), {}), ok.get(("two", c), {})
        if one and two:
            one_xs, two_xs = list(one.values()), list(two.values())
            r = median(two_xs, "dps") / median(one_xs, "dps")
            per_rep = [f"{two[rep]['dps'] / one[rep]['dps']:.2f}" for rep in sorted(one) if rep in two]
            us = median(two_xs, "us") / median(one_xs, "us")
            ratios.append(f"| {c} | **{r:.2f}** | {', '.join(per_rep)} | {us:.2f} |")
    return f"Run {run_id}\n\n" + "\n".join(rows + med + ratios) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", default="1000", help="subscriber counts, comma-separated (default 1000)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions, interleaved (default 3)")
    ap.add_argument(
        "--cases",
        default="one,two",
        help="one (embedded), two (two nodes on Redis), one-redis (one node on Redis: a diagnostic); default one,two",
    )
    ap.add_argument("--blast-deliveries", type=int, default=300_000, help="deliveries per blast (M = this / C)")
    ap.add_argument("--http-concurrency", type=int, default=16, help="publish requests in flight")
    ap.add_argument("--node-cpus", default="0", help="CPU list for the nodes (taskset -c; -1: no pinning)")
    ap.add_argument("--aux-cpu", default="1", help="CPU list for redis-server and the generator (-1: none)")
    ap.add_argument("--settle", type=float, default=0.7, help="seconds between ready and the generator")
    ap.add_argument("--python", default=str(ROOT / ".venv" / "bin" / "python"), help="the project's interpreter")
    ap.add_argument("--node", default=shutil.which("node") or "node", help="Node.js (>= 18) for the generator")
    ap.add_argument("--out", default=str(ROOT / "bench-results" / "cluster.jsonl"), help="JSON lines, appended")
    a = ap.parse_args()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    bench = Bench(a)
    bench.prepare()
    bench.start_redis()
    try:
        records = bench.run()
    finally:
        bench.close()
    md = summarize(records, bench.run_id)
    summary = Path(a.out).with_suffix(".summary.md")
    with summary.open("a") as f:
        f.write(md + "\n")
    print("\n" + md, flush=True)
    print(f"results: {a.out}\nsummary: {summary}", flush=True)


if __name__ == "__main__":
    main()
