"""The queue page in headless Chromium, its token login, and the signed ack/dismiss links."""

from __future__ import annotations

import asyncio
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from monitor.clock import FakeClock
from monitor.simulator.graph_api import FakeGraphApi
from monitor.web.keys import ALERTS, COORDINATOR, STORE
from tests.e2e.cdp import Browser, chromium_path
from tests.e2e.test_alerts import T0, advance_to, settle
from tests.e2e.test_escalation import API_TOKEN, start

OTHER_TOKEN = "other-brand-token"
OTHER = f"""
[[http.api_tokens]]
token = "{OTHER_TOKEN}"
brands = ["other"]
"""


async def scripted_queue(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any
) -> tuple[Any, Any, FakeClock, dict[str, int]]:
    """Three waiting items at T0 + 10 min: one overdue, one in warning, one open."""
    clock = FakeClock(T0 + timedelta(minutes=1))
    post = graph.add_post(created_time=T0 - timedelta(hours=1), message="Night deals")
    texts = {
        "overdue": (T0 - timedelta(minutes=25), ("9001", "Ann")),
        "warning": (T0 - timedelta(minutes=15), ("9002", "Bob <b>")),
        "open": (T0, ("9003", "Cas")),
    }
    for text, (created, author) in texts.items():
        graph.add_comment(post_id=post, created_time=created, message=text, author=author)
    app, client = await start(graph, tmp_path, aiohttp_client, clock, OTHER)
    await app[COORDINATOR].poll_once("acme-fb")
    await advance_to(clock, T0 + timedelta(minutes=10))
    store = app[STORE]
    ids: dict[str, int] = {}
    for item in await store.unanswered_items():
        message = (await store.messages_by_id([item.message_id]))[item.message_id]
        ids[message.message.text] = item.message_id
    await settle(lambda: app[ALERTS] is not None, "the service")
    return app, client, clock, ids


async def test_queue_page_in_chromium_order_duty_ack_dismiss_and_screenshot(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any
) -> None:
    if chromium_path() is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (.ci/run installs it)")
        pytest.skip("chromium not installed (apt-get install chromium)")
    app, client, clock, ids = await scripted_queue(graph, tmp_path, aiohttp_client)
    base = str(client.make_url("/"))
    # Without a token: refused (401 with the login form), the API too.
    refused = await client.get("/", allow_redirects=False)
    assert refused.status == 401
    assert 'id="login"' in await refused.text()
    assert (await client.get("/api/v1/items")).status == 401

    browser = Browser(tmp_path / "chromium-profile")
    await browser.start()
    try:
        await browser.phone()
        await browser.goto(base)
        assert await browser.evaluate("!!document.querySelector('form#login')")
        assert await browser.evaluate("document.querySelectorAll('article.card').length") == 0
        await browser.type_into("input[name=token]", API_TOKEN)
        await browser.click("form#login button")
        cards = await browser.evaluate(
            "[...document.querySelectorAll('article.card')].map(e => ["
            "e.dataset.item, e.dataset.state, e.querySelector('.text').textContent,"
            " e.querySelector('.when').textContent])"
        )
        assert cards == [
            [str(ids["overdue"]), "breached", "overdue", "Overdue by 5 min"],
            [str(ids["warning"]), "warning", "warning", "5 min left"],
            [str(ids["open"]), "open", "open", "20 min left"],
        ]
        duty = await browser.evaluate("document.querySelector('section.duty').innerText")
        assert "On duty: night-nina (backup night-bram, lead lead-lisa)" in duty
        assert "Next shift: day-dirk from 08:00 CET" in duty
        assert await browser.evaluate("document.querySelector('.on-duty').textContent") == (
            "night-nina"
        )
        # Consumer text is shown as text, never as markup.
        author = await browser.evaluate(
            f"document.querySelector('#item-{ids['warning']} .meta').textContent"
        )
        assert "Bob <b>" in author
        assert await browser.evaluate("document.querySelectorAll('.meta b').length") == 0
        refresh = await browser.evaluate(
            "document.querySelector('meta[http-equiv=refresh]').content"
        )
        assert refresh == "30"

        # A click on Ack: the item is acknowledged (escalation off), still waiting.
        await browser.click(f"#item-{ids['overdue']} button.ack")
        acked = await browser.evaluate(
            f"document.querySelector('#item-{ids['overdue']} .acked').textContent"
        )
        assert acked == "Acknowledged by nina-phone"  # the token's name
        assert await browser.evaluate(
            f"document.querySelector('#item-{ids['overdue']} button.ack') === null"
        )
        follow = (await app[ALERTS].outbox.followups([ids["overdue"]]))[ids["overdue"]]
        assert (follow.acked_by, follow.stop_reason) == ("nina-phone", "acked")

        # Dismiss without a reason: nothing is preselected and the browser refuses to send it.
        card = f"#item-{ids['warning']}"
        assert await browser.evaluate(f"document.querySelector('{card} select').value") == ""
        await browser.click(f"{card} button.dismiss", navigates=False)
        still = await browser.evaluate(f"document.querySelector('{card}') !== null")
        assert still
        assert (await app[STORE].items_by_id([ids["warning"]]))[ids["warning"]].state.value != (
            "dismissed"
        )
        # With the reason chosen ("no reply needed"): gone from the queue at once, with an
        # Undo button for 10 seconds; only then is it dismissed.
        await browser.evaluate(f"document.querySelector('{card} select').value = 'no_reply_needed'")
        await browser.click(f"{card} button.dismiss")
        remaining = await browser.evaluate(
            "[...document.querySelectorAll('article.card')].map(e => e.dataset.item)"
        )
        assert remaining == [str(ids["overdue"]), str(ids["open"])]
        undo = f"#undo-{ids['warning']}"
        notice = await browser.evaluate(f"document.querySelector('{undo}').innerText")
        at = (clock.now() + timedelta(seconds=10)).astimezone(ZoneInfo("Europe/Amsterdam"))
        assert f"Item {ids['warning']} will be dismissed (No reply needed) at {at:%H:%M:%S}." in (
            notice
        )
        item = (await app[STORE].items_by_id([ids["warning"]]))[ids["warning"]]
        assert item.state.value == "warning"  # not yet
        # Undo: the card is back and nothing was dismissed, even after the 10 s.
        await browser.click(f"{undo} button")
        assert await browser.evaluate(f"document.querySelector('{card}') !== null")
        assert await browser.evaluate(f"document.querySelector('{undo}') === null")
        await clock.advance(11)
        item = (await app[STORE].items_by_id([ids["warning"]]))[ids["warning"]]
        assert item.state.value == "warning"
        # Dismissed again and left alone: done once its 10 s are up; out of the figures.
        await browser.evaluate(f"document.querySelector('{card} select').value = 'no_reply_needed'")
        await browser.click(f"{card} button.dismiss")
        await clock.advance(10)

        for _ in range(600):  # the dismissal runs in the background, with real store I/O
            item = (await app[STORE].items_by_id([ids["warning"]]))[ids["warning"]]
            if item.state.value == "dismissed":
                break
            await asyncio.sleep(0.05)
        assert (item.state.value, item.dismissed_reason) == ("dismissed", "no_reply_needed")
        await browser.goto(base)
        assert await browser.evaluate(f"document.querySelector('{undo}') === null")
        assert await browser.evaluate(f"document.querySelector('{card}') === null")

        shot = await browser.screenshot(tmp_path / "queue-page.png")
        print(f"\nqueue page screenshot: {shot}")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert shot.stat().st_size > 5000
    finally:
        await browser.close()


async def test_queue_login_cookie_brand_scope_and_csrf(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any
) -> None:
    _app, client, _clock, ids = await scripted_queue(graph, tmp_path, aiohttp_client)
    bad = await client.get("/?token=nope", allow_redirects=False)
    assert bad.status == 401
    # A token for another brand sees nothing of acme's, and cannot touch its items.
    other = await client.get(f"/?token={OTHER_TOKEN}", allow_redirects=False)
    assert other.status == 303 and other.headers["Location"] == "/"
    cookie = other.cookies["webcare_token"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    page = await (await client.get("/")).text()
    assert "Nothing is waiting." in page and "overdue" not in page
    forbidden = await client.post(
        f"/api/v1/items/{ids['open']}/ack", headers={"Authorization": f"Bearer {OTHER_TOKEN}"}
    )
    assert forbidden.status == 404
    # Logged in with acme's token: a POST without the page's CSRF field is refused.
    await client.get(f"/?token={API_TOKEN}", allow_redirects=False)
    page = await (await client.get("/")).text()
    assert page.index(">overdue<") < page.index(">warning<") < page.index(">open<")
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert csrf is not None
    forged = await client.post(f"/items/{ids['open']}/ack", data={"csrf": "x"})
    assert forged.status == 403
    done = await client.post(
        f"/items/{ids['open']}/ack", data={"csrf": csrf.group(1)}, allow_redirects=False
    )
    assert done.status == 303


async def test_signed_links_confirm_on_get_act_on_post_and_expire(
    graph: FakeGraphApi, tmp_path: Path, aiohttp_client: Any
) -> None:
    app, client, clock, ids = await scripted_queue(graph, tmp_path, aiohttp_client)
    links = app[ALERTS].links
    ack = links.action_url("ack", ids["open"], clock.now()).removeprefix(links.base_url)
    dismiss = links.action_url("dismiss", ids["warning"], clock.now())
    dismiss = dismiss.removeprefix(links.base_url)
    # Opening the link (a chat app's preview does) changes nothing.
    confirm = await client.get(ack)
    assert confirm.status == 200
    assert "Acknowledge item" in await confirm.text()
    assert not (await app[ALERTS].outbox.followups([ids["open"]]))
    tampered = ack.replace("sig=", "sig=0")
    assert (await client.post(tampered[: len(ack)])).status == 403
    assert (await client.post(ack.replace(f"/act/{ids['open']}/", "/act/999/"))).status == 403
    assert (await client.post(ack)).status == 200
    assert (await app[ALERTS].outbox.followups([ids["open"]]))[ids["open"]].acked_by == "link"
    response = await client.post(dismiss, data={"reason": "spam"})
    assert response.status == 200, await response.text()
    item = (await app[STORE].items_by_id([ids["warning"]]))[ids["warning"]]
    assert item.dismissed_reason == "spam"
    # After link_ttl (7 days by default) the link no longer works.
    later = links.action_url("ack", ids["overdue"], clock.now()).removeprefix(links.base_url)
    await advance_to(clock, clock.now() + timedelta(days=7, seconds=1))
    assert (await client.post(later)).status == 403
