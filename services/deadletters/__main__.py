"""Dead letters: what went to sales.deadletter and why, and events sent back once the cause is fixed.

    python -m salespulse.deadletters [summary] [--source TOPIC] [--reason TEXT] [--since TIME] [--until TIME] [--json]
    python -m salespulse.deadletters show      [the same choices] [--limit N]
    python -m salespulse.deadletters resend    (the same choices | --all) [--dry-run]

`summary` counts the letters by source and reason; `show` prints them one JSON document a line,
the event included; `resend` sends the events of the letters chosen back to the topics they
were read from, with their keys and bytes, once each, after what caused them is fixed (an
exchange rate added to FX_RATES, ENTITY_RETENTION_DAYS raised, the processor's bug fixed).
Sending an event again is safe: the processor knows events by id and counts each once; one
still refused is dead-lettered again with its reason. Reads the whole topic up to its end at
the start (KAFKA_BOOTSTRAP_SERVERS and the security settings, as every service).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from datetime import datetime, timezone

import orjson
from aiokafka import AIOKafkaProducer

from salespulse.contracts.topics import DEADLETTER, read_compacted_records
from salespulse.deadletters.letters import RESENT_FROM, DeadLetter, Selection, plan_resend, summarize
from salespulse.settings import get_settings


async def read_letters(bootstrap_servers: str, selection: Selection) -> list[DeadLetter]:
    letters: list[DeadLetter] = []

    async def keep(record) -> None:
        letter = DeadLetter.from_record(record.partition, record.offset, record.timestamp, record.key,
                                        record.value, record.headers)
        if selection(letter):
            letters.append(letter)

    await read_compacted_records(bootstrap_servers, DEADLETTER, keep)
    return letters


def print_summary(letters: list[DeadLetter], as_json: bool) -> None:
    groups = summarize(letters)
    if as_json:
        print(orjson.dumps({"letters": len(letters), "groups": [g.to_doc() for g in groups]}).decode())
        return
    if not letters:
        print("no dead letters chosen")
        return
    print(f"{len(letters)} dead letters in {len(groups)} groups (source and reason):")
    width = max(len(g.source) for g in groups)
    print(f"{'count':>7}  {'source':<{width}}  {'first':<25}  {'last':<25}  reason")
    for g in groups:
        print(f"{g.count:>7}  {g.source:<{width}}  {g.first.isoformat(timespec='seconds'):<25}  "
              f"{g.last.isoformat(timespec='seconds'):<25}  {g.reason}")


async def resend(settings, letters: list[DeadLetter], dry_run: bool) -> int:
    plan = plan_resend(letters)
    for letter, why in plan.skipped:
        print(f"not sent: {DEADLETTER}[{letter.partition}]@{letter.offset} ({letter.source}): {why}", file=sys.stderr)
    by_topic = Counter(letter.source for letter in plan.send)
    if not dry_run and plan.send:
        producer = AIOKafkaProducer(**settings.producer_options(), acks="all", enable_idempotence=True)
        await producer.start()
        try:
            sends = [await producer.send(letter.source, letter.value, key=letter.key, headers=[
                (RESENT_FROM, f"{DEADLETTER}[{letter.partition}]@{letter.offset}".encode())])
                for letter in plan.send]
            await asyncio.gather(*sends)
        finally:
            await producer.stop()
    verb = "would send" if dry_run else "sent"
    topics = ", ".join(f"{n} to {topic}" for topic, n in sorted(by_topic.items())) or "nothing"
    print(f"{verb} {len(plan.send)} events ({topics}); {plan.copies} letters were copies of those "
          f"(dead-lettered again after an earlier resend); {len(plan.skipped)} not sent")
    return 0


def when(text: str) -> datetime:
    """An ISO 8601 time; without an offset, UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r} (e.g. 2026-12-07T10:00:00+01:00)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(prog="python -m salespulse.deadletters",
                                    description=__doc__.split("\n\n")[0],
                                    formatter_class=argparse.RawDescriptionHelpFormatter,
                                    epilog=__doc__.split("\n\n", 2)[2])
    parse.add_argument("command", nargs="?", choices=("summary", "show", "resend"), default="summary")
    parse.add_argument("--source", action="append", default=[], metavar="TOPIC",
                       help="letters of events read from this topic (sales.orders) or of webhooks/PROVIDER; repeatable")
    parse.add_argument("--reason", metavar="TEXT", help="letters whose reason contains TEXT (any case)")
    parse.add_argument("--since", type=when, metavar="TIME", help="letters written at or after TIME (ISO 8601)")
    parse.add_argument("--until", type=when, metavar="TIME", help="letters written before TIME (ISO 8601)")
    parse.add_argument("--json", action="store_true", help="summary: as one JSON document")
    parse.add_argument("--limit", type=int, default=20, metavar="N", help="show: the first N letters (default 20; 0: all)")
    parse.add_argument("--all", action="store_true", help="resend: every letter (else a choice above is required)")
    parse.add_argument("--dry-run", action="store_true", help="resend: say what would be sent, send nothing")
    return parse


def main(argv: list[str] | None = None) -> int:
    parse = parser()
    args = parse.parse_args(argv)
    selection = Selection(frozenset(args.source), args.reason, args.since, args.until)
    if args.command == "resend" and selection.everything and not args.all:
        parse.error("resend needs --source, --reason, --since or --until, or --all for every letter")
    if args.limit < 0:
        parse.error("--limit must be 0 or more")
    settings = get_settings()
    letters = asyncio.run(read_letters(settings.kafka_bootstrap_servers, selection))
    if args.command == "summary":
        print_summary(letters, args.json)
    elif args.command == "show":
        for letter in letters[:args.limit or None]:
            print(orjson.dumps(letter.to_doc()).decode())
    else:
        return asyncio.run(resend(settings, letters, args.dry_run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
