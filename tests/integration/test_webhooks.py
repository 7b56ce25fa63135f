"""Provider webhooks end to end: native payloads in over HTTP, KPIs out of the API.

Real Kafka, Redis, processor and API; the requests are signed as each provider signs them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from urllib.parse import urlencode

import httpx
import orjson
import pytest

from salespulse.webhooks import twilio
from tests.integration.conftest import consume, in_process_api, unique
from tests.integration.test_pipeline import expect

pytestmark = pytest.mark.usefixtures("processor")

PUBLIC = "https://pulse.example.com"  # what the providers call, through a proxy
SECRETS = {"twilio_auth_token": "tw-token", "aircall_webhook_token": "ac-token", "asterisk_webhook_token": "ast-token",
           "hubspot_client_secret": "hs-secret", "pipedrive_webhook_user": "pulse",
           "pipedrive_webhook_password": "pd-pass", "salesforce_webhook_token": "sf-token",
           "webhook_public_url": PUBLIC, "asterisk_timezone": "Europe/Paris"}


@pytest.fixture(scope="module")
async def hooks(settings, api):
    """An API with every provider's secret set (the session's API has none: all are off there)."""
    async with in_process_api(settings.model_copy(update=SECRETS)) as client:
        yield client


async def rep_with(api, **identities) -> str:
    rep = unique("rep")
    response = await api.put(f"/api/v1/directory/reps/{rep}", json={"team": "t", "region": "r",
                                                                     "identities": identities})
    assert response.status_code == 200, response.text
    return rep


async def post_twilio(client, params: dict, token: str = "tw-token") -> httpx.Response:
    url = f"{PUBLIC}/api/v1/webhooks/twilio"
    return await client.post("/api/v1/webhooks/twilio", content=urlencode(params), headers={
        "content-type": "application/x-www-form-urlencoded",
        "x-twilio-signature": twilio.signature(token, url, params)})


async def post_hubspot(client, events: list, secret: str = "hs-secret") -> httpx.Response:
    body = orjson.dumps(events)
    stamp = str(int(time.time() * 1000))
    uri = f"{PUBLIC}/api/v1/webhooks/hubspot"
    signature = base64.b64encode(hmac.new(secret.encode(), b"POST" + uri.encode() + body + stamp.encode(),
                                          hashlib.sha256).digest()).decode()
    return await client.post("/api/v1/webhooks/hubspot", content=body, headers={
        "content-type": "application/json", "x-hubspot-signature-v3": signature,
        "x-hubspot-request-timestamp": stamp})


def outcomes(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [e["outcome"] for e in response.json()["events"]]


async def metric(client, name: str, **labels) -> float:
    text = (await client.get("/metrics")).text
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))  # as exposed: sorted
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} "):
            return float(line.split()[-1])
    return 0.0


async def test_twilio_callbacks_count_once_and_bad_signatures_are_refused(hooks, api):
    identity = f"client:{unique('alice')}"
    rep = await rep_with(api, twilio=[identity])
    sid = unique("CA")
    base = {"AccountSid": "AC1", "CallSid": sid, "Direction": "outbound-api", "From": identity,
            "To": "+33145000000", "CallbackSource": "call-progress-events"}
    ringing = {**base, "CallStatus": "ringing", "SequenceNumber": "0", "Timestamp": "Tue, 01 Jul 2025 08:00:00 +0000"}
    answered = {**base, "CallStatus": "in-progress", "SequenceNumber": "1",
                "Timestamp": "Tue, 01 Jul 2025 08:00:10 +0000"}
    completed = {**base, "CallStatus": "completed", "SequenceNumber": "2", "CallDuration": "50",
                 "Timestamp": "Tue, 01 Jul 2025 08:01:00 +0000"}
    for params in (ringing, answered, completed):
        assert outcomes(await post_twilio(hooks, params)) == ["accepted"]
    assert outcomes(await post_twilio(hooks, completed)) == ["duplicate"]  # Twilio retried
    await expect(api, rep, "2025-07-01", {"calls_outbound": 1, "talk_time": 50})

    refused = await metric(hooks, "salespulse_webhook_requests_total", provider="twilio", outcome="unauthorized")
    forged = await post_twilio(hooks, {**completed, "SequenceNumber": "3"}, token="not-the-token")
    assert forged.status_code == 401 and forged.json()["error"]["code"] == "bad_signature"
    assert await metric(hooks, "salespulse_webhook_requests_total", provider="twilio",
                        outcome="unauthorized") == refused + 1
    for provider, header in (("twilio", "x-twilio-signature"), ("hubspot", "x-hubspot-signature-v3")):
        # a forged signature that is not ASCII: 500 until hmac.compare_digest was given bytes
        non_ascii = await hooks.post(f"/api/v1/webhooks/{provider}", content=b"[]", headers={
            header: "sign\u00e9".encode("latin-1"), "x-hubspot-request-timestamp": str(int(time.time() * 1000))})
        assert non_ascii.status_code == 401, (provider, non_ascii.text)
    malformed = await post_twilio(hooks, {**completed, "SequenceNumber": "4", "Direction": "sideways"})
    assert malformed.status_code == 422 and "Direction" in malformed.json()["error"]["message"]
    await expect(api, rep, "2025-07-01", {"calls_outbound": 1})


async def test_hubspot_partial_updates_merge_and_unmapped_owners_are_dead_lettered(hooks, api, kafka_bootstrap):
    owner = str(int(time.time() * 1000) % 10**9)
    rep = await rep_with(api, hubspot=[owner])
    deal = int(time.time() * 1000)
    t0 = 1754380800000  # 2025-08-05T08:00:00Z

    def change(n, prop, value, at=t0, object_id=deal):
        return {"eventId": n, "subscriptionId": 7, "portalId": 62, "appId": 1, "occurredAt": at,
                "subscriptionType": "deal.propertyChange", "attemptNumber": 0, "objectId": object_id,
                "propertyName": prop, "propertyValue": value, "changeSource": "CRM_UI"}

    first = await post_hubspot(hooks, [
        {"eventId": 1, "subscriptionId": 6, "portalId": 62, "appId": 1, "occurredAt": t0,
         "subscriptionType": "deal.creation", "attemptNumber": 0, "objectId": deal, "changeSource": "CRM_UI"},
        change(2, "amount", "4200"), change(3, "hubspot_owner_id", owner), change(4, "dealstage", "contractsent")])
    assert outcomes(first) == ["held", "held", "held", "accepted"]
    # One property at a time afterwards: the amount must stay 4200, not become 0.
    assert outcomes(await post_hubspot(hooks, [change(5, "dealstage", "closedwon", t0 + 3_600_000)])) == ["accepted"]
    await expect(api, rep, "2025-08-05", {"deals_won": 1, "average_won_deal_size": 4200})

    stranger = unique("owner")
    unmapped_before = await metric(hooks, "salespulse_webhook_events_total", provider="hubspot", outcome="unmapped")
    other = deal + 1
    response = await post_hubspot(hooks, [change(6, "amount", "10", object_id=other),
                                          change(7, "hubspot_owner_id", stranger, object_id=other),
                                          change(8, "dealstage", "closedwon", object_id=other)])
    assert outcomes(response) == ["held", "unmapped", "unmapped"]
    assert response.json()["events"][1]["reason"] == f"no rep has the hubspot id '{stranger}'"
    assert await metric(hooks, "salespulse_webhook_events_total", provider="hubspot",
                        outcome="unmapped") == unmapped_before + 2
    letters = await consume(kafka_bootstrap, "sales.deadletter", lambda r: r.key == f"hubspot-{other}".encode(),
                            count=2)
    doc = orjson.loads(letters[-1].value)
    assert doc["payload"]["propertyValue"] == "closedwon" and stranger in doc["reason"]
    assert dict(letters[-1].headers)["salespulse.source.topic"] == b"webhooks/hubspot"
    # Once the directory knows the owner, the next event of that deal counts it whole.
    await api.put(f"/api/v1/directory/reps/{rep}", json={"team": "t", "region": "r",
                                                         "identities": {"hubspot": [owner, stranger]}})
    assert outcomes(await post_hubspot(hooks, [change(9, "closed_lost_reason", "none", t0 + 1)])) == ["accepted"]
    assert outcomes(await post_hubspot(hooks, [change(10, "dealname", "x", object_id=other)])) == ["ignored"]
    assert outcomes(await post_hubspot(hooks, [change(8, "dealstage", "closedwon", object_id=other)])) == ["accepted"]
    await expect(api, rep, "2025-08-05", {"deals_won": 2, "average_won_deal_size": 2105})

    forged = await post_hubspot(hooks, [change(11, "amount", "1")], secret="guess")
    assert forged.status_code == 401


async def test_other_providers_reach_the_kpis(hooks, api):
    agent, ext, owner_pd, owner_sf = (str(int(time.time() * 1000) % 10**9 + n) for n in range(4))
    rep = await rep_with(api, aircall=[agent], asterisk=[ext], pipedrive=[owner_pd], salesforce=[owner_sf])
    day = 1757404800  # 2025-09-09T08:00:00Z

    call = {"id": int(agent), "direction": "inbound", "status": "done", "started_at": day, "answered_at": day + 5,
            "ended_at": day + 65, "duration": 65, "missed_call_reason": None, "voicemail": None,
            "user": {"id": int(agent), "name": "A"}, "number": {"id": 1, "digits": "+33 1"}}
    aircall = {"resource": "call", "event": "call.ended", "timestamp": day + 70, "token": "ac-token", "data": call}
    assert outcomes(await hooks.post("/api/v1/webhooks/aircall", json=aircall)) == ["accepted"]
    assert (await hooks.post("/api/v1/webhooks/aircall", json={**aircall, "token": "x"})).status_code == 401

    cdr = (f"Event: Cdr\r\nChannel: PJSIP/trunk-01\r\nDestinationChannel: PJSIP/{ext}-02\r\n"
           f"StartTime: 2025-09-09 11:00:00\r\nAnswerTime: \r\nEndTime: 2025-09-09 11:00:30\r\n"
           f"BillableSeconds: 0\r\nDisposition: NO ANSWER\r\nUniqueID: {unique('u')}\r\n\r\n")
    headers = {"authorization": "Bearer ast-token", "content-type": "text/plain"}
    assert outcomes(await hooks.post("/api/v1/webhooks/asterisk", content=cdr, headers=headers)) == ["accepted"]
    await expect(api, rep, "2025-09-09", {"calls_inbound": 1, "calls_missed": 1, "talk_time": 60})

    deal = {"id": int(owner_pd), "value": 900, "currency": "EUR", "status": "won", "stage_id": 5,
            "owner_id": int(owner_pd), "add_time": "2025-09-01T08:00:00Z", "update_time": "2025-09-09T09:00:00Z",
            "won_time": "2025-09-09T09:00:00Z"}
    pipedrive = {"meta": {"action": "change", "entity": "deal", "entity_id": deal["id"], "id": unique("m"),
                          "version": "2.0", "timestamp": day}, "data": deal, "previous": {"status": "open"}}
    auth = "Basic " + base64.b64encode(b"pulse:pd-pass").decode()
    assert outcomes(await hooks.post("/api/v1/webhooks/pipedrive", json=pipedrive,
                                     headers={"authorization": auth})) == ["accepted"]
    pounds = {**deal, "id": int(owner_pd) + 1, "currency": "GBP"}  # no FX_RATES here: the processor would refuse it
    answer = await hooks.post("/api/v1/webhooks/pipedrive", headers={"authorization": auth}, json={
        **pipedrive, "meta": {**pipedrive["meta"], "entity_id": pounds["id"], "id": unique("m")}, "data": pounds})
    assert outcomes(answer) == ["invalid"]
    assert "event.data.currency: no exchange rate from GBP to EUR" in answer.json()["events"][0]["reason"]

    header = {"entityName": "Opportunity", "recordIds": [unique("006")], "changeType": "CREATE",
              "transactionKey": unique("tx"), "sequenceNumber": 1, "commitTimestamp": day * 1000,
              "commitUser": owner_sf, "changedFields": []}
    opportunity = {"ChangeEventHeader": header, "StageName": "Closed Won", "Amount": 100.0, "OwnerId": owner_sf,
                   "CreatedDate": "2025-09-01T08:00:00.000Z", "CloseDate": "2025-09-09", "IsWon": True}
    message = {"channel": "/data/OpportunityChangeEvent", "data": {"schema": "x", "payload": opportunity,
                                                                   "event": {"replayId": 1}}}
    assert outcomes(await hooks.post("/api/v1/webhooks/salesforce", json=message,
                                     headers={"authorization": "Bearer sf-token"})) == ["accepted"]
    await expect(api, rep, "2025-09-09", {"deals_won": 2, "average_won_deal_size": 500})


async def test_unknown_and_unconfigured_providers(hooks, api):
    assert (await hooks.post("/api/v1/webhooks/fax", json={})).json()["error"]["code"] == "unknown_provider"
    off = await api.post("/api/v1/webhooks/twilio", content="CallSid=CA1")  # the session API has no secrets
    assert off.status_code == 403 and "TWILIO_AUTH_TOKEN" in off.json()["error"]["message"]
    taken = await rep_with(api, pipedrive=["shared-1"])
    clash = await api.put(f"/api/v1/directory/reps/{unique('rep')}", json={
        "team": "t", "region": "r", "identities": {"pipedrive": ["shared-1"]}})
    assert clash.status_code == 409 and taken in clash.json()["error"]["message"]
