"""Asterisk AMI connector: logs into the PBX's manager port and forwards call events.

    AMI_HOST=pbx AMI_USERNAME=salespulse AMI_SECRET=... ASTERISK_WEBHOOK_TOKEN=... \\
        python -m salespulse.ami

It subscribes to the `cdr` and `agent` event classes, keeps `Cdr`, `AgentComplete` and
`QueueCallerAbandon`, stamps each with the time it arrived when Asterisk did not
(timestampevents), and posts them in batches to the API's /webhooks/asterisk, where they go
the way of every webhook (identity, dedupe, dead letters). A refused or failed post is
retried with backoff, in order, and nothing is dropped while the process lives (an event the
API refuses as malformed is logged with the API's reason, and the rest of its batch still
goes through); a lost
connection to Asterisk is reopened with backoff. AMI keeps no history: events sent while the
connector is down are not replayed by Asterisk (its CDR backend still has them).

A quiet PBX sends nothing for hours, and a connection whose far end is gone without closing it
(a PBX host powered off, a NAT or firewall that forgot the flow) reads nothing for ever: so the
connector sends a Ping action every AMI_PING_SECONDS, which Asterisk answers, and reopens a
connection that brought nothing, not even that answer, for twice as long.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from contextlib import suppress

import httpx

from salespulse.settings import Settings, get_settings
from salespulse.webhooks.asterisk import split_events
from salespulse.webhooks.core import Malformed

log = logging.getLogger("salespulse.ami")

FORWARDED = ("Cdr", "AgentComplete", "QueueCallerAbandon")
MAX_BATCH = 200


class LoginRefused(RuntimeError):
    pass


async def read_messages(reader: asyncio.StreamReader) -> list[dict[str, str]]:
    """The AMI messages up to the next blank line: one as a rule; none for a stray blank line or
    lines that are not `Key: Value` (a command's free-text output), which are logged and
    skipped: one odd message must not stop the connector, whose events AMI does not keep."""
    raw = await reader.readuntil(b"\r\n\r\n")
    try:
        return split_events(raw.decode("utf-8", "replace"))
    except Malformed as exc:
        log.warning("skipped an AMI message: %s", exc)
        return []


async def login(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, username: str, secret: str) -> None:
    banner = await reader.readline()  # "Asterisk Call Manager/7.0.3"
    log.info("connected to %s", banner.decode(errors="replace").strip())
    writer.write(f"Action: Login\r\nActionID: salespulse-login\r\nUsername: {username}\r\nSecret: {secret}\r\n"
                 "Events: cdr,agent\r\n\r\n".encode())
    await writer.drain()
    while True:
        for message in await read_messages(reader):
            if message.get("ActionID") == "salespulse-login" or "Response" in message:
                if message.get("Response") != "Success":
                    raise LoginRefused(message.get("Message", "login refused"))
                return


class Forwarder:
    """Posts queued events to the API, oldest first, until each batch is taken."""

    def __init__(self, settings: Settings, client: httpx.AsyncClient) -> None:
        self.url = settings.ami_api_url.rstrip("/") + "/api/v1/webhooks/asterisk"
        self.headers = {"authorization": f"Bearer {settings.asterisk_webhook_token}"}
        self.client = client
        self.queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        self.max_backoff = 30.0
        self.posting = False  # a batch is out of the queue and not yet taken

    async def run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while not self.queue.empty() and len(batch) < MAX_BATCH:
                batch.append(self.queue.get_nowait())
            self.posting = True
            try:
                await self._post(batch)
            finally:
                self.posting = False

    async def _post(self, batch: list[dict[str, str]]) -> None:
        delay = 0.5
        while True:
            try:
                response = await self.client.post(self.url, json=batch, headers=self.headers)
                if response.status_code == 200:
                    log.debug("forwarded %d events", len(batch))
                    return
                if response.status_code == 422:  # one bad event refuses its whole batch
                    if len(batch) == 1:  # will never be taken: say which and move on
                        log.error("API refused the AMI event %s: %s", batch[0], response.text)
                        return
                    for event in batch:  # the others must not go down with it
                        await self._post([event])
                    return
                log.warning("API answered %s: %s; retrying in %.1fs", response.status_code, response.text[:300], delay)
            except httpx.HTTPError as exc:
                log.warning("API unreachable (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_backoff)


class Silent(Exception):
    """The connection brought nothing, not even the answer to a ping, for too long."""


async def ping(writer: asyncio.StreamWriter, every: float) -> None:
    """A Ping action every `every` seconds; a write that fails is left to the reader's timeout."""
    sent = 0
    while True:
        await asyncio.sleep(every)
        sent += 1
        writer.write(f"Action: Ping\r\nActionID: salespulse-ping-{sent}\r\n\r\n".encode())
        with suppress(ConnectionError):
            await writer.drain()


async def heard(reader: asyncio.StreamReader, within: float) -> list[dict[str, str]]:
    """The next messages, or Silent if none came within `within` seconds."""
    try:
        return await asyncio.wait_for(read_messages(reader), within)
    except asyncio.TimeoutError:
        raise Silent(f"nothing from AMI for {within:g} s, not even the answer to a ping") from None


async def follow(settings: Settings, forwarder: Forwarder) -> None:
    """Stay logged into AMI and queue the call events it sends, reconnecting when needed."""
    delay = 0.5
    while True:
        try:
            reader, writer = await asyncio.open_connection(settings.ami_host, settings.ami_port)
        except OSError as exc:
            log.warning("AMI %s:%s unreachable (%s); retrying in %.1fs", settings.ami_host, settings.ami_port, exc, delay)
        else:
            pinging = None
            try:
                await asyncio.wait_for(login(reader, writer, settings.ami_username or "", settings.ami_secret or ""),
                                       2 * settings.ami_ping_seconds)
                log.info("logged into AMI as %s", settings.ami_username)
                if settings.ami_health_file:
                    settings.ami_health_file.touch()
                delay = 0.5
                pinging = asyncio.create_task(ping(writer, settings.ami_ping_seconds))
                while True:
                    for message in await heard(reader, 2 * settings.ami_ping_seconds):
                        if message.get("Event") in FORWARDED:
                            message.setdefault("Timestamp", f"{time.time():.6f}")
                            forwarder.queue.put_nowait(message)
            except LoginRefused as exc:
                log.error("AMI login refused: %s", exc)
            except asyncio.TimeoutError:
                log.warning("AMI did not answer the login within %g s; reconnecting", 2 * settings.ami_ping_seconds)
            except Silent as exc:
                log.warning("%s; reconnecting", exc)
            except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError) as exc:
                log.warning("AMI connection lost (%s); reconnecting", exc.__class__.__name__)
            finally:
                if pinging is not None:
                    pinging.cancel()
                if settings.ami_health_file:
                    settings.ami_health_file.unlink(missing_ok=True)
                writer.close()
                with suppress(Exception):
                    await writer.wait_closed()
        await asyncio.sleep(delay)
        delay = min(delay * 2, 30.0)


async def main() -> None:
    settings = get_settings()
    if not (settings.ami_username and settings.ami_secret and settings.asterisk_webhook_token):
        raise SystemExit("set AMI_USERNAME, AMI_SECRET and ASTERISK_WEBHOOK_TOKEN")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with httpx.AsyncClient(timeout=10) as client:
        forwarder = Forwarder(settings, client)
        tasks = [asyncio.create_task(follow(settings, forwarder)), asyncio.create_task(forwarder.run())]
        log.info("AMI connector ready: %s:%s -> %s", settings.ami_host, settings.ami_port, forwarder.url)
        await stop.wait()
        tasks[0].cancel()  # no more events in; forward those already read (up to 10 s)
        deadline = loop.time() + 10
        while (forwarder.posting or not forwarder.queue.empty()) and loop.time() < deadline:
            await asyncio.sleep(0.1)
        tasks[1].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if not forwarder.queue.empty():
            log.warning("%d AMI events not forwarded at shutdown", forwarder.queue.qsize())


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(main())
