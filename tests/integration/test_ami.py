"""The AMI connector against an AMI server speaking the protocol, through the real API to the KPIs.

No Asterisk package is installable here, so the PBX side is a small asyncio server that
speaks AMI as Asterisk does (banner, Login action and response, events separated by blank
lines); the connector, API, Kafka, processor and Redis are the real ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest

from salespulse.devstack import free_port
from tests.integration.conftest import eventually, processor_env, start_api, unique
from tests.integration.test_pipeline import expect

pytestmark = pytest.mark.usefixtures("processor")


class FakePbx:
    """Accepts logins with the right secret, then sends the events queued for the next session
    and answers pings as Asterisk does; a session of None answers nothing after the login and
    never closes (a PBX gone without a word: its host powered off, a firewall dropping the flow)."""

    def __init__(self, sessions: list[list[str] | None]) -> None:
        self.sessions, self.logins, self.refused, self.pings = sessions, 0, 0, 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/7.0.3\r\n")
        login = (await reader.readuntil(b"\r\n\r\n")).decode()
        if "Secret: pbx-secret" not in login or "Events: cdr,agent" not in login:
            self.refused += 1
            writer.write(b"Response: Error\r\nActionID: salespulse-login\r\nMessage: Authentication failed\r\n\r\n")
            writer.close()
            return
        self.logins += 1
        writer.write(b"Response: Success\r\nActionID: salespulse-login\r\nMessage: Authentication accepted\r\n\r\n"
                     b"Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n")
        session = self.sessions.pop(0) if self.sessions else []
        if session is None:
            await reader.read()  # hears everything, says nothing, until the connector leaves
            return
        for event in session:
            writer.write(event.encode())
            await writer.drain()
        if self.sessions:  # drop the line: the connector must come back for the rest
            writer.close()
            return
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:  # until the connector leaves
                action = (await reader.readuntil(b"\r\n\r\n")).decode()
                if "Action: Ping" in action:
                    self.pings += 1
                    action_id = action.split("ActionID: ")[1].split("\r\n")[0]
                    writer.write(f"Response: Success\r\nActionID: {action_id}\r\nPing: Pong\r\n"
                                 f"Timestamp: 1759831200.000000\r\n\r\n".encode())


def cdr_of(ext: str, unique_id: str, day: str, talk_seconds: int) -> str:
    """An answered outbound call's CDR as cdr_manager sends it (5 s of ringing, then the talk)."""
    end = f"10:{(5 + talk_seconds) // 60:02d}:{(5 + talk_seconds) % 60:02d}"
    return (f"Event: Cdr\r\nPrivilege: cdr,all\r\nChannel: PJSIP/{ext}-0001\r\nDestinationChannel: PJSIP/trunk-0002\r\n"
            f"StartTime: {day} 10:00:00\r\nAnswerTime: {day} 10:00:05\r\nEndTime: {day} {end}\r\n"
            f"Duration: {5 + talk_seconds}\r\nBillableSeconds: {talk_seconds}\r\nDisposition: ANSWERED\r\n"
            f"UniqueID: {unique_id}.1\r\n\r\n")


@contextlib.asynccontextmanager
async def connected(settings, pbx: FakePbx, tmp_path, **env: str) -> AsyncIterator[subprocess.Popen]:
    """`pbx` served, an API, and the connector between them (its log: tmp_path / "ami.log")."""
    server = await asyncio.start_server(pbx.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    secrets = {"ASTERISK_WEBHOOK_TOKEN": "ast-token", "ASTERISK_TIMEZONE": "Europe/Paris"}
    api_proc, url = start_api(settings, tmp_path / "api.log", **secrets)
    env = {**processor_env(settings), **secrets, "AMI_HOST": "127.0.0.1", "AMI_PORT": str(port),
           "AMI_USERNAME": "salespulse", "AMI_SECRET": "pbx-secret", "AMI_API_URL": url, **env}
    connector = subprocess.Popen([sys.executable, "-m", "salespulse.ami"], env=env,
                                 stdout=(tmp_path / "ami.log").open("wb"), stderr=subprocess.STDOUT)
    try:
        yield connector
    finally:
        connector.terminate()
        connector.wait(15)
        api_proc.terminate()
        api_proc.wait(15)
        server.close()


async def test_ami_connector_forwards_call_events_across_a_reconnect(settings, api, tmp_path):
    ext, queue, unique_id = "7" + unique("")[-5:], unique("q"), unique("1795")
    rep = unique("rep")
    await api.put(f"/api/v1/directory/reps/{rep}", json={"team": "t", "region": "r", "extension": ext,
                                                         "identities": {"asterisk": [f"queue:{queue}"]}})
    cdr = cdr_of(ext, unique_id, "2025-10-07", 120)
    noise = "Event: Newchannel\r\nChannel: PJSIP/x-1\r\nUniqueid: 1.1\r\n\r\n"
    abandon = (f"Event: QueueCallerAbandon\r\nPrivilege: agent,all\r\nQueue: {queue}\r\nUniqueid: {unique_id}.2\r\n"
               f"Position: 1\r\nOriginalPosition: 1\r\nHoldTime: 30\r\nTimestamp: 1759831200.000000\r\n\r\n")
    broken = cdr.replace("ANSWERED", "MAYBE").replace(f"{unique_id}.1", f"{unique_id}.9")  # refused: 422
    # A command's free-text output (no `Key: Value`) and a stray blank line: skipped, the
    # connector carries on (it stopped on them before, and AMI does not replay events).
    odd = "Response: Follows\r\nPrivilege: Command\r\nfree text output\r\n--END COMMAND--\r\n\r\n"
    pbx = FakePbx([[broken, odd, "\r\n\r\n", cdr, noise], [abandon]])
    async with connected(settings, pbx, tmp_path, AMI_HEALTH_FILE=str(tmp_path / "logged-in")) as connector:
        await expect(api, rep, "2025-10-07", {"calls_outbound": 1, "talk_time": 120, "calls_missed": 1}, timeout=60)
        assert pbx.logins == 2  # reconnected after the PBX dropped the line
        assert (tmp_path / "logged-in").exists()  # the container healthcheck's file
        assert "Disposition 'MAYBE'" in (tmp_path / "ami.log").read_text()  # refused alone, reported
        assert "skipped an AMI message: AMI line 'free text output'" in (tmp_path / "ami.log").read_text()
    assert connector.returncode == 0, (tmp_path / "ami.log").read_text()
    assert not (tmp_path / "logged-in").exists()


async def test_ami_connector_reports_a_refused_login(settings, tmp_path):
    pbx = FakePbx([])
    server = await asyncio.start_server(pbx.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    env = {**os.environ, "AMI_HOST": "127.0.0.1", "AMI_PORT": str(port), "AMI_USERNAME": "salespulse",
           "AMI_SECRET": "wrong", "ASTERISK_WEBHOOK_TOKEN": "t", "AMI_API_URL": f"http://127.0.0.1:{free_port()}"}
    log_path = tmp_path / "ami.log"
    connector = subprocess.Popen([sys.executable, "-m", "salespulse.ami"], env=env, stdout=log_path.open("wb"),
                                 stderr=subprocess.STDOUT)
    try:
        async def refused():
            assert "AMI login refused: Authentication failed" in log_path.read_text()
        await eventually(refused, timeout=20)
    finally:
        connector.terminate()
        connector.wait(15)
        server.close()


async def test_ami_connector_reopens_a_connection_that_went_silent(settings, api, tmp_path):
    """A PBX gone without closing the connection: before, the connector read nothing for ever
    (and its health file said it was logged in); now its pings go unanswered and it reconnects."""
    ext, unique_id, rep = "6" + unique("")[-5:], unique("1795"), unique("rep")
    await api.put(f"/api/v1/directory/reps/{rep}", json={"team": "t", "region": "r", "extension": ext})
    pbx = FakePbx([None, [cdr_of(ext, unique_id, "2025-10-08", 60)]])
    async with connected(settings, pbx, tmp_path, AMI_PING_SECONDS="0.5"):
        await expect(api, rep, "2025-10-08", {"calls_outbound": 1, "talk_time": 60}, timeout=60)
        assert pbx.logins == 2
        assert "nothing from AMI for 1 s, not even the answer to a ping; reconnecting" in (
            tmp_path / "ami.log").read_text()

        async def pinging_and_answered():  # a live connection is kept: its pings are answered
            assert pbx.pings >= 3 and pbx.logins == 2
        await eventually(pinging_and_answered, timeout=10)
