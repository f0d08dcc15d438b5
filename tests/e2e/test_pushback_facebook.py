"""Issue 13 on Facebook: the service keeps reading a page while Graph pushes back.

Each test runs the real app (coordinator, pipeline, SQLite store) against the fake Graph API in
one of its push-back modes: a throttle code on every Nth call, a 5xx burst, truncated bodies,
one object that cannot be read, a refused batch, an off-origin redirect, "Require App Secret".
Counts are taken at the fake, as Facebook would count them.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.config import load_config
from monitor.poller import Coordinator
from monitor.simulator.graph_api import FakeGraphApi, GraphError, HttpStatus, TruncatedBody
from monitor.web.keys import COORDINATOR, METRICS, SCHEDULER, STORE
from tests.e2e.conftest import PAGE_ID, TOKEN, write_config

NOW = datetime(2026, 11, 20, 20, 0, tzinfo=UTC)
SOURCE = "acme-fb"
MAX_RATIO = 1.3
CONSUMER = ("8001", "Consumer")


def script_year(graph: FakeGraphApi, *, posts: int = 150) -> set[str]:
    """A year of posts, a few comments each, every tenth thread longer than one comments page
    (100) and answered by the page at its end; returns every platform id the page holds."""
    ids: set[str] = set()
    for number in range(posts):
        at = NOW - timedelta(days=360 * (posts - number) / posts)
        post = graph.add_post(created_time=at, message=f"deal {number}")
        ids.add(post)
        comments = 120 if number % 10 == 0 else 3
        for index in range(comments):
            ids.add(
                graph.add_comment(
                    post_id=post,
                    created_time=at + timedelta(minutes=index + 1),
                    message=f"question {index}",
                    author=CONSUMER,
                )
            )
        if comments > 3:
            # Answered: the long threads' 120 questions never breach (keeps the test light).
            ids.add(
                graph.add_comment(
                    post_id=post, created_time=at + timedelta(hours=3), message="Answered!"
                )
            )
    return ids


@pytest.fixture
async def app_for(tmp_path: Path, aiohttp_client: Any) -> AsyncIterator[Any]:
    """Build a started app (polling by hand) for a fake Graph API; `extra` goes in the source."""

    async def build(graph: FakeGraphApi, extra: str = "", name: str = "c") -> web.Application:
        config = load_config(
            write_config(
                tmp_path / f"{name}.toml",
                api_base_url=graph.base_url,
                database_url=f"sqlite+aiosqlite:///{tmp_path}/{name}.db",
                extra=extra,
            )
        )
        app = create_app(config, clock=FakeClock(NOW), start_polling=False)
        await aiohttp_client(app)
        return app

    yield build


async def poll_until_complete(app: web.Application, limit: int = 400) -> int:
    """Poll as the coordinator would (each next poll after the delay it asked for) until a
    poll completes; returns the number of polls."""
    coordinator: Coordinator = app[COORDINATOR]
    clock = coordinator._clock
    assert isinstance(clock, FakeClock)
    entry = coordinator.sources[SOURCE]
    for polls in range(1, limit + 1):
        before = entry.polls
        delay = await coordinator.poll_once(SOURCE)
        if entry.polls > before:
            return polls
        await clock.advance(delay)
    raise AssertionError(f"the backfill never completed in {limit} polls")


async def stored_ids(app: web.Application) -> Counter[str]:
    return Counter(m.message.platform_id for m in await app[STORE].all_messages(SOURCE))


def calls(graph: FakeGraphApi) -> int:
    """Graph calls of polling (the token check every 6 h is not part of it)."""
    return graph.graph_calls - sum("debug_token" in call.path for call in graph.calls)


async def backfill(app_for: Any, fault: Any, every: int, name: str) -> tuple[int, int, int]:
    """A year's backfill with `fault` on every `every`-th call: (calls, HTTP requests, polls)."""
    graph = FakeGraphApi(page_id=PAGE_ID, page_name="Acme", access_token=TOKEN)
    await graph.start()
    try:
        expected = script_year(graph)
        if fault is not None:
            graph.inject_every(fault, every)
        app = await app_for(graph, "backfill_days = 365", name)
        polls = await poll_until_complete(app)
        # Every backfilled question is long past due: let the breaches fire. Their threads
        # were read after the due time, so none is read again before its breach.
        scheduler = app[SCHEDULER]
        now = app[COORDINATOR]._clock.now()
        unanswered = sum(1 for i in await app[STORE].unanswered_items() if i.due_at <= now)
        for _ in range(3000):  # breaches are one store transaction each: slow on a busy CI
            if scheduler.fired >= unanswered:
                break
            await asyncio.sleep(0.01)
        assert scheduler.fired >= unanswered, "the past-due items never breached"
        stored = await stored_ids(app)
        assert set(stored) == expected  # every post and comment ...
        assert max(stored.values()) == 1  # ... exactly once
        requests = graph.http_requests - sum("debug_token" in r.path for r in graph.requests)
        return calls(graph), requests, polls
    finally:
        await graph.stop()


THROTTLES = [
    pytest.param(GraphError(code=613), 5, id="613-every-5th"),
    pytest.param(GraphError(code=4), 5, id="4-every-5th"),
    pytest.param(GraphError(code=17), 5, id="17-every-5th"),
    pytest.param(GraphError(code=32), 5, id="32-every-5th"),
    pytest.param(GraphError(code=80001), 5, id="80001-every-5th"),
    pytest.param(HttpStatus(status=502), 7, id="502-every-7th"),
    pytest.param(GraphError(code=2, status=500), 7, id="graph-500-every-7th"),
    pytest.param(TruncatedBody(), 6, id="truncated-every-6th"),
]


@pytest.mark.parametrize(("fault", "every"), THROTTLES)
async def test_a_year_backfill_completes_under_push_back_with_few_extra_calls(
    app_for: Any, fault: Any, every: int
) -> None:
    calm_calls, calm_requests, calm_polls = await backfill(app_for, None, every, "calm")
    # Two feed pages (150 posts, 100 a page, comments expanded), and the second comments
    # page of each of the 15 long threads: nothing else, no re-reads before breaches.
    assert calm_polls == 1 and calm_calls == calm_requests == 2 + 15
    hit_calls, hit_requests, polls = await backfill(app_for, fault, every, "throttled")
    ratio = hit_calls / calm_calls
    print(
        f"\n{type(fault).__name__}{getattr(fault, 'code', '')} every {every}th call:"
        f" {hit_calls} Graph calls / {hit_requests} HTTP requests in {polls} polls, unthrottled"
        f" {calm_calls} calls / {calm_requests} requests: {ratio:.3f}x the calls"
    )
    assert polls > 1  # it was interrupted, and resumed
    assert ratio <= MAX_RATIO


async def test_no_multi_id_reads_and_many_active_threads_arrive(app_for: Any) -> None:
    graph = FakeGraphApi(page_id=PAGE_ID, page_name="Acme", access_token=TOKEN)
    await graph.start()
    try:
        posts = [
            graph.add_post(created_time=NOW - timedelta(days=10, minutes=i), message="p")
            for i in range(60)
        ]
        app = await app_for(graph, "backfill_days = 30")
        await poll_until_complete(app)
        late = [
            graph.add_comment(
                post_id=post, created_time=NOW - timedelta(minutes=5), message="?", author=CONSUMER
            )
            for post in posts
        ]
        await app[COORDINATOR].poll_once(SOURCE)
        assert set(late) <= set(await stored_ids(app))
        assert not [query for _, query in graph.requests if "ids" in query]
        # 59 old threads in two batch POSTs (50 + 9), beside the feed's own GET.
        assert sum(path == "/v26.0/" for path, _ in graph.requests) == 2
    finally:
        await graph.stop()


async def test_one_thread_graph_refuses_is_skipped_counted_once_and_retried_slowly(
    app_for: Any, graph: FakeGraphApi
) -> None:
    posts = [
        graph.add_post(created_time=NOW - timedelta(days=5, minutes=i), message="p")
        for i in range(3)
    ]
    for post in posts:
        graph.add_comment(
            post_id=post, created_time=NOW - timedelta(days=4), message="?", author=CONSUMER
        )
    app = await app_for(graph, "backfill_days = 30")
    await poll_until_complete(app)
    bad = posts[1]
    graph.inject(
        GraphError(code=100, message="(#100) Unsupported post"),
        times=None,
        path_contains=f"/{bad}/comments",
    )
    news = []
    coordinator: Coordinator = app[COORDINATOR]
    clock = coordinator._clock
    assert isinstance(clock, FakeClock)
    for minute in range(5):
        news.append(
            graph.add_comment(
                post_id=posts[0], created_time=clock.now(), message=f"n{minute}", author=CONSUMER
            )
        )
        await coordinator.poll_once(SOURCE)
        await clock.advance(60)
    entry = coordinator.sources[SOURCE]
    assert entry.up is True
    assert set(news) <= set(await stored_ids(app))  # the rest of the page is read
    skipped = app[METRICS].source_skipped.labels("acme", SOURCE, "bad_request")._value.get()
    assert skipped == 1  # one object, counted once over five polls
    tries = sum(path.endswith(f"/{bad}/comments") for path, _ in graph.calls)
    assert tries == 1  # not re-read on every poll: its retry waits 5 minutes
    await coordinator.poll_once(SOURCE)  # 5 minutes after the refusal
    assert sum(path.endswith(f"/{bad}/comments") for path, _ in graph.calls) == 2


async def test_a_malformed_comment_is_skipped_and_the_thread_is_kept(
    app_for: Any, graph: FakeGraphApi
) -> None:
    post = graph.add_post(created_time=NOW - timedelta(hours=2), message="p")
    good = graph.add_comment(
        post_id=post, created_time=NOW - timedelta(hours=1), message="?", author=CONSUMER
    )
    broken = graph.add_comment(
        post_id=post, created_time=NOW - timedelta(minutes=50), message="x", author=CONSUMER
    )
    hidden_author = graph.add_comment(
        post_id=post, created_time=NOW - timedelta(minutes=40), message="y", anonymous=True
    )
    graph.break_object(broken)
    app = await app_for(graph)
    await poll_until_complete(app)
    stored = await stored_ids(app)
    assert {post, good, hidden_author} <= set(stored) and broken not in stored
    assert app[METRICS].source_skipped.labels("acme", SOURCE, "malformed")._value.get() == 1
    assert app[COORDINATOR].sources[SOURCE].up is True


async def test_an_off_origin_redirect_is_refused_and_gets_no_token(
    app_for: Any, graph: FakeGraphApi, aiohttp_server: Any
) -> None:
    seen: list[dict[str, str]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({"data": []})

    elsewhere = web.Application()
    elsewhere.router.add_route("*", "/{tail:.*}", record)
    other = await aiohttp_server(elsewhere)
    target = str(other.make_url("/stolen"))
    graph.inject(HttpStatus(status=302, body="", headers={"Location": target}), times=None)
    app = await app_for(graph)
    coordinator: Coordinator = app[COORDINATOR]
    await coordinator.poll_once(SOURCE)
    assert coordinator.sources[SOURCE].up is False
    assert seen == []  # nothing, let alone the token, reached the other origin
    errors = app[METRICS].poll_errors.labels("acme", SOURCE, "fatal")._value.get()
    assert errors == 1


async def test_appsecret_proof_goes_with_every_call(app_for: Any, graph: FakeGraphApi) -> None:
    graph.app_secret = "app-secret-4f1c"
    graph.require_app_secret = True
    old = graph.add_post(created_time=NOW - timedelta(days=20), message="old")
    graph.add_comment(
        post_id=old, created_time=NOW - timedelta(days=1), message="?", author=CONSUMER
    )
    other = graph.add_post(created_time=NOW - timedelta(days=21), message="older")
    graph.add_comment(
        post_id=other, created_time=NOW - timedelta(days=1), message="?", author=CONSUMER
    )
    graph.add_post(created_time=NOW - timedelta(hours=1), message="new")

    without = await app_for(graph, "backfill_days = 30", "without")
    await without[COORDINATOR].poll_once(SOURCE)
    assert without[COORDINATOR].sources[SOURCE].up is False
    assert without[METRICS].poll_errors.labels("acme", SOURCE, "auth")._value.get() == 1

    # The secret of [facebook_webhook] is used when the source names none.
    webhook = '\n[facebook_webhook]\napp_secret = "app-secret-4f1c"\nverify_token = "v"\n'
    app = await app_for(graph, "backfill_days = 30\n" + webhook, "with")
    await poll_until_complete(app)
    await app[COORDINATOR]._clock.advance(60)
    await app[COORDINATOR].poll_once(SOURCE)  # active threads read in a batch POST
    assert app[COORDINATOR].sources[SOURCE].up is True
    assert len(await stored_ids(app)) == 5
    assert any(path == "/v26.0/" for path, _ in graph.requests)  # the batch took it too


async def shared_token_backfill(tmp_path: Path, aiohttp_client: Any, throttle: bool) -> int:
    """Ten pages on one token (one poll group, shared batch POSTs) backfill a year; the
    Graph calls it took, each item checked stored exactly once."""
    graph = FakeGraphApi(access_token=TOKEN)
    await graph.start()
    try:
        expected: set[str] = set()
        pages = [str(610_000_000 + n) for n in range(10)]
        for number, page in enumerate(pages):
            graph.add_page(page, f"Brand {number}")
            for index in range(20):
                at = NOW - timedelta(days=18 * (20 - index), hours=number)
                post = graph.add_post(created_time=at, message="deal", page_id=page)
                expected.add(post)
                for minute in range(110 if index == 5 else 2):
                    expected.add(
                        graph.add_comment(
                            post_id=post,
                            created_time=at + timedelta(minutes=minute + 1),
                            message="?",
                            author=CONSUMER,
                        )
                    )
        if throttle:
            graph.inject_every(GraphError(code=613), 5)
        blocks = "".join(
            f'[[sources]]\ntype = "facebook_page"\nname = "page-{n}"\nbrand = "b{n}"\n'
            f'page_id = "{page}"\naccess_token = "{TOKEN}"\napi_base_url = "{graph.base_url}"\n'
            'backfill_days = 365\nrequest_timeout = "5s"\n'
            for n, page in enumerate(pages)
        )
        name = "throttled" if throttle else "calm"
        path = tmp_path / f"{name}.toml"
        path.write_text(
            f'database_url = "sqlite+aiosqlite:///{tmp_path}/{name}.db"\n{blocks}', "utf-8"
        )
        app = create_app(load_config(path), clock=FakeClock(NOW), start_polling=False)
        await aiohttp_client(app)
        coordinator: Coordinator = app[COORDINATOR]
        clock = coordinator._clock
        assert isinstance(clock, FakeClock)
        names = sorted(coordinator.sources)
        assert len({coordinator.sources[n].group for n in names}) == 1  # batched together
        for _ in range(100):
            left = [n for n in names if coordinator.sources[n].polls == 0]
            if not left:
                break
            delays = await asyncio.gather(*(coordinator.poll_once(n) for n in left))
            await clock.advance(max(delays))
        stored: Counter[str] = Counter()
        for source in names:
            stored.update(m.message.platform_id for m in await app[STORE].all_messages(source))
        assert set(stored) == expected and max(stored.values()) == 1
        return calls(graph)
    finally:
        await graph.stop()


async def test_pages_sharing_a_token_backfill_under_a_throttle(
    tmp_path: Path, aiohttp_client: Any
) -> None:
    calm = await shared_token_backfill(tmp_path, aiohttp_client, throttle=False)
    throttled = await shared_token_backfill(tmp_path, aiohttp_client, throttle=True)
    print(
        f"\n10 pages on one token: {throttled} calls throttled vs {calm}: {throttled / calm:.3f}x"
    )
    assert throttled / calm <= MAX_RATIO
