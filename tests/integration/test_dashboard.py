"""The dashboard at `/` in a real headless Chromium, against a real worker that processed real images.

Chromium is driven over the Chrome DevTools Protocol (a WebSocket, spoken here with aiohttp's
client): no Selenium, no Playwright, no browser download. Debian's `chromium` package provides the
browser (`apt-get install -y chromium`). Screenshots land in `tests/artifacts/` (gitignored).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from PIL import Image

from mugpos.core.settings import Settings
from mugpos.core.topics import ensure_topics
from mugpos.streams.processes import stop_process
from mugpos.streams.producer import ImageProducer
from tests.integration.worker import free_port, running_worker
from tests.models.drawing import draw_mug_scene

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / "models" / "weights" / "yolo26n.pt"
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = Path(os.environ.get("MUGPOS_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # tests often run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--hide-scrollbars",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",  # Chromium picks a free port and writes it to DevToolsActivePort
]


# --------------------------------------------------------------------------------------------
# A minimal Chrome DevTools Protocol client
# --------------------------------------------------------------------------------------------


class Page:
    """One browser tab over CDP: commands with replies, and every event kept for later checks."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for msg in self._ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                if "id" in data:
                    future = self._pending.pop(data["id"], None)
                    if future is not None and not future.done():
                        future.set_result(data)
                else:
                    self.events.append(data)
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("DevTools connection closed"))

    async def send(self, method: str, timeout_s: float = 30.0, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = future
        await self._ws.send_json({"id": self._next_id, "method": method, "params": params})
        reply = await asyncio.wait_for(future, timeout_s)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return dict(reply.get("result", {}))

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"evaluating {expression[:80]!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout_s: float, what: str) -> Any:
        """Evaluate ``expression`` until it is truthy; fail naming ``what`` and the last value."""
        deadline = time.monotonic() + timeout_s
        value: Any = None
        while time.monotonic() < deadline:
            try:
                value = await self.evaluate(expression)
            except AssertionError as exc:  # e.g. the document is still being replaced
                value = exc
            else:
                if value:
                    return value
            await asyncio.sleep(0.25)
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; last value {value!r}")

    async def navigate(self, url: str, timeout_s: float = 30.0) -> None:
        """Open ``url`` and wait for its load event."""
        mark = len(self.events)
        result = await self.send("Page.navigate", url=url)
        if result.get("errorText"):
            raise AssertionError(f"cannot open {url}: {result['errorText']}")
        deadline = time.monotonic() + timeout_s
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events[mark:]):
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not finish loading within {timeout_s} s")
            await asyncio.sleep(0.1)

    async def viewport(self, width: int, height: int, mobile: bool = False) -> None:
        await self.send(
            "Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=mobile
        )

    async def screenshot(self, path: Path) -> bytes:
        result = await self.send("Page.captureScreenshot", timeout_s=60, format="png", captureBeyondViewport=False)
        data = base64.b64decode(result["data"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return data

    def problems(self, since: int = 0, include_network: bool = True) -> list[str]:
        """Console errors, uncaught exceptions and error log entries seen after event ``since``."""
        found = []
        for event in self.events[since:]:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                found.append(f"uncaught: {details.get('exception', {}).get('description') or details.get('text')}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                args = [str(a.get("value", a.get("description", ""))) for a in params.get("args", [])]
                found.append(f"console.{params['type']}: {' '.join(args)}")
            elif method == "Log.entryAdded":
                entry = params.get("entry", {})
                if entry.get("level") == "error" and (include_network or entry.get("source") != "network"):
                    found.append(f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}")
        return found

    async def close(self) -> None:
        await self._ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@contextlib.asynccontextmanager
async def chromium_page(log_path: Path) -> AsyncIterator[Page]:
    """Start headless Chromium with a throwaway profile and attach to its first tab."""
    if not CHROMIUM.is_file():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: the dashboard test needs Debian's chromium; "
            "install it with `apt-get install -y chromium` (or set MUGPOS_TEST_CHROMIUM to a Chromium binary)"
        )
    profile = Path(tempfile.mkdtemp(prefix="mugpos-chromium-"))
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "DBUS_SESSION_BUS_ADDRESS": "/dev/null"},
        )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Chromium did not start (exit {proc.poll()}): {log_path.read_text()[-2000:]}")
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        async with aiohttp.ClientSession() as http:
            targets: list[dict[str, Any]] = []
            while not any(t.get("type") == "page" for t in targets):
                if time.monotonic() > deadline:
                    pytest.fail(f"Chromium opened no page to drive: {targets}")
                async with http.get(f"http://127.0.0.1:{port}/json/list") as resp:
                    targets = await resp.json()
                await asyncio.sleep(0.1)
            ws_url = next(t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page")
            ws = await http.ws_connect(ws_url, max_msg_size=0)
            page = Page(ws)
            try:
                for domain in ("Page", "Runtime", "Log"):
                    await page.send(f"{domain}.enable")
                yield page
            finally:
                await page.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# The worker side
# --------------------------------------------------------------------------------------------


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.load(resp)


def wait_until(check: Callable[[], Any], timeout_s: float, what: str, proc: subprocess.Popen[bytes], log: Path) -> Any:
    """Call ``check`` until it returns something truthy; fail with the worker's log if it never does."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"worker exited ({proc.returncode}): {log.read_text()[-3000:]}"
        try:
            last = check()
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last {last!r}\n{log.read_text()[-3000:]}")


def jpeg(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


SCENES = [
    # image id, width, height, mug colour, mug centre x
    ("kitchen-red", 640, 480, (200, 30, 30), 0.45),
    ("kitchen-blue", 800, 600, (30, 60, 200), 0.35),
    ("desk-white", 600, 450, (240, 240, 235), 0.55),
    ("desk-green", 1024, 768, (40, 160, 60), 0.5),
    ("office-orange", 480, 640, (210, 120, 30), 0.5),
    ("edge-purple", 640, 480, (120, 40, 160), 0.8),
]


# --------------------------------------------------------------------------------------------
# The test
# --------------------------------------------------------------------------------------------

SNAPSHOT_JS = """(() => {
  const chart = id => { const n = document.getElementById(id); return n && {
      points: Number(n.dataset.points), max: Number(n.dataset.max), state: n.dataset.state || null,
      seriesMax: n.dataset.seriesMax || null,
      text: n.textContent, label: n.getAttribute('aria-label') }; };
  const cards = [...document.querySelectorAll('#gallery .shot')].map(c => {
      const img = c.querySelector('img');
      return { id: c.dataset.imageId, verdict: c.dataset.verdict, badge: c.querySelector('.badge').textContent,
               badgeClass: c.querySelector('.badge').className, alt: img.alt, src: img.getAttribute('src'),
               loaded: img.complete && img.naturalWidth > 0, image: c.dataset.image || null,
               rules: [...c.querySelectorAll('.rule')].map(r => r.textContent),
               reasons: [...c.querySelectorAll('.reasons li')].map(r => r.textContent) };
  });
  const banner = document.getElementById('banner');
  return { polls: Number(document.body.dataset.polls || 0), renderErrors: Number(document.body.dataset.renderErrors),
           charts: { throughput: chart('chart-throughput'), latency: chart('chart-latency'), lag: chart('chart-lag'),
                     lagParts: chart('chart-lag-parts'), gpu: chart('chart-gpu'), cache: chart('chart-cache'),
                     batch: chart('chart-batch'), dlq: chart('chart-dlq') },
           cards, galleryCards: Number(document.getElementById('gallery').dataset.cards),
           banner: banner.hidden ? null : banner.textContent,
           live: document.getElementById('live').dataset.state,
           overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
           height: document.documentElement.scrollHeight,
           externals: [...document.querySelectorAll('script[src], link[href], img[src]')]
               .map(n => n.getAttribute('src') || n.getAttribute('href'))
               .filter(u => /^(https?:)?\\/\\//.test(u) && !u.startsWith(location.origin)) };
})()"""


@pytest.fixture
def dashboard_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"model": str(WEIGHTS), "session_timeout_s": 4.0, "batch_max": 16, "batch_wait_ms": 50}
    )


def scene_jpegs(scenes: list[tuple[str, int, int, tuple[int, int, int], float]], seed: int) -> dict[str, bytes]:
    rng = np.random.default_rng()  # fresh pixels every run: the shared Redis cache must not know them
    out = {}
    for i, (image_id, w, h, colour, cx) in enumerate(scenes):
        scene, _ = draw_mug_scene(w, h, mug_colour=colour, centre_x=cx, seed=seed + i)
        scene[0, :8] = rng.integers(0, 255, size=(8, 3), dtype=np.uint8)
        out[image_id] = jpeg(scene)
    return out


def test_dashboard_shows_live_charts_and_the_latest_annotated_images_without_console_errors(
    dashboard_settings: Settings, tmp_path: Path
) -> None:
    settings = dashboard_settings
    if not CHROMIUM.is_file():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install it with `apt-get install -y chromium` (Debian)")
    payloads = scene_jpegs(SCENES[:4], seed=0)
    payloads["kitchen-red-again"] = payloads["kitchen-red"]  # same content: answered from the cache
    later = scene_jpegs(SCENES[4:], seed=10)  # produced while the page is open

    async def produce(images: dict[str, bytes], bad: bool = False) -> set[str]:
        await ensure_topics(settings)
        async with ImageProducer(settings) as producer:
            for image_id, data in images.items():
                await producer.produce_image(data, image_id=image_id, source=image_id.split("-")[0])
            if bad:  # one input that cannot be processed, so the dead-letter chart has something to show
                uri = await producer.store.put(f"dashboard/{settings.topic_prefix}notes.txt", b"not an image\n" * 20)
                await producer.send_event(
                    {"image_id": "not-an-image", "uri": uri, "source": "scanner", "captured_at": datetime.now(UTC)}
                )
        return set(images)

    asyncio.run(produce(payloads, bad=True))
    log = tmp_path / "worker.log"
    port = free_port()
    base = f"http://{settings.web_host}:{port}"
    with running_worker(settings, log, role="all", MUGPOS_WEB_PORT=str(port)) as proc:

        def listed(ids: set[str]) -> dict[str, dict[str, Any]] | None:
            found = {str(i["image_id"]): i for i in get_json(f"{base}/mugpos/latest")["images"]}
            return found if ids <= set(found) else None

        wait_until(lambda: listed(set(payloads)), 240, "/mugpos/latest to list every image", proc, log)
        wait_until(lambda: get_json(f"{base}/mugpos/stats")["dead_letters"], 60, "the dead letter", proc, log)

        def stop_worker() -> None:
            stop_process(proc)

        report = asyncio.run(
            drive_browser(base, set(payloads), lambda: produce(later), tmp_path / "chromium.log", stop_worker)
        )
    assert proc.returncode is not None
    wanted = set(payloads) | set(later)
    snap, mobile, offline = report["snapshot"], report["mobile"], report["offline"]
    stats, latest = report["stats"], {str(i["image_id"]): i for i in report["latest"]["images"]}
    charts = snap["charts"]
    # the page loads with no console errors and nothing from outside the worker
    assert report["problems"] == [], report["problems"]
    assert snap["renderErrors"] == 0 and snap["banner"] is None, snap["banner"]
    assert snap["externals"] == []
    assert snap["live"] == "live"
    # the charts show data after images flow (the measured rate saw the images produced while the page was open)
    assert charts["throughput"]["points"] > 0 and charts["throughput"]["max"] > 0, charts["throughput"]
    assert float(charts["throughput"]["seriesMax"].split(",")[0]) > 0, charts["throughput"]
    assert charts["latency"]["points"] > 0 and charts["latency"]["max"] > 0, charts["latency"]
    assert "inference" in charts["latency"]["label"]
    assert charts["batch"]["points"] > 0, charts["batch"]
    assert charts["dlq"]["points"] >= 1 and "not_an_image" in charts["dlq"]["text"], charts["dlq"]
    if stats["cache"]["hits"] + stats["cache"]["misses"]:
        assert charts["cache"]["points"] == 1, charts["cache"]
    if any(stats["lag"].values()):
        assert charts["lag"]["points"] > 0 and charts["lagParts"]["points"] > 0, charts["lag"]
    else:
        assert charts["lag"]["points"] == 0 and "No lag reported" in charts["lag"]["text"]
    if stats["gpu"]:
        assert charts["gpu"]["state"] == "gpu" and charts["gpu"]["points"] > 0, charts["gpu"]
    else:
        assert charts["gpu"]["state"] == "no-gpu" and "No GPU" in charts["gpu"]["text"], charts["gpu"]
    # the gallery shows every image, annotated, with its verdict badge (or "pending" until positions arrive)
    cards = {c["id"]: c for c in snap["cards"]}
    assert wanted <= set(cards), (sorted(cards), sorted(wanted))
    assert [c["id"] for c in snap["cards"]] == [str(i["image_id"]) for i in report["latest"]["images"]][: len(cards)]
    for image_id in wanted:
        card, result = cards[image_id], latest[image_id]
        assert card["loaded"], card
        assert card["src"].startswith(f"/mugpos/images/{image_id}/annotated.jpg")
        assert image_id in card["alt"]
        verdict = result.get("verdict")
        if verdict:
            assert card["verdict"] == verdict and verdict in card["badgeClass"].split(), card
            assert card["badge"].lower() == verdict
            assert card["reasons"] == list(result.get("reasons") or [])
        else:
            assert card["verdict"] == "pending" and card["badge"] == "Pending", card
        assert card["rules"] == list(result.get("rules") or [])
    # responsive: nothing wider than the screen, on a desktop or on a phone
    assert snap["overflow"] <= 0 and mobile["overflow"] <= 0, (snap["overflow"], mobile["overflow"])
    # the worker goes away: a banner says so, the page keeps polling and throws nothing
    assert offline["banner"] and "Retrying" in offline["banner"], offline
    assert offline["live"] == "error" and offline["renderErrors"] == 0
    assert report["offline_problems"] == [], report["offline_problems"]
    for name in ("dashboard.png", "dashboard-mobile.png", "dashboard-offline.png"):
        data = (ARTIFACTS / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 20_000, name


#: True once every wanted card shows what a fresh /mugpos/latest says (verdict, reasons, rules).
CONSISTENT_JS = """(async () => {
  const latest = await (await fetch('/mugpos/latest', {cache: 'no-store'})).json();
  const want = new Set(IDS);
  const rows = latest.images.filter(i => want.has(String(i.image_id)));
  if (rows.length < want.size) return false;
  return rows.every(i => {
    const card = document.querySelector(`#gallery .shot[data-image-id="${CSS.escape(String(i.image_id))}"]`);
    return card && card.dataset.verdict === (i.verdict || 'pending')
      && card.querySelectorAll('.rule').length === (i.rules || []).length
      && card.querySelectorAll('.reasons li').length === (i.reasons || []).length;
  });
})()"""


async def drive_browser(
    base: str,
    first: set[str],
    produce_more: Callable[[], Awaitable[set[str]]],
    log: Path,
    stop_worker: Callable[[], None],
) -> dict[str, Any]:
    async with chromium_page(log) as page:
        await page.viewport(1400, 1000)
        await page.navigate(f"{base}/")
        await page.wait_for("Number(document.body.dataset.polls || 0) >= 2", 30, "two polls of /mugpos/stats")
        await page.wait_for(cards_js(first), 30, "a gallery card for every image")
        # images flow while the page is open: the gallery and the measured rate must follow without a reload
        wanted = first | await produce_more()
        await page.wait_for(cards_js(wanted), 120, "cards for the images produced while the page was open")
        await page.wait_for(
            "Number((document.getElementById('chart-throughput').dataset.seriesMax || '0').split(',')[0]) > 0",
            30,
            "a measured throughput above zero",
        )
        # positions (verdicts) come from a second agent: wait until the cards agree with the worker, or 20 s
        with contextlib.suppress(AssertionError):
            await page.wait_for(CONSISTENT_JS.replace("IDS", json.dumps(sorted(wanted))), 20, "verdicts")
        await page.wait_for("Number(document.body.dataset.polls) >= 4", 30, "four polls")
        # show the whole page at once so every lazy image loads, then wait for them
        height = await page.evaluate("document.documentElement.scrollHeight")
        await page.viewport(1400, max(1000, int(height)))
        await page.wait_for(
            "[...document.querySelectorAll('#gallery img')].every(i => i.complete)", 30, "the annotated images"
        )
        await asyncio.sleep(0.3)
        snapshot = await page.evaluate(SNAPSHOT_JS)
        latest = await page.evaluate("fetch('/mugpos/latest', {cache: 'no-store'}).then(r => r.json())")
        stats = await page.evaluate("fetch('/mugpos/stats', {cache: 'no-store'}).then(r => r.json())")
        await page.screenshot(ARTIFACTS / "dashboard.png")

        await page.viewport(390, 844, mobile=True)
        await asyncio.sleep(0.6)  # the charts redraw for the new width
        height = await page.evaluate("document.documentElement.scrollHeight")
        await page.viewport(390, max(844, int(height)), mobile=True)
        await page.wait_for(
            "[...document.querySelectorAll('#gallery img')].every(i => i.complete)", 30, "the images on a phone"
        )
        mobile = await page.evaluate(SNAPSHOT_JS)
        await page.screenshot(ARTIFACTS / "dashboard-mobile.png")
        problems = page.problems()

        # the worker stops: the page must say so and keep polling without a single uncaught error
        await page.viewport(1400, 1000)
        await page.evaluate("window.scrollTo(0, 0)")
        mark = len(page.events)
        await asyncio.to_thread(stop_worker)
        await page.wait_for(
            "!document.getElementById('banner').hidden", 30, "the error banner after the worker stopped"
        )
        polls = await page.evaluate("Number(document.body.dataset.polls)")
        await page.wait_for(f"Number(document.body.dataset.polls) >= {polls + 2}", 20, "polling to go on")
        offline = await page.evaluate(SNAPSHOT_JS)
        await page.screenshot(ARTIFACTS / "dashboard-offline.png")
        # refused connections are logged by the browser itself (source "network"): expected here
        offline_problems = page.problems(since=mark, include_network=False)
    return {
        "snapshot": snapshot,
        "mobile": mobile,
        "offline": offline,
        "latest": latest,
        "stats": stats,
        "problems": problems,
        "offline_problems": offline_problems,
    }


def cards_js(ids: set[str]) -> str:
    return (
        f"{json.dumps(sorted(ids))}.every(id => "
        'document.querySelector(`#gallery .shot[data-image-id="${CSS.escape(id)}"]`))'
    )
