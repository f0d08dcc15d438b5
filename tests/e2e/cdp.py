"""A minimal Chrome DevTools Protocol client over aiohttp: drive headless Chromium in tests.

Only what the queue-page test needs: open a page, wait for loads, read the DOM through
Runtime.evaluate, click with real mouse events at an element's centre, type into a field,
emulate a phone screen and take a screenshot. Chromium is Debian's package (`chromium`); no
browser download and no extra Python dependency.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--remote-debugging-port=0",
)


def chromium_path() -> str | None:
    """The Chromium binary, if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """One headless Chromium with a fresh profile, and one page in it."""

    def __init__(self, profile: Path) -> None:
        self.profile = profile
        self.process: subprocess.Popen[bytes] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._events: list[tuple[str, dict[str, Any]]] = []
        self._event_seen = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self.page_session = ""

    async def start(self) -> None:
        binary = chromium_path()
        assert binary is not None
        self.profile.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(  # noqa: ASYNC220 (returns at once; never waited on here)
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "HOME": str(self.profile)},
        )
        port_file = self.profile / "DevToolsActivePort"
        for _ in range(300):
            if port_file.exists() and len(port_file.read_text().splitlines()) >= 2:
                break
            await asyncio.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        self._session = aiohttp.ClientSession()
        self._ws = await self._session.ws_connect(f"ws://127.0.0.1:{port}{path}", max_msg_size=0)
        self._reader = asyncio.create_task(self._read())
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        self.page_session = attached["sessionId"]
        await self.page("Page.enable")
        await self.page("Runtime.enable")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    async def _read(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            data = message.json()
            if "id" in data and data["id"] in self._pending:
                future = self._pending.pop(data["id"])
                if "error" in data:
                    future.set_exception(RuntimeError(str(data["error"])))
                else:
                    future.set_result(data.get("result", {}))
            elif "method" in data:
                self._events.append((data["method"], data.get("params", {})))
                self._event_seen.set()

    async def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        assert self._ws is not None
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        await self._ws.send_json(message)
        return await asyncio.wait_for(future, 30)

    async def page(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """A command for the page's session."""
        return await self.send(method, params, self.page_session)

    async def _wait_event(self, name: str, since: int, seconds: float = 15) -> None:
        async def seen() -> None:
            while not any(m == name for m, _ in self._events[since:]):
                self._event_seen.clear()
                await self._event_seen.wait()

        await asyncio.wait_for(seen(), seconds)

    async def goto(self, url: str) -> None:
        """Navigate and wait for the load event."""
        mark = len(self._events)
        await self.page("Page.navigate", {"url": url})
        await self._wait_event("Page.loadEventFired", mark)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = await self.page(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}
        )
        if "exceptionDetails" in result:
            raise RuntimeError(str(result["exceptionDetails"]))
        return result["result"].get("value")

    async def click(self, selector: str, *, navigates: bool = True) -> None:
        """A real mouse click at the centre of the element (and wait for the next page)."""
        box = await self.evaluate(
            f"(() => {{ const e = document.querySelector({selector!r});"
            " if (!e) return null; e.scrollIntoView({block: 'center'});"
            " const r = e.getBoundingClientRect();"
            " return {x: r.left + r.width / 2, y: r.top + r.height / 2}; })()"
        )
        assert box is not None, f"no element {selector}"
        mark = len(self._events)
        for kind in ("mousePressed", "mouseReleased"):
            await self.page(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": box["x"], "y": box["y"], "button": "left", "clickCount": 1},
            )
        if navigates:
            await self._wait_event("Page.loadEventFired", mark)

    async def type_into(self, selector: str, text: str) -> None:
        """Focus a field and type text into it as keyboard input."""
        await self.evaluate(f"document.querySelector({selector!r}).focus()")
        await self.page("Input.insertText", {"text": text})

    async def phone(self) -> None:
        """A phone-sized screen (390 × 844 CSS pixels, as an iPhone 14)."""
        await self.page(
            "Emulation.setDeviceMetricsOverride",
            {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True},
        )

    async def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page."""
        shot = await self.page(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
        )
        path.write_bytes(base64.b64decode(shot["data"]))  # noqa: ASYNC240 (a test, tiny file)
        return path
