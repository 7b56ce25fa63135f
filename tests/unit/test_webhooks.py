"""Provider webhooks -> canonical events: translation, merging with known state, signatures.

Payloads are shaped as each provider documents them (field names, types, time formats).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings, strategies as st

from salespulse.contracts.events import parse_event
from salespulse.webhooks import aircall, asterisk, hubspot, pipedrive, salesforce, twilio
from salespulse.webhooks.core import Built, Change, Context, Ignored, Known, Malformed, build, merge

NOW = datetime(2026, 11, 23, 9, 30, tzinfo=timezone.utc)
PARIS = ZoneInfo("Europe/Paris")


def context(provider: str, ids: dict[str, str], stages: dict[str, str] | None = None) -> Context:
    return Context(provider, ids.get, stages or {}, "EUR")


def run(changes, ctx: Context, known: Known | None = None) -> tuple[Known, list[Built]]:
    """Merge each change in turn and build after each, as the API does."""
    known = known or Known()
    built = []
    for change in changes:
        assert isinstance(change, Change), change
        known = merge(known, change)
        built.append(build(known, change, ctx))
    return known, built


def data(b: Built) -> dict:
    assert b.event is not None, b
    parse_event(b.event)  # every event built is valid against schemas/
    return b.event["data"]


# --- Twilio --------------------------------------------------------------------------------

def test_twilio_signature_matches_the_documented_example():
    # Twilio's request-validation example (URL with a query, five POST parameters, token 12345).
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234",
              "From": "+12349013030", "To": "+18005551212"}
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio.signature("12345", url, params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert twilio.verify("12345", url, params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
    assert not twilio.verify("12345", url, {**params, "Digits": "1235"}, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
    assert not twilio.verify("12345", url, params, None)


def callback(status: str, at: str, **extra) -> dict[str, str]:
    return {"AccountSid": "AC0001", "ApiVersion": "2010-04-01", "CallSid": "CA42", "CallStatus": status,
            "Direction": "outbound-api", "From": "client:alice", "To": "+33145000000", "Timestamp": at,
            "CallbackSource": "call-progress-events", **extra}


def test_twilio_progress_callbacks_make_the_call_lifecycle():
    ctx = context("twilio", {"client:alice": "rep-1"})
    steps = [twilio.parse(callback("initiated", "Mon, 23 Nov 2026 09:00:00 +0000", SequenceNumber="0"), NOW),
             twilio.parse(callback("ringing", "Mon, 23 Nov 2026 09:00:01 +0000", SequenceNumber="1"), NOW),
             twilio.parse(callback("in-progress", "Mon, 23 Nov 2026 09:00:09 +0000", SequenceNumber="2"), NOW),
             twilio.parse(callback("completed", "Mon, 23 Nov 2026 09:04:09 +0000", SequenceNumber="3",
                                   CallDuration="240"), NOW)]
    _, built = run([s[0] for s in steps], ctx)
    assert [b.event["type"] for b in built] == ["call.started", "call.started", "call.answered", "call.ended"]
    ended = data(built[-1])
    assert ended == {"call_id": "twilio-CA42", "rep_id": "rep-1", "direction": "outbound", "status": "answered",
                     "started_at": "2026-11-23T09:00:01+00:00",  # ringing is newer than initiated
                     "answered_at": "2026-11-23T09:00:09+00:00", "ended_at": "2026-11-23T09:04:09+00:00"}
    assert built[-1].event["id"] == "twilio:CA42:3"


def test_twilio_completed_alone_guesses_the_start_and_a_late_ringing_corrects_it():
    ctx = context("twilio", {"+33145000000": "rep-2"})
    inbound = dict(Direction="inbound", From="+33600000000", To="+33145000000")
    done = twilio.parse(callback("completed", "Mon, 23 Nov 2026 09:10:00 +0000", CallDuration="60", **inbound), NOW)
    known, built = run(done, ctx)
    first = data(built[0])
    assert (first["direction"], first["rep_id"]) == ("inbound", "rep-2")
    assert first["started_at"] == first["answered_at"] == "2026-11-23T09:09:00+00:00"
    ringing = twilio.parse(callback("ringing", "Mon, 23 Nov 2026 09:08:50 +0000", **inbound), NOW)
    _, built = run(ringing, ctx, known)
    assert data(built[0])["started_at"] == "2026-11-23T09:08:50+00:00"
    assert built[0].event["type"] == "call.ended"  # the call stays over


@pytest.mark.parametrize("status, extra, expected", [
    ("no-answer", {}, "missed"), ("busy", {}, "busy"), ("failed", {}, "failed"), ("canceled", {}, "missed"),
    ("completed", {"AnsweredBy": "machine_end_beep", "CallDuration": "20"}, "voicemail"),
])
def test_twilio_final_statuses(status, extra, expected):
    (change,) = twilio.parse(callback(status, "Mon, 23 Nov 2026 09:10:00 +0000", **extra), NOW)
    _, (built,) = run([change], context("twilio", {"client:alice": "rep-1"}))
    assert data(built)["status"] == expected


def test_twilio_unmapped_sides_are_reported_by_both_ids():
    (change,) = twilio.parse(callback("ringing", "Mon, 23 Nov 2026 09:10:00 +0000"), NOW)
    _, (built,) = run([change], context("twilio", {}))
    assert built.event is None and built.unmapped == "no rep has the twilio id 'client:alice' or '+33145000000'"


@pytest.mark.parametrize("params, reason", [
    ({"CallStatus": "completed", "Direction": "inbound"}, "CallSid is missing"),
    ({"CallSid": "CA1", "CallStatus": "exploded", "Direction": "inbound", "To": "x"}, "CallStatus"),
    ({"CallSid": "CA1", "CallStatus": "ringing", "Direction": "sideways", "To": "x"}, "Direction"),
    ({"CallSid": "CA1", "CallStatus": "ringing", "Direction": "inbound", "To": "x", "Timestamp": "yesterday"},
     "RFC 2822"),
    ({"CallSid": "CA1", "CallStatus": "completed", "Direction": "inbound", "To": "x", "CallDuration": "-3"},
     "negative"),
])
def test_twilio_malformed_callbacks_say_why(params, reason):
    with pytest.raises(Malformed, match=reason):
        twilio.parse(params, NOW)


# --- Aircall -------------------------------------------------------------------------------

def aircall_event(event: str, **call) -> dict:
    base = {"id": 812345, "direct_link": "https://api.aircall.io/v1/calls/812345", "direction": "inbound",
            "status": "initial", "started_at": 1795424400, "answered_at": None, "ended_at": None, "duration": 0,
            "missed_call_reason": None, "raw_digits": "+33 6 00 00 00 00", "voicemail": None,
            "user": {"id": 1001, "name": "Alice", "email": "alice@example.com"},
            "number": {"id": 55, "name": "Sales FR", "digits": "+33 1 45 00 00 00"}}
    return {"resource": "call", "event": event, "timestamp": 1795424400 + 300, "token": "tok-45XX",
            "data": {**base, **call}}


def test_aircall_call_events_in_order():
    ctx = context("aircall", {"1001": "rep-1"})
    changes = [aircall.parse(aircall_event("call.created"), NOW)[0],
               aircall.parse(aircall_event("call.answered", status="answered", answered_at=1795424410), NOW)[0],
               aircall.parse(aircall_event("call.ended", status="done", answered_at=1795424410,
                                           ended_at=1795424520, duration=120), NOW)[0]]
    _, built = run(changes, ctx)
    assert [b.event["type"] for b in built] == ["call.started", "call.answered", "call.ended"]
    assert data(built[-1]) == {"call_id": "aircall-812345", "rep_id": "rep-1", "direction": "inbound",
                               "status": "answered", "started_at": "2026-11-23T09:00:00+00:00",
                               "answered_at": "2026-11-23T09:00:10+00:00", "ended_at": "2026-11-23T09:02:00+00:00"}


def test_aircall_missed_call_nobody_took_counts_for_the_line():
    event = aircall_event("call.ended", status="done", user=None, ended_at=1795424430,
                          missed_call_reason="no_available_agent")
    _, (built,) = run(aircall.parse(event, NOW), context("aircall", {"number:55": "line-sales-fr"}))
    assert (data(built)["rep_id"], data(built)["status"]) == ("line-sales-fr", "missed")
    _, (built,) = run(aircall.parse(event, NOW), context("aircall", {}))
    assert built.unmapped == "no rep has the aircall id 'number:55'"


def test_aircall_token_and_other_events():
    assert aircall.verify("tok-45XX", aircall_event("call.created"))
    assert not aircall.verify("tok-other", aircall_event("call.created"))
    assert not aircall.verify("tok-45XX", ["not", "an", "object"])
    (ignored,) = aircall.parse({**aircall_event("call.tagged")}, NOW)
    assert isinstance(ignored, Ignored)
    with pytest.raises(Malformed, match="direction"):
        aircall.parse(aircall_event("call.created", direction="up"), NOW)


# --- Asterisk ------------------------------------------------------------------------------

CDR = """Event: Cdr\r\nPrivilege: cdr,all\r\nAccountCode: \r\nSource: 201\r\nDestination: 0600000000\r
DestinationContext: from-internal\r\nCallerID: "Alice" <201>\r\nChannel: PJSIP/201-0000002a\r
DestinationChannel: PJSIP/trunk-0000002b\r\nLastApplication: Dial\r\nLastData: PJSIP/0600000000@trunk\r
StartTime: 2026-11-23 10:00:00\r\nAnswerTime: 2026-11-23 10:00:12\r\nEndTime: 2026-11-23 10:05:12\r
Duration: 312\r\nBillableSeconds: 300\r\nDisposition: ANSWERED\r\nAMAFlags: DOCUMENTATION\r
UniqueID: 1795424400.42\r\nUserField: \r\n\r\n"""


def test_ami_text_is_split_into_events():
    events = asterisk.split_events(CDR + "Event: QueueCallerAbandon\r\nQueue: sales\r\nUniqueid: 9.1\r\n\r\n")
    assert [e["Event"] for e in events] == ["Cdr", "QueueCallerAbandon"]
    assert events[0]["CallerID"] == '"Alice" <201>' and events[0]["AccountCode"] == ""
    with pytest.raises(Malformed, match="Key: Value"):
        asterisk.split_events("Event: Cdr\nno colon here\n")


def test_asterisk_cdr_outbound_answered_in_the_pbx_time_zone():
    (change,) = asterisk.parse(asterisk.split_events(CDR), PARIS, NOW)
    _, (built,) = run([change], context("asterisk", {"201": "rep-1"}))
    assert data(built) == {"call_id": "asterisk-1795424400.42", "rep_id": "rep-1", "direction": "outbound",
                           "status": "answered", "started_at": "2026-11-23T09:00:00+00:00",
                           "answered_at": "2026-11-23T09:00:12+00:00", "ended_at": "2026-11-23T09:05:12+00:00"}


def test_asterisk_queue_events():
    stamp = str(NOW.timestamp())
    complete = {"Event": "AgentComplete", "Channel": "PJSIP/trunk-00000031", "Uniqueid": "1795424000.50",
                "Linkedid": "1795424000.50", "Queue": "sales", "MemberName": "Bob", "Interface": "PJSIP/202",
                "HoldTime": "15", "TalkTime": "120", "Reason": "caller", "Timestamp": stamp}
    abandon = {"Event": "QueueCallerAbandon", "Uniqueid": "1795424000.51", "Queue": "sales", "Position": "1",
               "OriginalPosition": "2", "HoldTime": "40", "Timestamp": stamp}
    ctx = context("asterisk", {"202": "rep-2", "queue:sales": "line-sales"})
    answered, missed = (data(run([c], ctx)[1][0]) for c in asterisk.parse([complete, abandon], PARIS, NOW))
    assert answered == {"call_id": "asterisk-1795424000.50", "rep_id": "rep-2", "direction": "inbound",
                        "status": "answered", "queue": "sales", "started_at": "2026-11-23T09:27:45+00:00",
                        "answered_at": "2026-11-23T09:28:00+00:00", "ended_at": "2026-11-23T09:30:00+00:00"}
    assert (missed["rep_id"], missed["status"], missed["started_at"]) == (
        "line-sales", "missed", "2026-11-23T09:29:20+00:00")


def test_asterisk_extensions_and_other_events():
    assert [asterisk.extension(c) for c in ("PJSIP/201-0000002a", "SIP/301-ab", "Local/401@from-queue-0001;1",
                                            "IAX2/501-3", "garbage", None)] == ["201", "301", "401", "501", None, None]
    (ignored,) = asterisk.parse([{"Event": "Newchannel", "Uniqueid": "1.2"}], PARIS, NOW)
    assert isinstance(ignored, Ignored)
    with pytest.raises(Malformed, match="Disposition"):
        asterisk.parse([{**asterisk.split_events(CDR)[0], "Disposition": "MAYBE"}], PARIS, NOW)


# --- HubSpot -------------------------------------------------------------------------------

def hs_change(event_id: int, prop: str, value, at_ms: int, deal: int = 1866) -> dict:
    return {"eventId": event_id, "subscriptionId": 4021, "portalId": 6205670, "appId": 123456,
            "occurredAt": at_ms, "subscriptionType": "deal.propertyChange", "attemptNumber": 0,
            "objectId": deal, "propertyName": prop, "propertyValue": value, "changeSource": "CRM_UI",
            "sourceId": "userId:52204917"}


T0 = 1795424400000  # 2026-11-23T09:00:00Z in ms


def test_hubspot_property_changes_merge_into_one_deal_never_a_zero():
    ctx = context("hubspot", {"52204917": "rep-7"}, hubspot.DEFAULT_STAGES)
    body = [{"eventId": 1, "subscriptionId": 4020, "portalId": 6205670, "appId": 123456, "occurredAt": T0,
             "subscriptionType": "deal.creation", "attemptNumber": 0, "objectId": 1866, "changeFlag": "CREATED",
             "changeSource": "CRM_UI"},
            hs_change(2, "dealname", "Acme renewal", T0),
            hs_change(3, "amount", "12500.50", T0),
            hs_change(4, "hubspot_owner_id", "52204917", T0),
            hs_change(5, "dealstage", "qualifiedtobuy", T0)]
    parsed = hubspot.parse(body, NOW)
    assert isinstance(parsed[1], Ignored)  # dealname is not a figure
    known, built = run([p for p in parsed if isinstance(p, Change)], ctx)
    assert [b.missing for b in built[:3]] == [("rep", "stage", "amount"), ("rep", "stage"), ("stage",)]
    first = data(built[-1])
    assert (first["stage"], first["amount"], first["rep_id"], first["created_at"]) == (
        "qualified", "12500.5", "rep-7", "2026-11-23T09:00:00+00:00")
    # later: only the stage moves; the amount stays what it was
    (won,) = hubspot.parse([hs_change(6, "dealstage", "closedwon", T0 + 3_600_000)], NOW)
    known, (built,) = run([won], ctx, known)
    assert (data(built)["stage"], data(built)["amount"], data(built)["closed_at"]) == (
        "won", "12500.5", "2026-11-23T10:00:00+00:00")
    assert data(built)["updated_at"] > first["updated_at"]
    # a late, older amount change fills nothing newer in and cannot undo it
    (late,) = hubspot.parse([hs_change(7, "amount", "99", T0 - 1000)], NOW)
    _, (built,) = run([late], ctx, known)
    assert data(built)["amount"] == "12500.5"


def test_hubspot_late_field_still_makes_a_newer_version():
    """The processor ignores a deal.changed not newer than what it holds: a state completed by
    a late event (older occurredAt) must still carry a newer updated_at."""
    ctx = context("hubspot", {"1": "rep-1"}, hubspot.DEFAULT_STAGES)
    changes = hubspot.parse([hs_change(1, "hubspot_owner_id", "1", T0 + 5000), hs_change(2, "dealstage",
                             "contractsent", T0 + 5000), hs_change(3, "amount", "10", T0 + 5000)], NOW)
    known, built = run(changes, ctx)
    (late,) = hubspot.parse([hs_change(4, "deal_currency_code", "usd", T0)], NOW)
    _, (again,) = run([late], ctx, known)
    assert data(again)["currency"] == "USD"
    assert data(again)["updated_at"] > data(built[-1])["updated_at"]


def test_hubspot_unmapped_owner_and_stage_are_reported():
    changes = hubspot.parse([hs_change(1, "hubspot_owner_id", "999", T0), hs_change(2, "dealstage", "custom-42", T0),
                             hs_change(3, "amount", "1", T0)], NOW)
    _, built = run(changes, context("hubspot", {}, hubspot.DEFAULT_STAGES))
    assert built[-1].unmapped == "no rep has the hubspot id '999'"
    _, built = run(changes, context("hubspot", {"999": "rep-9"}, hubspot.DEFAULT_STAGES))
    assert built[-1].unmapped == "hubspot stage 'custom-42' is not in WEBHOOK_STAGES"
    _, built = run(changes, context("hubspot", {"999": "rep-9"}, {"custom-42": "proposal"}))
    assert data(built[-1])["stage"] == "proposal"


def test_hubspot_signature_v3():
    body = b'[{"eventId":1,"objectId":1866}]'
    uri = "https://pulse.example.com/api/v1/webhooks/hubspot"
    stamp = str(int(NOW.timestamp() * 1000))
    # computed from HubSpot's documented steps, independently of the module
    expected = base64.b64encode(hmac.new(b"client-secret", b"POST" + uri.encode() + body + stamp.encode(),
                                         hashlib.sha256).digest()).decode()
    assert hubspot.verify("client-secret", "POST", uri, body, stamp, expected, NOW)
    assert not hubspot.verify("other-secret", "POST", uri, body, stamp, expected, NOW)
    assert not hubspot.verify("client-secret", "POST", uri, body + b" ", stamp, expected, NOW)
    assert not hubspot.verify("client-secret", "POST", uri, body, stamp, expected, NOW + timedelta(minutes=6))
    assert not hubspot.verify("client-secret", "POST", uri, body, None, expected, NOW)


def test_hubspot_malformed_and_other_events():
    with pytest.raises(Malformed, match="array"):
        hubspot.parse({"eventId": 1}, NOW)
    with pytest.raises(Malformed, match="occurredAt"):
        hubspot.parse([{**hs_change(1, "amount", "1", T0), "occurredAt": "soon"}], NOW)
    with pytest.raises(Malformed, match="not an amount"):
        hubspot.parse([hs_change(1, "amount", "12,5", T0)], NOW)
    with pytest.raises(Malformed, match="deal stage cannot be empty"):
        hubspot.parse([hs_change(1, "dealstage", "", T0)], NOW)
    (contact,) = hubspot.parse([{**hs_change(1, "email", "a@b", T0), "subscriptionType": "contact.propertyChange"}],
                               NOW)
    assert isinstance(contact, Ignored)
    (generic,) = hubspot.parse([{**hs_change(1, "amount", "5", T0), "subscriptionType": "object.propertyChange",
                                 "objectTypeId": "0-3"}], NOW)
    assert isinstance(generic, Change) and generic.fields == {"amount": "5"}


# --- Pipedrive -----------------------------------------------------------------------------

def pd_event(action: str = "change", **deal) -> dict:
    current = {"id": 1, "title": "test deal", "value": 2500, "currency": "USD", "status": "open", "stage_id": 4,
               "pipeline_id": 1, "owner_id": 18487521, "person_id": 3, "org_id": 2, "probability": None,
               "add_time": "2026-11-20T14:25:27Z", "update_time": "2026-11-23T09:00:00Z", "won_time": None,
               "lost_time": None, "close_time": None, "lost_reason": None, **deal}
    return {"meta": {"action": action, "entity": "deal", "version": "2.0", "company_id": 12882925,
                     "user_id": 18487521, "id": "7f1c2b9e-0000-4000-8000-000000000001", "entity_id": 1,
                     "webhook_id": 99, "webhook_owner_id": 18487521, "attempt": 1,
                     "host": "company.pipedrive.com", "timestamp": 1795424400, "change_source": "app"},
            "data": current, "previous": {"stage_id": 3}}


def test_pipedrive_deal_v2():
    ctx = context("pipedrive", {"18487521": "rep-3"}, pipedrive.DEFAULT_STAGES)
    _, (built,) = run(pipedrive.parse(pd_event(), NOW), ctx)
    assert data(built) == {"deal_id": "pipedrive-1", "rep_id": "rep-3", "stage": "proposal", "amount": "2500",
                           "currency": "USD", "created_at": "2026-11-20T14:25:27+00:00",
                           "updated_at": "2026-11-23T09:00:00+00:00"}
    _, (built,) = run(pipedrive.parse(pd_event(status="lost", lost_reason="price", probability=0,
                                               lost_time="2026-11-23 10:00:00",
                                               update_time="2026-11-23 10:00:00"), NOW), ctx)
    assert (data(built)["stage"], data(built)["loss_reason"], data(built)["closed_at"]) == (
        "lost", "price", "2026-11-23T10:00:00+00:00")


def test_pipedrive_auth_and_other_events():
    header = "Basic " + base64.b64encode(b"salespulse:s3cret").decode()
    assert pipedrive.verify("salespulse", "s3cret", header)
    assert not pipedrive.verify("salespulse", "wrong", header)
    assert not pipedrive.verify("salespulse", "s3cret", None)
    assert isinstance(pipedrive.parse(pd_event("delete"), NOW)[0], Ignored)
    assert isinstance(pipedrive.parse({**pd_event(), "meta": {**pd_event()["meta"], "entity": "person"}}, NOW)[0],
                      Ignored)
    with pytest.raises(Malformed, match="status"):
        pipedrive.parse(pd_event(status="pending"), NOW)
    _, (built,) = run(pipedrive.parse(pd_event(stage_id=12), NOW), context("pipedrive", {"18487521": "r"},
                                                                             pipedrive.DEFAULT_STAGES))
    assert built.unmapped == "pipedrive stage '12' is not in WEBHOOK_STAGES"


# --- Salesforce ----------------------------------------------------------------------------

def sf_message(change_type: str, changed: list[str], seq: int = 1, commit_ms: int = T0, **fields) -> dict:
    header = {"entityName": "Opportunity", "recordIds": ["0065g00000XyZabAAB"], "changeType": change_type,
              "changeOrigin": "com/salesforce/api/soap/58.0;client=SfdcInternalAPI/",
              "transactionKey": "000046c7-a642-11e2-c29b-229c6786473e", "sequenceNumber": seq,
              "commitTimestamp": commit_ms, "commitNumber": 11657372702432, "commitUser": "0055g00000AbCdEAAV",
              "changedFields": changed}
    return {"schema": "I8b-dYxvxs5wOtCBr4qsew",
            "payload": {"ChangeEventHeader": header, **fields}, "event": {"replayId": 18098167 + seq}}


def test_salesforce_create_then_update_of_the_stage_only():
    ctx = context("salesforce", {"0055g00000AbCdEAAV": "rep-5"}, salesforce.DEFAULT_STAGES)
    create = sf_message("CREATE", [], Name="Acme - 200 seats", StageName="Prospecting", Amount=48000.0,
                        CloseDate="2026-12-31", OwnerId="0055g00000AbCdEAAV", CreatedDate="2026-11-23T09:00:00.000Z",
                        Probability=10, LeadSource="Web", CurrencyIsoCode="EUR")
    update = sf_message("UPDATE", ["StageName", "Probability", "LastModifiedDate"], seq=2, commit_ms=T0 + 60_000,
                        Name=None, StageName="Negotiation/Review", Amount=None, Probability=90, OwnerId=None,
                        LastModifiedDate="2026-11-23T09:01:00.000Z")
    changes = salesforce.parse([{"channel": "/data/OpportunityChangeEvent", "data": create},
                                {"channel": "/data/OpportunityChangeEvent", "data": update}], NOW)
    _, built = run(changes, ctx)
    assert data(built[0])["stage"] == "lead" and data(built[0])["source"] == "Web"
    assert data(built[1]) == {"deal_id": "salesforce-0065g00000XyZabAAB", "rep_id": "rep-5", "stage": "negotiation",
                              "amount": "48000", "currency": "EUR", "created_at": "2026-11-23T09:00:00+00:00",
                              "updated_at": "2026-11-23T09:01:00+00:00", "probability": 0.9, "source": "Web"}


def test_salesforce_gaps_deletes_and_other_objects_are_reported_not_guessed():
    gap = salesforce.parse(sf_message("GAP_UPDATE", []), NOW)
    assert isinstance(gap[0], Ignored) and "gap event" in gap[0].reason
    assert isinstance(salesforce.parse(sf_message("DELETE", [])["payload"], NOW)[0], Ignored)
    account = sf_message("CREATE", [])
    account["payload"]["ChangeEventHeader"]["entityName"] = "Account"
    assert isinstance(salesforce.parse(account, NOW)[0], Ignored)
    with pytest.raises(Malformed, match="ChangeEventHeader"):
        salesforce.parse({"payload": {"StageName": "Closed Won"}}, NOW)


# --- merging -------------------------------------------------------------------------------

FIELD_VALUES = st.sampled_from([("amount", "10"), ("amount", "20"), ("stage", "won"), ("stage", "lead"),
                                ("people", [["1", None]]), ("currency", "USD")])
CHANGES = st.lists(st.builds(
    lambda fv, t, i: Change(f"e{i}", "deal", "hubspot-1", datetime(2026, 11, 23, tzinfo=timezone.utc)
                            + timedelta(seconds=t), {fv[0]: fv[1]}),
    FIELD_VALUES, st.integers(0, 5), st.integers(0, 10**6)), max_size=8)


@settings(max_examples=300)
@given(CHANGES, st.randoms())
def test_merging_is_order_independent_and_idempotent(changes, rnd):
    """Whatever the delivery order and however often an event is re-delivered, the merged
    fields are the same: each field holds the value of its latest event."""
    def fold(seq):
        known = Known()
        for change in seq:
            known = merge(known, change)
        return known

    expected = fold(changes)
    shuffled = changes + rnd.sample(changes, len(changes) // 2)
    rnd.shuffle(shuffled)
    assert dict(fold(shuffled).fields) == dict(expected.fields)
    assert merge(expected, changes[-1]) == expected if changes else True
    assert Known.from_doc(expected.to_doc()) == expected


# --- identities in the rep directory -------------------------------------------------------

def test_identity_index_and_conflicts():
    from salespulse.domain.directory import Assignment, RepRecord, identity_conflicts, identity_index

    team = (Assignment("north", "fr"),)
    alice = RepRecord("rep-1", team, "Alice", "201", (("hubspot", ("52204917",)), ("twilio", ("client:alice",))))
    bob = RepRecord("rep-2", team, "Bob", "202", (("asterisk", ("queue:sales",)),))
    assert RepRecord.from_doc(alice.to_doc()) == alice
    index = identity_index({"rep-1": alice, "rep-2": bob})
    assert index == {("asterisk", "201"): "rep-1", ("hubspot", "52204917"): "rep-1",
                     ("twilio", "client:alice"): "rep-1", ("asterisk", "202"): "rep-2",
                     ("asterisk", "queue:sales"): "rep-2"}
    thief = RepRecord("rep-3", team, identities=(("hubspot", ("52204917",)), ("asterisk", ("202",))))
    assert identity_conflicts({"rep-1": alice, "rep-2": bob}, thief) == [
        "hubspot '52204917' is rep-1's", "asterisk '202' is rep-2's"]
    assert identity_conflicts({"rep-1": alice, "rep-2": bob}, alice) == []  # re-saving oneself is fine


def test_stage_maps_from_settings_are_checked_and_override_defaults():
    from pydantic import ValidationError

    from salespulse.settings import Settings
    from salespulse.webhooks.providers import PROVIDERS, stages_of

    settings = Settings(webhook_stages='{"hubspot": {"contractsent": "proposal", "9901": "lead"}}')
    stages = stages_of(PROVIDERS["hubspot"], settings)
    assert (stages["contractsent"], stages["9901"], stages["closedwon"]) == ("proposal", "lead", "won")
    with pytest.raises(ValidationError, match="map to no SalesPulse stage"):
        Settings(webhook_stages='{"pipedrive": {"7": "maybe"}}')
    with pytest.raises(ValidationError, match="unknown provider"):
        Settings(webhook_stages='{"fax": {}}')
