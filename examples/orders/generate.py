#!/usr/bin/env python3
"""Generates the orders example's sample data, deterministically (seed 7).

    python3 examples/orders/generate.py

writes
  data/orders.csv        10,000 orders as a CSV export: UTF-8 BOM, CRLF line ends, quoted
                         notes with commas, quotes and line breaks, e-mails and card numbers
                         (for pii-redact), and deliberately bad rows of every kind;
  data/sqs/event-NN.json the same kind of orders as 10 Lambda SQS events of 1,000 messages
                         (what an SQS event source mapping with a batching window delivers).

Bad rows (about 4 %): unknown currency, negative amount, empty user_id, unparseable timestamp,
uncastable amount ("12,50"), a ragged row (missing fields), a row that is not UTF-8, and, in
the SQS events, message bodies that are not JSON.
"""
import csv
import io
import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
rng = random.Random(7)

CURRENCIES = ["EUR", "USD", "GBP", "JPY", "CHF", "usd", "eur"]
NOTES = [
    "",
    "gift wrap, please",
    'customer said "thanks"',
    "deliver to back door\nring twice",
    "contact jane.doe@example.com",
    "paid with 4111 1111 1111 1111",
    "call +1 415 555 0100",
]
BAD_KINDS = ["currency", "negative", "no_user", "timestamp", "amount_text"]


def order(i, bad=None):
    cents = rng.randint(100, 40000)
    o = {
        "order_id": f"ord-{i:06d}",
        "user_id": f"user-{rng.randint(0, 499):04d}",
        "amount": f"{cents // 100}.{cents % 100:02d}",
        "currency": rng.choice(CURRENCIES),
        "timestamp": f"2024-05-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z",
        "channel": rng.choice(["web", "app", "store"]),
        "note": rng.choice(NOTES),
    }
    if bad == "currency":
        o["currency"] = "XYZ"
    elif bad == "negative":
        o["amount"] = "-5.00"
    elif bad == "no_user":
        o["user_id"] = ""
    elif bad == "timestamp":
        o["timestamp"] = "05/01/2024 10:00"
    elif bad == "amount_text":
        o["amount"] = "12,50"
    return o


def write_csv(n=10_000):
    fields = ["order_id", "user_id", "amount", "currency", "timestamp", "channel", "note"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(fields)
    for i in range(n):
        bad = rng.choice(BAD_KINDS) if rng.random() < 0.035 else None
        o = order(i, bad)
        w.writerow([o[f] for f in fields])
    text = buf.getvalue()
    lines = text.split("\r\n")
    # A ragged row and a row that is not UTF-8, in the middle of the file.
    lines.insert(5000, "ord-ragged,user-0001,10.00")
    data = "\r\n".join(lines).encode("utf-8")
    marker = b"\r\nord-latin1,user-0002,9.99,EUR,2024-05-02T10:00:00Z,web,caf\xe9\r\n"
    cut = data.index(b"\r\n", len(data) // 3)
    data = data[:cut] + marker + data[cut + 2:]
    (DATA / "orders.csv").write_bytes(b"\xef\xbb\xbf" + data)


def write_sqs(events=10, per_event=1000):
    out = DATA / "sqs"
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("event-*.json"):
        old.unlink()
    i = 100_000
    for e in range(events):
        records = []
        for _ in range(per_event):
            bad = rng.choice(BAD_KINDS + ["not_json"]) if rng.random() < 0.035 else None
            o = order(i, None if bad == "not_json" else bad)
            # SQS producers send typed JSON: amounts as numbers (unless deliberately text).
            if o["amount"] != "12,50":
                o["amount"] = json.loads(o["amount"])
            body = "order " + o["order_id"] + " (truncated" if bad == "not_json" else json.dumps(o)
            records.append({
                "messageId": f"5fea7756-0ea4-451a-a703-{i:012x}",
                "receiptHandle": f"AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a{i}",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1714557600000",
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": "1714557600001",
                },
                "messageAttributes": {
                    "channel": {"stringValue": o["channel"], "stringListValues": [], "binaryListValues": [], "dataType": "String"}
                },
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:weir-input",
                "awsRegion": "us-east-1",
            })
            i += 1
        (out / f"event-{e + 1:02d}.json").write_text(json.dumps({"Records": records}, separators=(",", ":")))


if __name__ == "__main__":
    DATA.mkdir(exist_ok=True)
    write_csv()
    write_sqs()
    print(f"wrote {DATA / 'orders.csv'} and {DATA / 'sqs'}/event-01..10.json")
