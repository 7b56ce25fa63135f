"""The wallboard in a real browser (Debian's Chromium driven by Playwright): events produced into
Kafka change the numbers on the page; a page whose API went away catches up when it returns;
boards rotate; an alert brings its board to the front; both sizes fit a TV without scrolling."""

from __future__ import annotations

import shutil
import time
from datetime import datetime, timedelta, timezone

import pytest
from playwright.async_api import TimeoutError as PlaywrightTimeout

from salespulse.devstack.servers import free_port
from tests.integration.conftest import (
    AlertingService,
    cloudevent,
    eventually,
    processor_env,
    send,
    start_api,
    unavailable,
    unique,
)

pytestmark = pytest.mark.usefixtures("processor")


@pytest.fixture(scope="module")
def api_server(settings, tmp_path_factory):
    log = tmp_path_factory.mktemp("wallboard") / "api.log"
    proc, url = start_api(settings, log)
    server = {"proc": proc, "url": url, "log": log}
    yield server
    server["proc"].terminate()
    server["proc"].wait(10)


@pytest.fixture(scope="module")
async def browser():
    executable = shutil.which("chromium")
    if executable is None:
        unavailable("Chromium is not installed (make deps installs the Debian package)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        await browser.close()


def call(rep: str, status: str = "answered", direction: str = "outbound") -> dict:
    now = datetime.now(timezone.utc)
    data = {"call_id": unique("call"), "rep_id": rep, "direction": direction, "status": status,
            "started_at": now.isoformat(), "ended_at": (now + timedelta(seconds=30)).isoformat()}
    if status == "answered":
        data["answered_at"] = now.isoformat()
    return cloudevent("call.ended", data)


async def tile_text(page, kpi: str) -> str:
    return (await page.locator(f'main .kind-tile[data-kpi="{kpi}"] .value').first.inner_text()).strip()


async def wait_for_text(page, kpi: str, text: str, timeout: float = 15.0) -> float:
    """Seconds until the tile shows `text`."""
    started = time.monotonic()
    try:
        await page.wait_for_function(
            "([kpi, text]) => { const n = document.querySelector(`main .kind-tile[data-kpi='${kpi}'] .value`);"
            " return n && n.textContent.trim() === text; }", arg=[kpi, text], timeout=timeout * 1000)
    except PlaywrightTimeout:  # say what the page showed: a lagging processor or a stream that stopped
        shown = await tile_text(page, kpi)
        connected = await page.evaluate("document.body.dataset.connected")
        raise AssertionError(f"{kpi} showed {shown!r}, not {text!r}, after {timeout:.0f} s "
                             f"(stream connected: {connected})") from None
    return time.monotonic() - started


async def page_showing_a_call(browser, producer, page_url: str, rep: str, width: int = 1920, height: int = 1080):
    """The telephony board at `page_url`, connected and showing the first call sent for `rep`."""
    page = await browser.new_page(viewport={"width": width, "height": height})
    await page.goto(page_url)
    await page.wait_for_selector("body[data-connected='true']")
    await send(producer, "sales.calls", "k1", call(rep))
    await wait_for_text(page, "calls_outbound", "1")
    return page


async def test_produced_events_change_the_numbers_on_the_page(browser, api_server, producer):
    rep = unique("rep")
    page = await browser.new_page(viewport={"width": 1920, "height": 1080})
    await page.goto(f"{api_server['url']}/?board=telephony&rep={rep}&lang=en")
    await page.wait_for_selector("body[data-connected='true']")
    assert await tile_text(page, "calls_outbound") == "–"  # nothing yet for this rep

    await send(producer, "sales.calls", "k1", call(rep))
    seconds = await wait_for_text(page, "calls_outbound", "1")
    await send(producer, "sales.calls", "k2", call(rep))
    await send(producer, "sales.calls", "k3", call(rep, status="missed", direction="inbound"))
    await wait_for_text(page, "calls_outbound", "2")
    await wait_for_text(page, "calls_missed", "1")
    assert seconds < 10, f"the first call took {seconds:.1f} s to show"
    fresh = page.locator('.kind-tile[data-kpi="calls_outbound"] .fresh')
    assert await fresh.inner_text() in ("just now", "5 s ago", "6 s ago", "7 s ago", "8 s ago", "9 s ago", "10 s ago")
    written = datetime.fromisoformat(await fresh.get_attribute("data-as-of"))  # this rep's value, not any other's
    assert timedelta(0) <= datetime.now(timezone.utc) - written < timedelta(seconds=30)
    await page.close()


async def test_a_page_catches_up_at_once_when_its_api_comes_back(browser, api_server, producer, settings):
    rep = unique("rep")
    page = await page_showing_a_call(browser, producer, f"{api_server['url']}/?board=telephony&rep={rep}&lang=fr",
                                     rep, 1280, 720)

    api_server["proc"].terminate()
    api_server["proc"].wait(10)
    await page.wait_for_selector("body[data-connected='false']")
    assert "reconnexion" in await page.locator("#link-text").inner_text()
    await send(producer, "sales.calls", "k2", call(rep))  # while no API is there
    await send(producer, "sales.calls", "k3", call(rep))
    port = int(api_server["url"].rsplit(":", 1)[1])
    api_server["proc"], _ = start_api(settings, api_server["log"], port=port)
    await page.wait_for_selector("body[data-connected='true']", timeout=30_000)
    await wait_for_text(page, "calls_outbound", "3")  # the state is sent again on reconnect
    assert await tile_text(page, "calls_outbound") == "3"
    await page.close()


async def test_boards_rotate(browser, api_server):
    page = await browser.new_page(viewport={"width": 1280, "height": 720})
    await page.goto(f"{api_server['url']}/?boards=sales,leaders,telephony&rotate=2")
    assert await page.get_attribute("body", "data-board") == "sales"
    await page.wait_for_function("document.body.dataset.board === 'leaders'", timeout=5000)
    await page.wait_for_function("document.body.dataset.board === 'telephony'", timeout=5000)
    await page.wait_for_function("document.body.dataset.board === 'sales'", timeout=5000)
    await page.close()


@pytest.fixture(scope="module")
def alerting(settings, tmp_path_factory):
    service = AlertingService({**processor_env(settings), "ALERTING_APP_ID": unique("salespulse-alerting"),
                               "ALERTING_METRICS_PORT": str(free_port()), "ALERT_EVAL_SECONDS": "0.2"},
                              tmp_path_factory.mktemp("alerting") / "alerting.log")
    service.start()
    yield service
    service.stop()


async def test_an_alert_brings_its_board_to_the_front(browser, api_server, api, producer, alerting):
    """An alert about the screen's scope brings its board to the front; another rep's does not (it
    did: a rep's screen turned to the telephony board for any rep's missed calls)."""
    rep, other, rule_id, others_rule = unique("rep"), unique("rep"), unique("front"), unique("elsewhere")
    rule = {"kpi": "calls_missed", "by": "rep", "key": rep, "period": "day", "levels": {"alert": {"enter": 1}}}
    assert (await api.put(f"/api/v1/rules/{rule_id}", json=rule)).status_code == 200
    assert (await api.put(f"/api/v1/rules/{others_rule}", json={**rule, "key": other})).status_code == 200
    try:
        await send(producer, "sales.calls", "k0", call(other, status="missed", direction="inbound"))
        await eventually(lambda: alert_active(api, others_rule), timeout=30)
        page = await browser.new_page(viewport={"width": 1920, "height": 1080})
        await page.goto(f"{api_server['url']}/?boards=sales,leaders,telephony&rotate=600&rep={rep}")
        await page.wait_for_selector("body[data-connected='true']")
        await page.wait_for_timeout(1500)  # the active alerts came with the stream's first events
        assert await page.get_attribute("body", "data-board") == "sales"

        await send(producer, "sales.calls", "k1", call(rep, status="missed", direction="inbound"))
        await page.wait_for_function("document.body.dataset.board === 'telephony'", timeout=20_000)
        await page.wait_for_selector('.kind-tile.alerting[data-kpi="calls_missed"]')
        assert rep in await page.locator("footer").inner_text()
        await page.close()
    finally:
        for rule in (rule_id, others_rule):
            assert (await api.delete(f"/api/v1/rules/{rule}")).status_code == 204


async def alert_active(api, rule_id: str) -> None:
    assert rule_id in [a["rule"] for a in (await api.get("/api/v1/alerts")).json()]


@pytest.mark.parametrize("width, height", [(1920, 1080), (1280, 720)])
@pytest.mark.parametrize("theme", ["dark", "light"])
async def test_every_board_fits_a_tv_screen_without_scrolling(browser, api_server, tmp_path, width, height, theme):
    page = await browser.new_page(viewport={"width": width, "height": height})
    for board in ("sales", "telephony", "leaders"):
        await page.goto(f"{api_server['url']}/?board={board}&theme={theme}&lang=fr")
        await page.wait_for_selector("body[data-connected='true']")
        await page.wait_for_timeout(300)
        layout = await page.evaluate("""() => {
            const s = document.scrollingElement;
            const tiles = [...document.querySelectorAll('main .tile')].map(t => t.getBoundingClientRect());
            const values = [...document.querySelectorAll('main .value')].map(v => ({
                text: v.textContent, size: parseFloat(getComputedStyle(v).fontSize), shrunk: v.style.fontSize !== "",
                fits: v.scrollWidth <= v.clientWidth}));
            return {scrollW: s.scrollWidth, scrollH: s.scrollHeight, tiles: tiles.map(r => [r.left, r.top, r.right, r.bottom]),
                    values, bg: getComputedStyle(document.body).backgroundColor};
        }""")
        assert layout["scrollW"] <= width and layout["scrollH"] <= height, (board, layout)
        assert layout["tiles"] and all(0 <= l and 0 <= t and r <= width + 0.5 and b <= height + 0.5
                                       for l, t, r, b in layout["tiles"]), (board, layout["tiles"])
        # Readable across a room: the numbers are 9 % of the screen height, or as large as fits
        # their tile (test_a_long_number_is_shrunk_to_fit_its_tile_never_cut); never cut.
        values = layout["values"]
        assert values and all(v["fits"] for v in values), (board, values)
        assert all(v["size"] >= 0.085 * height for v in values if not v["shrunk"]), (board, values)
        dark = layout["bg"] == "rgb(13, 17, 23)"
        assert dark == (theme == "dark"), layout["bg"]
        shot = tmp_path / f"{board}-{width}x{height}-{theme}.png"
        await page.screenshot(path=str(shot))
        assert shot.stat().st_size > 10_000
    await page.close()


@pytest.mark.parametrize("width, height", [(1920, 1080), (1280, 720)])
async def test_a_long_number_is_shrunk_to_fit_its_tile_never_cut(browser, api_server, width, height):
    """At 9 % of the screen high, "692,9 k€" was wider than a narrow tile of the sales board and
    lost its currency sign (seen at 1920x1080 in French). The page is given readings of a rep
    nothing happens to, so the live stream cannot redraw over them."""
    page = await browser.new_page(viewport={"width": width, "height": height})
    await page.goto(f"{api_server['url']}/?board=sales&lang=fr&by=rep&key={unique('rep')}")
    await page.wait_for_selector("body[data-connected='true']")
    show = """([kpi, unit, value]) => {
        const item = BOARDS.sales.find((i) => i.kind === "tile" && i.kpi === kpi);
        readings.set(specOf(item), {kpi, by: scopeBy, unit, as_of: null,
            values: [{key: scopeKey, value, target: null, attainment: null, pace: null, level: null, as_of: null}]});
        render();  // synchronous: no stream message can come in between
        const v = document.querySelector(`main .kind-tile[data-kpi="${kpi}"] .value`);
        return {text: v.textContent, size: parseFloat(getComputedStyle(v).fontSize), scroll: v.scrollWidth,
                room: v.clientWidth};
    }"""
    for kpi, unit, value, text in [("orders", "count", 123456789, "123\u202f456\u202f789"),
                                   ("gross_margin", "currency", 692_912.5, "692,9\xa0k\xa0€")]:
        long = await page.evaluate(show, [kpi, unit, value])
        assert long["text"] == text, long
        assert long["scroll"] <= long["room"], long  # all of it shows
        assert 0.04 * height <= long["size"] < 0.085 * height, long  # smaller, still readable
        short = await page.evaluate(show, [kpi, unit, 12])
        assert short["size"] >= 0.085 * height and short["scroll"] <= short["room"], short  # back to full size
    await page.close()


async def test_a_saved_profile_configures_a_screen(browser, api_server, api):
    name = unique("floor")
    profile = {"boards": ["telephony", "leaders"], "rotate": 0, "by": "team", "key": "lyon", "lang": "fr",
               "theme": "light"}
    response = await api.put(f"/api/v1/profiles/{name}", json=profile)
    assert response.status_code == 200, response.text
    bad = await api.put(f"/api/v1/profiles/{name}", json={**profile, "boards": ["casino"]})
    assert bad.status_code == 422
    page = await browser.new_page(viewport={"width": 1280, "height": 720})
    await page.goto(f"{api_server['url']}/?profile={name}&board=leaders")  # the URL wins over the profile
    await page.wait_for_selector("body[data-connected='true']")
    assert await page.get_attribute("body", "data-board") == "leaders"
    assert await page.get_attribute("body", "data-theme") == "light"
    assert await page.locator("#scope").inner_text() == "Équipe lyon"
    await page.goto(f"{api_server['url']}/?profile=nobody")
    assert "profile nobody: 404" in await page.locator("#scope").inner_text()
    await page.close()


async def test_a_wallboard_token_in_the_url_opens_a_secured_api_to_the_page(browser, settings, producer, tmp_path):
    """As deployed: keys required, a read-only wallboard token given to the TV's URL; the page
    passes it to every call, the event stream included."""
    token = "tv-lobby-token-0123456789"
    proc, url = start_api(settings, tmp_path / "api.log", SALESPULSE_ENV="production", WALLBOARD_TOKENS=token,
                          API_KEYS='{"ops": {"key": "ops-key-0123456789abcdef", "scopes": ["read", "write"]}}')
    try:
        rep = unique("rep")
        page = await page_showing_a_call(browser, producer, f"{url}/?board=telephony&rep={rep}&lang=en&token={token}",
                                         rep)
        refused = await page.evaluate("async (u) => (await fetch(u)).status", f"{url}/api/v1/kpis/calls_outbound")
        assert refused == 401, "without the token the same API refuses the page's calls"
        await page.close()
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("path, rendered", [
    ("/docs", ".opblock-summary-description"),  # Swagger UI: an operation's summary
    ("/redoc", "[data-section-id] h2"),  # ReDoc: an operation's heading
])
async def test_the_api_documentation_renders_from_the_api_alone(browser, api_server, path, rendered):
    """/docs and /redoc load their scripts and styles from the API, not a CDN: they render on a
    network with no internet (every request elsewhere is refused here, wherever the tests run;
    ReDoc's footer asks for its maker's logo, an image, and goes without)."""
    page = await browser.new_page()
    elsewhere: list[str] = []

    async def local_only(route) -> None:
        if route.request.url.startswith(api_server["url"]):
            await route.continue_()
        else:
            if route.request.resource_type != "image":
                elsewhere.append(route.request.url)
            await route.abort()

    await page.route("**/*", local_only)
    await page.goto(f"{api_server['url']}{path}")
    await page.wait_for_selector(rendered, timeout=20000)
    texts = await page.locator(rendered).all_inner_texts()
    assert any("Set a target" in text for text in texts), texts[:10]
    assert elsewhere == []
    await page.close()


async def test_a_page_whose_stream_was_refused_opens_it_again(browser, api_server, producer):
    """A proxy's 503 while the API restarts behind it: a browser closes an EventSource for good
    on an answer that is not a stream (it reconnects by itself only after network errors), so
    the screen said "reconnecting" until someone reloaded it. It opens a new one now."""
    rep, refused = unique("rep"), []

    async def refuse_twice(route):
        if len(refused) < 2:
            refused.append(route.request.url)
            await route.fulfill(status=503, content_type="text/html", body="<h1>503 Service Unavailable</h1>")
        else:
            await route.continue_()

    page = await browser.new_page(viewport={"width": 1920, "height": 1080})
    await page.route("**/api/v1/stream?*", refuse_twice)
    await page.goto(f"{api_server['url']}/?board=telephony&rep={rep}&lang=en")
    await page.wait_for_selector("body[data-connected='true']", timeout=20_000)
    assert len(refused) == 2
    await send(producer, "sales.calls", "k1", call(rep))
    await wait_for_text(page, "calls_outbound", "1")
    await page.close()
