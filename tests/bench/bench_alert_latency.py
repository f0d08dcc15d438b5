"""Warning to webhook: our alerting vs Prometheus + Alertmanager, in the same run.

Run: .venv/bin/python -m tests.bench.bench_alert_latency [--tight N] [--common N]
     [--save-alertmanager-body FILE]
Needs the Debian packages `prometheus` and `prometheus-alertmanager` (never part of `pytest`).

One real service (create_app, SQLite, system clock, polling off) listens on a loopback port;
each trial is a consumer comment sent as a signed Facebook webhook to its own source, with an
SLA target of 200 s and its own warn_at, which puts the warning instant 5 s plus a random
fraction of a second after the (whole-second) creation time. Two paths deliver that warning
to one local HTTP receiver:

* ours: the deadline scheduler -> notifier -> outbox -> a `webhook` receiver (POST /ours);
* what a user would otherwise build: Prometheus scraping `/metrics`, the alert rule
  `sum by (brand, source) (webcare_open_items{state="warning"}) > 0` (for: 0s), and
  Alertmanager (group_by alertname, brand, source) with a webhook_config (POST /am).

Latency = arrival at the receiver − the warning instant. Every trial has its own source, so
each Alertmanager notification is a new group (group_wait applies, as for a first alert).
Settings: tight (scrape 1 s, evaluation 1 s, group_wait 1 s) and common (15 s, 15 s, 30 s).
Trials start at random moments, so they land at random phases of the scrape and evaluation
cycles. Prints every latency, the medians and the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from monitor.app import create_app
from monitor.config import load_config
from tests.e2e.test_restart import free_port

SECRET = "bench-app-secret"
TARGET = 200.0
WARN_AFTER = 5.0  # seconds after creation, plus a random fraction per trial (see below)
SETTINGS = {
    # name: (scrape_interval, evaluation_interval, group_wait, spacing between trial starts)
    "tight": (1, 1, 1, (1.0, 2.5)),
    "common": (15, 15, 30, (5.0, 11.0)),
}


@dataclass
class Sink:
    """The one local receiver both paths deliver to."""

    ours: dict[str, float] = field(default_factory=dict)
    am: dict[str, float] = field(default_factory=dict)
    am_bodies: list[dict[str, Any]] = field(default_factory=list)

    async def handle_ours(self, request: web.Request) -> web.Response:
        arrived = time.time()
        body = orjson.loads(await request.read())
        if body["kind"] == "warning":
            self.ours.setdefault(body["source"], arrived)
        return web.Response(text="ok")

    async def handle_am(self, request: web.Request) -> web.Response:
        arrived = time.time()
        body = orjson.loads(await request.read())
        self.am_bodies.append(body)
        if body["status"] == "firing":
            self.am.setdefault(body["groupLabels"].get("source", ""), arrived)
        return web.Response(text="ok")


def service_config(db: Path, port: int, sink: int, sources: dict[str, float]) -> str:
    """One source per trial, each with its own warn_at: the warning instant is created +
    `after` seconds, with a random fraction so warnings fall at random phases of the scrape
    cycle (Facebook creation times are whole seconds)."""
    blocks = "".join(
        f"""
[policies.{name}]
office_hours = "{TARGET:g}s"
after_hours = "{TARGET:g}s"
warn_at = {after / TARGET!r}
[[sources]]
type = "facebook_page"
name = "{name}"
brand = "bench"
page_id = "{9000 + i}"
access_token = "bench-token"
api_base_url = "http://127.0.0.1:9/v26.0"
calendar = "always"
policy = "{name}"
"""
        for i, (name, after) in enumerate(sources.items())
    )
    return f"""
database_url = "sqlite+aiosqlite:///{db}"
[http]
port = {port}
[facebook_webhook]
app_secret = "{SECRET}"
verify_token = "v"
[alerts]
handover = "off"
[[receivers]]
name = "bench"
type = "webhook"
url = "http://127.0.0.1:{sink}/ours"
kinds = ["warning"]
{blocks}"""


def comment(page: str, n: int, created: int) -> bytes:
    value = {
        "item": "comment",
        "verb": "add",
        "post_id": f"{page}_1",
        "comment_id": f"1_{n + 10}",
        "parent_id": f"{page}_1",
        "from": {"id": "77", "name": "Consumer"},
        "created_time": created,
        "message": f"question {n}",
    }
    entry = {"id": page, "time": created, "changes": [{"field": "feed", "value": value}]}
    return orjson.dumps({"object": "page", "entry": [entry]})


def write_peer_configs(
    tmp: Path, name: str, ours: int, sink: int, am_port: int
) -> tuple[Path, Path]:
    scrape, evaluation, group_wait, _ = SETTINGS[name]
    rules = tmp / f"{name}-rules.yml"
    rules.write_text(
        "groups:\n- name: webcare\n  rules:\n  - alert: WebcareItemWarning\n"
        '    expr: sum by (brand, source) (webcare_open_items{state="warning"}) > 0\n'
        "    for: 0s\n"
    )
    prom = tmp / f"{name}-prometheus.yml"
    prom.write_text(
        f"global:\n  scrape_interval: {scrape}s\n  evaluation_interval: {evaluation}s\n"
        f"rule_files: [{rules}]\n"
        "alerting:\n  alertmanagers:\n  - static_configs:\n"
        f"    - targets: ['127.0.0.1:{am_port}']\n"
        f"scrape_configs:\n- job_name: webcare\n  static_configs:\n"
        f"  - targets: ['127.0.0.1:{ours}']\n"
    )
    group_interval = "1s" if name == "tight" else "5m"
    am = tmp / f"{name}-alertmanager.yml"
    am.write_text(
        "route:\n  receiver: hook\n  group_by: [alertname, brand, source]\n"
        f"  group_wait: {group_wait}s\n  group_interval: {group_interval}\n"
        "  repeat_interval: 4h\n"
        "receivers:\n- name: hook\n  webhook_configs:\n"
        f"  - url: http://127.0.0.1:{sink}/am\n    send_resolved: false\n"
    )
    return prom, am


async def wait_ready(session: aiohttp.ClientSession, url: str) -> None:
    for _ in range(300):
        try:
            async with session.get(url) as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"not ready: {url}")


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    return (
        f"median {statistics.median(ordered):7.3f} s  min {ordered[0]:7.3f} s"
        f"  max {ordered[-1]:7.3f} s"
    )


async def run_setting(
    name: str,
    trials: list[str],
    tmp: Path,
    ours_port: int,
    sink_port: int,
    sink: Sink,
    session: aiohttp.ClientSession,
    first_trial: int,
    after: dict[str, float],
) -> dict[str, float]:
    """Start Prometheus and Alertmanager for one setting, run its trials; warning instants."""
    prom_port, am_port = free_port(), free_port()
    prom_cfg, am_cfg = write_peer_configs(tmp, name, ours_port, sink_port, am_port)
    prometheus = shutil.which("prometheus")
    alertmanager = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    assert prometheus and alertmanager, "install the Debian packages prometheus, alertmanager"
    logs = (tmp / f"{name}-am.log").open("wb"), (tmp / f"{name}-prom.log").open("wb")
    am_proc = subprocess.Popen(  # noqa: ASYNC220 - starts and returns
        [
            alertmanager,
            f"--config.file={am_cfg}",
            f"--storage.path={tmp / (name + '-am-data')}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",  # no gossip: no settle wait before sending
        ],
        stdout=logs[0],
        stderr=subprocess.STDOUT,
    )
    prom_proc = subprocess.Popen(  # noqa: ASYNC220 - starts and returns
        [
            prometheus,
            f"--config.file={prom_cfg}",
            f"--storage.tsdb.path={tmp / (name + '-prom-data')}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=logs[1],
        stderr=subprocess.STDOUT,
    )
    warnings: dict[str, float] = {}
    try:
        await wait_ready(session, f"http://127.0.0.1:{am_port}/-/ready")
        await wait_ready(session, f"http://127.0.0.1:{prom_port}/-/ready")
        scrape = SETTINGS[name][0]
        await asyncio.sleep(2 * scrape + 1)  # the target is up and scraped before trial 1
        low, high = SETTINGS[name][3]
        for n, source in enumerate(trials):
            await asyncio.sleep(random.uniform(low, high))
            created = int(time.time())
            page = str(9000 + first_trial + n)
            body = comment(page, first_trial + n, created)
            signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            async with session.post(
                f"http://127.0.0.1:{ours_port}/webhooks/facebook",
                data=body,
                headers={"X-Hub-Signature-256": f"sha256={signature}"},
            ) as response:
                assert response.status == 200, await response.text()
            warnings[source] = created + after[source]
        limit = time.time() + WARN_AFTER + 3 * (SETTINGS[name][0] + SETTINGS[name][2]) + 30
        while time.time() < limit and not all(s in sink.am and s in sink.ours for s in trials):  # noqa: ASYNC110
            await asyncio.sleep(0.2)
    finally:
        for proc in (prom_proc, am_proc):
            proc.terminate()
            proc.wait(timeout=30)
        for log in logs:
            log.close()
    return warnings


async def main(args: argparse.Namespace) -> None:
    """Run both settings and print every latency and the ratios."""
    counts = {"tight": args.tight, "common": args.common}
    names = {k: [f"{k}-{i}" for i in range(v)] for k, v in counts.items()}
    after = {n: WARN_AFTER + random.random() for k in names for n in names[k]}
    ours_port, sink_port = free_port(), free_port()
    sink = Sink()
    sink_app = web.Application()
    sink_app.router.add_post("/ours", sink.handle_ours)
    sink_app.router.add_post("/am", sink.handle_am)
    sink_runner = web.AppRunner(sink_app)
    await sink_runner.setup()
    await web.TCPSite(sink_runner, "127.0.0.1", sink_port).start()
    results: dict[str, tuple[list[float], list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        config = tmp / "service.toml"
        config.write_text(service_config(tmp / "b.db", ours_port, sink_port, after))
        app = create_app(load_config(config), start_polling=False)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", ours_port).start()
        try:
            async with aiohttp.ClientSession() as session:
                first = 0
                for name in ("tight", "common"):
                    if not names[name]:
                        continue
                    scrape, evaluation, group_wait, _ = SETTINGS[name]
                    print(
                        f"{name}: scrape {scrape}s, evaluation {evaluation}s,"
                        f" group_wait {group_wait}s, {len(names[name])} trials ...",
                        flush=True,
                    )
                    warnings = await run_setting(
                        name, names[name], tmp, ours_port, sink_port, sink, session, first, after
                    )
                    first += len(names[name])
                    ours, am = [], []
                    for source, warned in warnings.items():
                        our = sink.ours.get(source)
                        peer = sink.am.get(source)
                        our_s = f"{our - warned:7.3f} s" if our else "   (none)"
                        peer_s = f"{peer - warned:7.3f} s" if peer else "   (none)"
                        ratio = f"{(peer - warned) / (our - warned):8.0f}x" if our and peer else ""
                        print(
                            f"  {source:10} ours {our_s}   prometheus+alertmanager {peer_s} {ratio}"
                        )
                        if our:
                            ours.append(our - warned)
                        if peer:
                            am.append(peer - warned)
                    results[name] = (ours, am)
        finally:
            await runner.cleanup()
            await sink_runner.cleanup()
    print("\nwarning instant -> webhook at the local receiver:")
    for name, (ours, am) in results.items():
        scrape, evaluation, group_wait, _ = SETTINGS[name]
        print(f"  {name} ({scrape}s/{evaluation}s/{group_wait}s):")
        if ours:
            print(f"    ours                    {summary(ours)}  (goal: < 0.2 s)")
        if am:
            print(f"    prometheus+alertmanager {summary(am)}")
        if ours and am:
            ratio = statistics.median(am) / statistics.median(ours)
            print(f"    ratio of medians (theirs / ours): {ratio:.0f}x")
    if args.save_alertmanager_body and sink.am_bodies:
        saved = json.dumps(sink.am_bodies[0], indent=2)
        Path(args.save_alertmanager_body).write_text(saved)  # noqa: ASYNC240 - at the end
        print(f"first Alertmanager body saved to {args.save_alertmanager_body}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tight", type=int, default=10, help="trials at 1s/1s/1s")
    parser.add_argument("--common", type=int, default=6, help="trials at 15s/15s/30s")
    parser.add_argument("--save-alertmanager-body", metavar="FILE")
    asyncio.run(main(parser.parse_args(sys.argv[1:])))
