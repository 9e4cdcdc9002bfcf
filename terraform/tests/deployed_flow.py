"""The deployed flow, end to end, in the shape terraform deploys it: after `terraform apply` of
terraform/envs/local against moto (and moto_verify.py), runs the real `bootstrap` binary with
each pipeline's function environment exactly as terraform configured it, under
`cargo lambda watch --only-lambda-apis` (the Lambda runtime API), and plays the function's SQS
event source mapping against the input queue terraform created.

`orders` first. Inputs: `weir send` orders, a CSV and a JSON Lines object uploaded under the
pipeline's S3 input filter (delivered to the queue by the bucket notification terraform made),
a message that is not JSON and a poison message. Every effect is checked exactly against ground
truth computed here, in Python, from the inputs (the example plugins' rules, re-implemented
from their Rust source): the tables, the aggregates, the SNS notifications (a probe queue of
this test's, and the queue envs/local subscribes with a filter policy, which must get exactly
the big orders in EUR), the output objects, the dead letters, the input DLQ, and that every
input is exactly one of delivered, rejected, unreadable or dead-lettered. Then a stage is
hot-swapped while the same process runs, and rolled back.

Then `events`, with a second `bootstrap`: `weir plan` of terraform/envs/local/events.weir.toml
must be exactly the events.plan.json terraform deployed; that file is published signed, JSON
array objects (one of them malformed part way) and one object with the wrong suffix are
uploaded under incoming/events/ (S3 -> SNS -> the events queue, raw delivery), and the events
table, the file-events notifications, the dead letters and the conservation of every input
record are checked against ground truth, as for orders.

Usage: deployed_flow.py ENDPOINT OUTPUTS_JSON

ENDPOINT is the moto server; OUTPUTS_JSON is `terraform output -json` of envs/local. The
binaries come from WEIR_BIN, WEIR_BOOTSTRAP and CARGO_LAMBDA (terraform/tests/run.sh sets them
and reports SKIPPED when one is missing). Prints one line per check and, last,
`flow: N passed, M failed`; exits 1 on failure. Leaves nothing running; restores what it
changed in moto (bucket policies, the event source mappings' state) for the destroy.
"""

import base64
import collections
import contextlib
import datetime
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import types
from decimal import ROUND_HALF_EVEN, Decimal
from urllib.parse import unquote_plus

import boto3
from botocore.config import Config

from checks import COUNTS, check, exactly_one_of, expect, lifted_bucket_policies, paused_event_sources, summary

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
TRIPLE_DIR = os.path.join(REPO, "target", "x86_64-unknown-linux-gnu", "debug")
WEIR = os.environ.get("WEIR_BIN") or os.path.join(TRIPLE_DIR, "weir")
BOOTSTRAP = os.environ.get("WEIR_BOOTSTRAP") or os.path.join(TRIPLE_DIR, "bootstrap")
CARGO_LAMBDA = os.environ.get("CARGO_LAMBDA") or os.path.join(REPO, ".venv-cargo-lambda", "bin", "cargo-lambda")
# The built plugins (wasm32-wasip2): `weir publish` of a crate directory would run cargo.
WASM_DIR = os.environ.get("WEIR_WASM_DIR") or os.path.join(REPO, "plugins", "target", "wasm32-wasip2", "release")
EXAMPLE = os.path.join(REPO, "examples", "orders")
# The events pipeline's file and the plan terraform deploys for it.
EVENTS_TOML = os.path.join(REPO, "terraform", "envs", "local", "events.weir.toml")
EVENTS_PLAN = os.path.join(REPO, "terraform", "envs", "local", "events.plan.json")
# Made by terraform/tests/run.sh with `weir keygen`; its public key is the functions' WEIR_SIGNING_KEYS.
SIGNING_KEY_FILE = os.environ.get("WEIR_SIGNING_KEY_FILE", "")
REGION = "us-east-1"
N_ORDERS = 300          # weir send; a few hundred keeps the run well under 3 minutes on moto
SEED = 42
BAD_SHARE = 0.05
SWAP_ORDERS = 8         # per hot-swap phase
TAX = {"v1": Decimal("0.2"), "v2": Decimal("0.5")}
# envs/local/main.tf: the filter policy of the queue it subscribes to big-orders, and each
# function's WEIR_REFRESH_SECONDS (orders 0 for the hot swap; events the module's default).
BIG_ORDERS_FILTER = {"currency": ["EUR"]}
REFRESH_SECONDS = {"orders": "0", "events": "30"}
OVERALL_TIMEOUT = 200   # seconds; every wait below is bounded by it too
STARTED = time.monotonic()
CLI_ENV = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION=REGION,
               AWS_DEFAULT_REGION=REGION, AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")


def left():
    return OVERALL_TIMEOUT - (time.monotonic() - STARTED)


class Abort(Exception):
    """The flow cannot go on (a step everything after it depends on failed)."""


def weir(*args, timeout=60):
    """Runs the weir CLI (moto's credentials); its stdout, or Abort."""
    r = subprocess.run([WEIR, *args], capture_output=True, text=True, env=CLI_ENV, timeout=min(timeout, max(left(), 5)))
    if r.returncode != 0:
        raise Abort(f"weir {' '.join(args)} exited {r.returncode}: {r.stdout}{r.stderr}")
    return r.stdout


# --------------------------------------------------------------------------------------
# Ground truth: the example plugins' rules, from their Rust source (plugins/*/src/lib.rs).
# JSON numbers are Decimals carrying their text (serde_json's arbitrary_precision, which the
# plugins and the host build with, keeps a number's text as written).
# --------------------------------------------------------------------------------------

def loads(text):
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


def rust_debug(s):
    """`{:?}` of a Rust &str, for the ASCII texts used here."""
    out = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'"{out}"'


def kind_of(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, Decimal):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def iso_4217():
    # The code list is data: read it from validate-order's source rather than copy it.
    src = open(os.path.join(REPO, "plugins", "validate-order", "src", "lib.rs")).read()
    block = re.search(r"const ISO_4217: &\[&str\] = &\[(.*?)\];", src, re.S).group(1)
    return set(re.findall(r'"([A-Z]{3})"', block))


ISO = iso_4217()
JSON_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


class Reject(Exception):
    pass


def reshape(row, casts=(("amount", "float"),), renames=(), drops=("note_internal",)):
    """csv-reshape, by default with the example's config (cast.amount = float, drop =
    note_internal); `casts` and `renames` are (column, value) pairs of its cast.<column> and
    rename.<column> keys, `drops` its drop list. The casts modelled: float and int."""
    casts, renames = dict(casts), dict(renames)
    if not isinstance(row, dict):
        raise Reject(f"body must be a JSON object, got {kind_of(row)}")
    out = {}
    for column, value in row.items():
        if column in drops:
            continue
        if isinstance(value, str) and value == "":
            continue
        cast = casts.get(column)
        if isinstance(value, str) and cast:
            value = cast_value(column, value, cast)
        elif cast and not (cast == "float" and isinstance(value, Decimal)
                           or cast == "int" and isinstance(value, Decimal) and I64_TEXT.fullmatch(str(value))):
            # Already typed (a JSON source): kept only if it is what the cast would make.
            raise Reject(f"column `{column}`: expected a string to cast to {cast}, got {kind_of(value)}")
        out[renames.get(column, column)] = value
    return out


I64_TEXT = re.compile(r"-?[0-9]+")


def cast_value(column, raw, cast):
    s = raw.strip()
    fail = Reject(f"column `{column}`: cannot cast {rust_debug(raw)} to {cast}")
    if cast == "int":
        # Rust's i64::from_str: an optional sign, then digits only.
        if not re.fullmatch(r"[+-]?[0-9]+", s) or not -(1 << 63) <= int(s) < (1 << 63):
            raise fail
        return Decimal(int(s))
    assert cast == "float", cast
    try:
        f = float(s)
    except ValueError:
        raise fail from None
    if f != f or f in (float("inf"), float("-inf")) or any(c.isalpha() and c not in "eE" for c in s):
        raise fail
    text = s[1:] if s.startswith("+") else s
    # serde_json's Number::from_str: a JSON number, kept as its text.
    if not JSON_NUMBER.fullmatch(text):
        raise fail
    return Decimal(text)


def validate(o):
    def string_field(f):
        if f not in o:
            raise Reject(f"field `{f}` is missing")
        if not isinstance(o[f], str):
            raise Reject(f"field `{f}` must be a string, got {kind_of(o[f])}")
        return o[f]

    for f in ("order_id", "user_id"):
        if not string_field(f).strip():
            raise Reject(f"field `{f}` must be a non-empty string")
    if "amount" not in o:
        raise Reject("field `amount` is missing")
    a = o["amount"]
    if not isinstance(a, Decimal):
        raise Reject(f"field `amount` must be a number, got {kind_of(a)}")
    text = str(a)
    mantissa = re.split("[eE]", text)[0]
    if mantissa.startswith("-") and re.search("[1-9]", mantissa):
        raise Reject(f"field `amount` must be >= 0, got {text}")
    c = string_field("currency")
    if len(c.encode()) != 3 or not all(ch.isascii() and ch.isalpha() for ch in c):
        raise Reject(f"field `currency` must be a three-letter ISO 4217 code, got {rust_debug(c)}")
    if c.upper() not in ISO:
        raise Reject(f"field `currency`: {rust_debug(c)} is not an ISO 4217 currency code")
    ts = string_field("timestamp")
    error = rfc3339_error(ts)
    if error:
        raise Reject(
            "field `timestamp` must be an RFC 3339 date-time such as 2024-05-01T12:00:00Z, "
            f"got {rust_debug(ts)} ({error})"
        )


def rfc3339_error(ts):
    """chrono 0.4.45's DateTime::parse_from_rfc3339 (format/parse.rs), as far as the inputs
    here need it: None if it parses, else its ParseError's text."""
    b = ts.encode()
    if len(b) < 19:
        return "premature end of input"
    digits = (0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18)
    if (any(not chr(b[i]).isdigit() for i in digits) or b[4:5] != b"-" or b[7:8] != b"-"
            or b[10:11] not in (b"t", b"T", b" ") or b[13:14] != b":" or b[16:17] != b":"):
        return "input contains invalid characters"
    if RFC3339.fullmatch(ts):
        datetime.datetime.fromisoformat(ts.replace("z", "Z"))   # ranges: raises on a case not modelled
        return None
    raise NotImplementedError(f"timestamp {ts!r}: a chrono error this test does not model")


def fmt_decimal(d):
    """rust_decimal's normalize().to_string(): no trailing zeros, never an exponent."""
    d = d.normalize()
    return format(d, "f") if d != 0 else "0"


def enrich(o, tax):
    """enrich-order with tax_rate = tax, pk_fields = user_id,order_id."""
    o = dict(o)
    amount = o["amount"]
    cents_exact = amount * 100
    cents = cents_exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    if cents != cents_exact:
        o["amount_rounded"] = True
    o["amount_cents"] = Decimal(int(cents))
    total = (amount * (1 + tax)).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    o["total"] = Decimal(fmt_decimal(total))
    at = datetime.datetime.fromisoformat(o["timestamp"].replace("z", "Z"))
    o["date"] = at.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d")
    if isinstance(o.get("currency"), str):
        o["currency"] = o["currency"].upper()
    o["pk"] = f"{o['user_id']}#{o['order_id']}"
    return o


EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}", re.ASCII)
CARD = re.compile(r"\d(?:[ \-]?\d){12,18}", re.ASCII)


def luhn(ds):
    total = 0
    for i, d in enumerate(reversed(ds)):
        if i % 2 == 1:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return total % 10 == 0


def redact_str(s):
    if "@" not in s and sum(c in "0123456789" for c in s) < 13:
        return s

    def email(m):
        local, _, domain = m.group(0).partition("@")
        return f"{local[:1]}***@{domain}"

    def card(m):
        ds = [int(c) for c in m.group(0) if c in "0123456789"]
        if 13 <= len(ds) <= 19 and luhn(ds):
            return "*" * (len(ds) - 4) + "".join(map(str, ds[-4:]))
        return m.group(0)

    if "@" in s:
        s = EMAIL.sub(email, s)
    if sum(c in "0123456789" for c in s) >= 13:
        s = CARD.sub(card, s)
    return s


def redact_value(v):
    if isinstance(v, str):
        return redact_str(v)
    if isinstance(v, list):
        return [redact_value(x) for x in v]
    if isinstance(v, dict):
        return {k: redact_value(x) for k, x in v.items()}
    return v


def redact(o, skip=("order_id", "user_id", "pk")):
    """pii-redact of an object, by default with the example's skip_fields = order_id,user_id,pk."""
    return {k: (v if k in skip else redact_value(v)) for k, v in o.items()}


def chain(body, tax):
    """('ok', record) or ('reject', stage, reason) for one record body (JSON text)."""
    value = loads(body)
    for stage, fn in (("reshape", reshape), ("validate", None), ("enrich", None), ("redact", None)):
        try:
            if stage == "reshape":
                value = fn(value)
            elif stage == "validate":
                validate(value)
            elif stage == "enrich":
                value = enrich(value, tax)
            else:
                value = redact(value)
        except Reject as r:
            return ("reject", stage, str(r))
    return ("ok", value)


class Rng:
    """cli/src/send.rs's SplitMix64, so the orders `weir send` sends are known here."""

    M = (1 << 64) - 1

    def __init__(self, seed):
        self.s = seed

    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & self.M
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self.M
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self.M
        return z ^ (z >> 31)

    def below(self, n):
        return self.next() % max(n, 1)

    def chance(self, p):
        return (self.next() >> 11) / float(1 << 53) <= p


def weir_send_orders(count, seed, bad_share, batch_size=10):
    """What `weir send --count --seed --bad-share --batch-size` sends, in order."""
    rng = Rng(seed)
    currencies = ["EUR", "USD", "GBP", "JPY", "CHF", "usd", "eur"]
    out = []
    for i in range(count):
        bad = 1 + rng.below(5) if rng.chance(bad_share) else 0
        cents = 100 + rng.below(30_000)
        channel = ["web", "app", "store"][rng.below(3)]
        o = {"order_id": f"ord-{i:07d}", "user_id": f"user-{rng.below(500):04d}",
             "amount": Decimal(repr(cents / 100.0)), "currency": currencies[rng.below(len(currencies))]}
        day, hour, minute, second = 1 + rng.below(28), rng.below(24), rng.below(60), rng.below(60)
        o["timestamp"] = f"2024-05-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}Z"
        o["channel"] = channel
        o["email"] = f"customer{rng.below(10_000)}@example.com"
        if bad == 1:
            o["currency"] = "XYZ"
        elif bad == 2:
            o["amount"] = Decimal(-5)
        elif bad == 3:
            o["user_id"] = ""
        elif bad == 4:
            o["timestamp"] = "yesterday"
        elif bad == 5:
            o["amount"] = "12,50"
        out.append(o)
    assert batch_size == 10
    return out


def dumps(o):
    """JSON text of a ground-truth value (Decimals as their text)."""
    def conv(v):
        if isinstance(v, Decimal):
            return json.loads(str(v)) if "." not in str(v) and "E" not in str(v) else float(str(v))
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, list):
            return [conv(x) for x in v]
        return v
    return json.dumps(conv(o))


# --------------------------------------------------------------------------------------
# Inputs built from the example's data
# --------------------------------------------------------------------------------------

def csv_slice():
    """A slice of examples/orders/data/orders.csv (BOM, CRLF, quoted multi-line notes, e-mails,
    card numbers): the header, the first 40 rows, the first row of each bad kind, the ragged
    row and the row that is not UTF-8. Returns (bytes, rows) with each row's 1-based line."""
    data = open(os.path.join(EXAMPLE, "data", "orders.csv"), "rb").read()
    # Records end with CRLF; the notes' embedded line breaks are bare LF.
    lines = data.split(b"\r\n")
    header, body = lines[0], [x for x in lines[1:] if x]
    chosen = body[:40]
    for marker in (b",XYZ,", b",-5.00,", b",,", b"05/01/2024", b",12,50"):
        # `,,` is an empty user_id (column 2); `,12,50` the uncastable amount (quoted in CSV).
        for x in body[40:]:
            fields = x.split(b",")
            if marker == b",,":
                hit = len(fields) > 2 and fields[1] == b""
            elif marker == b",12,50":
                hit = b'"12,50"' in x
            else:
                hit = marker in x
            if hit and x not in chosen:
                chosen.append(x)
                break
    ragged = [x for x in body if x.startswith(b"ord-ragged,")]
    latin1 = [x for x in body if x.startswith(b"ord-latin1,")]
    assert len(ragged) == 1 and len(latin1) == 1, (ragged, latin1)
    chosen.insert(20, ragged[0])
    chosen.insert(30, latin1[0])
    text = b"\r\n".join([header] + chosen) + b"\r\n"
    rows, line = [], 2
    for x in chosen:
        rows.append((line, x))
        line += 1 + x.count(b"\n")
    return text, header, rows


def csv_fields(raw):
    import csv
    import io
    return next(csv.reader(io.StringIO(raw.decode("utf-8"))))


JSONL_LINES = [
    json.dumps({"order_id": "jl-001", "user_id": "user-9001", "amount": 350.5, "currency": "eur",
                "timestamp": "2024-05-03T23:30:00-05:00", "channel": "app",
                "email": "jane.doe@example.co.uk", "note": "card 5500-0000-0000-0004, ok"}),
    "",
    "this is not json",
    json.dumps({"order_id": "jl-004", "user_id": "user-9002", "amount": "19.99", "currency": "GBP",
                "timestamp": "2024-05-04T10:00:00Z", "channel": "web"}),
    json.dumps({"order_id": "jl-005", "user_id": "user-9003", "amount": 20, "currency": "US",
                "timestamp": "2024-05-04T10:00:00Z", "channel": "web"}),
    json.dumps({"order_id": "jl-006", "user_id": "user-9004", "amount": 12.125, "currency": "chf",
                "channel": "store"}),
    json.dumps({"order_id": "jl-007", "user_id": "user-9004", "amount": 0.125, "currency": "chf",
                "timestamp": "2024-05-31T23:59:59+00:00", "channel": "store", "contact": "bob@mail.example.org"}),
]


def swap_orders(tag):
    return [{"order_id": f"swap-{tag}-{i:03d}", "user_id": f"user-{9100 + i % 3:04d}",
             "amount": Decimal(f"{150 + 40 * i}.25"), "currency": ["EUR", "USD", "JPY"][i % 3],
             "timestamp": f"2024-06-0{1 + i % 3}T08:00:00Z", "channel": "web",
             "email": f"swap{i}@example.com"} for i in range(SWAP_ORDERS)]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --------------------------------------------------------------------------------------

# --------------------------------------------------------------------------------------
# The events pipeline: terraform/envs/local/events.weir.toml, its inputs and ground truth
# --------------------------------------------------------------------------------------

def events_model():
    """What events.weir.toml configures, as far as the ground truth below models it (a file
    that asks for anything else stops the flow, rather than being checked against a wrong
    model): csv-reshape's casts, renames and drops, pii-redact's skip_fields, the table key,
    and the notify sink's `ne` predicate and attributes."""
    import tomllib
    f = tomllib.load(open(EVENTS_TOML, "rb"))
    stages = [(s["name"], os.path.basename(s["plugin"])) for s in f["stages"]]
    if stages != [("reshape", "csv-reshape"), ("redact", "pii-redact")]:
        raise NotImplementedError(f"events.weir.toml stages {stages}: not modelled")
    reshape_cfg, redact_cfg = f["stages"][0].get("config", {}), f["stages"][1].get("config", {})
    casts = tuple((k.removeprefix("cast."), v) for k, v in reshape_cfg.items() if k.startswith("cast."))
    renames = tuple((k.removeprefix("rename."), v) for k, v in reshape_cfg.items() if k.startswith("rename."))
    drops = tuple(x.strip() for x in reshape_cfg.get("drop", "").split(",") if x.strip())
    if set(reshape_cfg) - {"drop"} - {f"cast.{c}" for c, _ in casts} - {f"rename.{c}" for c, _ in renames} \
            or set(redact_cfg) - {"skip_fields"} or any(c not in ("int", "float") for _, c in casts):
        raise NotImplementedError(f"events.weir.toml stage config {reshape_cfg} {redact_cfg}: not modelled")
    [table] = f["sinks"]["table"]
    notify = f["sinks"]["notify"]
    when = notify.get("when", "all")
    if table.get("mode", "put") != "put" or when == "all" or when["op"] != "ne" or not isinstance(when["value"], str):
        raise NotImplementedError(f"events.weir.toml sinks {f['sinks']}: not modelled")
    return {
        "reshape": {"casts": casts, "renames": renames, "drops": drops},
        "skip": tuple(x.strip() for x in redact_cfg.get("skip_fields", "").split(",") if x.strip()),
        "key": table["key"] if isinstance(table["key"], str) else table["key"][0],
        "table": table["name"], "topic": notify["topic"], "dead_letter": f["dead_letter"]["queue"],
        "when": (when["field"], when["value"]), "attributes": tuple(notify.get("attributes", [])),
    }


def events_chain(body, model):
    """('ok', record) or ('reject', stage, reason) for one events record (JSON text)."""
    try:
        value = reshape(loads(body), **model["reshape"])
    except Reject as r:
        return ("reject", "reshape", str(r))
    return ("ok", redact(value, skip=model["skip"]))


def events_notified(r, model):
    """The notify predicate `field ne value` (host/src/sink/notify/mod.rs `matches`): an absent
    field never matches; a value of another type than the predicate's is `ne`."""
    field, value = model["when"]
    return field in r and (not isinstance(r[field], str) or r[field] != value)


def events_attributes(r, model, chain_version):
    """The notification's attributes, (SNS type, value): `pipeline`, each configured field that
    is a number (Number), a non-empty string or a boolean (String), and `weir_chain`."""
    out = {"pipeline": ("String", "events")}
    for f in model["attributes"]:
        v = r.get(f)
        if isinstance(v, bool):
            out[f] = ("String", "true" if v else "false")
        elif isinstance(v, Decimal):
            out[f] = ("Number", str(v))
        elif isinstance(v, str) and v:
            out[f] = ("String", v)
    out["weir_chain"] = ("String", chain_version)
    return out


# A JSON array, as an export writes it (indented, one element a line): e-mails and card
# numbers nested anywhere, a count given as text or already as a number, an empty field, a
# debug field to drop, a heartbeat (not notified), and two records csv-reshape refuses (not an
# object; a count that is not an integer).
EVENTS_ARRAY = """[
  {"id": "evt-001", "type": "signup", "count": "1", "user": {"email": "jane.doe@example.com", "name": "Jane"}, "debug": "trace a1"},
  {"id": "evt-002", "type": "purchase", "count": 7, "note": "paid with 4111 1111 1111 1111", "tags": ["web", "ops@example.org"]},
  {"id": "evt-003", "type": "heartbeat", "count": "0", "source": "cron"},
  "ping",
  {"id": "evt-005", "type": "purchase", "count": "three"},
  {"id": "evt-006", "type": "refund", "count": " +4 ", "comment": "", "amount": 12.50, "flag": true, "extra": null,
   "card": "5500-0000-0000-0004", "phone": "+1 415 555 0100"},
  {"id": "evt-007", "type": "signup", "contact": "bob@mail.example.org", "debug": {"trace": "x"}}
]
"""
# A JSON array broken part way (a missing comma): the elements before the break are records,
# the rest cannot be read, and the object is one unreadable dead letter (`#?`).
EVENTS_BROKEN = ('[{"id":"evt-101","type":"click","count":"5"},{"id":"evt-102","type":"click","email":"x.y@example.net"}'
                 ' {"id":"evt-103","type":"click"}]')
# The same pipeline's prefix, a suffix its filter does not name: never reaches it.
EVENTS_IGNORED = '{"id":"evt-201","type":"click"}\n'


def events_array_error(text):
    """serde_json's error for EVENTS_BROKEN, as the host's JSON array reader reports it: the
    position is the line and 1-based column of the character where `,` or `]` was expected."""
    at = text.index('{"id":"evt-103"')
    line = text.count("\n", 0, at) + 1
    column = at - (text.rfind("\n", 0, at) + 1) + 1
    return f"JSON array is malformed (expected `,` or `]` at line {line} column {column}); elements after that point cannot be read"


def array_elements(text):
    """The elements of a JSON array (up to where it breaks), each as its own JSON text."""
    out, dec, i = [], json.JSONDecoder(), text.index("[") + 1
    while True:
        while text[i] in " \t\r\n,":
            i += 1
        if text[i] == "]":
            return out
        try:
            _, end = dec.raw_decode(text, i)
        except ValueError:
            return out
        out.append(text[i:end])
        i = end
        j = i
        while text[j] in " \t\r\n":
            j += 1
        if text[j] not in ",]":
            return out


def main():
    endpoint, outputs_path = sys.argv[1:3]
    with open(outputs_path) as f:
        outputs = json.load(f)
    w = outputs["weir"]["value"]
    missing = [x for x in (WEIR, BOOTSTRAP, CARGO_LAMBDA) if not os.access(x, os.X_OK)]
    missing += [f"{WASM_DIR}/{n}.wasm" for n in ("csv_reshape", "validate_order", "enrich_order", "pii_redact")
                if not os.path.isfile(f"{WASM_DIR}/{n}.wasm")]
    if missing:
        print(f"SKIPPED: missing {', '.join(missing)}")
        print("flow: 0 passed, 0 failed")
        sys.exit(3)

    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    cfg = Config(retries={"max_attempts": 3}, s3={"addressing_style": "path"})
    c = {s: session.client(s, endpoint_url=endpoint, config=cfg) for s in ("s3", "sqs", "sns", "lambda", "dynamodb")}
    ctx = types.SimpleNamespace(
        w=w, endpoint=endpoint, eur_queue_url=outputs["big_orders_eur_queue_url"]["value"],
        s3=c["s3"], sqs=c["sqs"], sns=c["sns"], lam=c["lambda"], ddb=c["dynamodb"],
        work=tempfile.mkdtemp(prefix="weir-flow."),
        children=[],                    # every process started, stopped at exit
        functions=[],                   # every Deployed started (for their logs)
        # What is undone at exit, last first: moto's state (bucket policies, event source
        # mappings, the probes) as it was before, for the destroy.
        restore=contextlib.ExitStack(),
        state={},                       # "cache_existed": whether WEIR_CACHE_DIR was there before the functions ran
    )

    def stop_children(*_):
        for proc in ctx.children:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in ctx.children:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def tails(n):
        return "".join(f"  {f.key} function log (last lines):\n{f.tail('function', n)}\n" for f in ctx.functions)

    try:
        run_flow(ctx)
    except Abort as a:
        COUNTS["failed"] += 1
        print(f"  FAIL flow stopped: {a}")
        print(tails(60), end="")
        for f in ctx.functions:
            print(f"  {f.key} cargo lambda watch log (last lines):\n{f.tail('watch', 20)}")
    finally:
        stop_children()
        try:
            ctx.restore.close()
        except Exception as exc:  # noqa: BLE001
            print(f"  warning: could not restore moto's state: {exc}")
        # The functions run with the deployed WEIR_CACHE_DIR (/tmp/weir-cache): removed after
        # the run unless it was there before.
        cache = ctx.state.get("cache_dir")
        if cache and ctx.state.get("cache_existed") is False and os.path.isdir(cache):
            shutil.rmtree(cache, ignore_errors=True)
        if COUNTS["failed"]:
            print(tails(40), end="")
        shutil.rmtree(ctx.work, ignore_errors=True)
    print(f"  (flow took {time.monotonic() - STARTED:.0f} s)")


class Deployed:
    """One pipeline's function as terraform deployed it, run for real: its configuration, its
    SQS event source mapping and its queue's redrive policy read back from moto; `start()` runs
    the real `bootstrap` with that environment under `cargo lambda watch --only-lambda-apis`;
    `run_queue()` is its event source mapping. Checks are named with `label`."""

    def __init__(self, ctx, key, label):
        self.ctx, self.key, self.label = ctx, key, label
        self.p = ctx.w["pipelines"][key]
        lam, sqs = ctx.lam, ctx.sqs
        self.name = self.p["function_name"]
        self.conf = lam.get_function_configuration(FunctionName=self.name)
        self.env = self.conf["Environment"]["Variables"]
        self.logs = {"function": os.path.join(ctx.work, f"{key}-function.log"), "watch": os.path.join(ctx.work, f"{key}-watch.log")}
        self.seen = {}                 # messageId -> {"body", "receives", "failed", "deleted", "attrs", "phase"}
        self.invocations = []          # every answer (or {"error": ...})
        self.process = None
        # By ARN: moto 5.2.5 matches FunctionName against the mapping's function ARN only.
        maps = lam.list_event_source_mappings(FunctionName=self.conf["FunctionArn"])["EventSourceMappings"]
        if len(maps) != 1:
            raise Abort(f"expected one event source mapping for {self.name}, got {maps}")
        self.esm = maps[0]
        self.queue_arn = self.esm["EventSourceArn"]
        self.batch_size = self.esm["BatchSize"]
        self.window = self.esm.get("MaximumBatchingWindowInSeconds", 0)
        self.queue_url = sqs.get_queue_url(QueueName=self.queue_arn.split(":")[-1])["QueueUrl"]
        qattrs = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["All"])["Attributes"]
        self.redrive = json.loads(qattrs["RedrivePolicy"])
        self.max_receives = int(self.redrive["maxReceiveCount"])
        self.dlq_url = sqs.get_queue_url(QueueName=self.redrive["deadLetterTargetArn"].split(":")[-1])["QueueUrl"]

    def check_deployed(self):
        """The function's environment, event source and redrive, as envs/local asks."""
        env, esm, p, label = self.env, self.esm, self.p, self.label
        contract = sorted(v["name"] for v in json.load(open(os.path.join(REPO, "lambda", "env-vars.json")))["variables"])
        check(f"{label}{self.name}'s environment has exactly the names of lambda/env-vars.json",
              lambda: expect(sorted(env) == contract, sorted(env)))
        public_key = os.environ.get("WEIR_SIGNING_PUBLIC_KEY", "")
        refresh = REFRESH_SECONDS[self.key]
        check(f"{label}WEIR_REFRESH_SECONDS={refresh} and WEIR_SIGNING_KEYS = the key run.sh made for this run",
              lambda: expect(env.get("WEIR_REFRESH_SECONDS") == refresh and public_key
                             and env.get("WEIR_SIGNING_KEYS") == public_key, env))
        check(f"{label}one SQS event source = the pipeline's input queue, batch {self.batch_size}, window {self.window} s, ReportBatchItemFailures",
              lambda: expect(self.queue_arn == p["input_queue_arn"] and esm.get("FunctionResponseTypes") == ["ReportBatchItemFailures"]
                             and esm.get("State") in ("Enabled", "Enabling", None), esm))
        check(f"{label}input queue redrives to {self.redrive['deadLetterTargetArn'].split(':')[-1]} after {self.max_receives} receives",
              lambda: expect(self.redrive["deadLetterTargetArn"] == p["input_dlq_arn"], self.redrive))

    def tail(self, name, n=60):
        try:
            lines = open(self.logs[name], errors="replace").read().splitlines()
        except OSError:
            return f"({name} log missing)"
        return "\n".join(f"      | {x}" for x in lines[-n:])

    def start(self):
        """`cargo lambda watch` (the runtime API) on a free port, and the bootstrap polling it."""
        ctx, conf = self.ctx, self.conf
        self.port = port = free_port()
        watch = subprocess.Popen(
            [CARGO_LAMBDA, "lambda", "watch", "--only-lambda-apis", "--timeout", str(conf["Timeout"] + 30),
             "-A", "127.0.0.1", "-P", str(port)],
            # cargo lambda reads the cargo metadata of the directory it runs in (no build with
            # --only-lambda-apis): the function's own crate, as lambda/tests/e2e.rs runs it.
            cwd=os.path.join(REPO, "lambda"), stdout=open(self.logs["watch"], "w"), stderr=subprocess.STDOUT,
            start_new_session=True)
        ctx.children.append(watch)
        ctx.functions.append(self)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if watch.poll() is not None or time.monotonic() > deadline:
                    raise Abort(f"cargo lambda watch did not listen on {port}:\n{self.tail('watch')}") from None
                time.sleep(0.2)
        if "cache_dir" not in ctx.state:
            ctx.state["cache_dir"] = self.env.get("WEIR_CACHE_DIR", "/tmp/weir-cache")
            ctx.state["cache_existed"] = os.path.isdir(ctx.state["cache_dir"])
        # What Lambda gives a provided.al2023 function: its configuration's environment, exactly,
        # plus the variables the service sets (runtime API, name, memory, version, log group,
        # region, credentials: here fake ones and the emulator's endpoint).
        fn_env = dict(self.env)
        fn_env.update({
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "AWS_LAMBDA_RUNTIME_API": f"http://127.0.0.1:{port}/.rt",
            "AWS_LAMBDA_FUNCTION_NAME": conf["FunctionName"],
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(conf["MemorySize"]),
            "AWS_LAMBDA_FUNCTION_VERSION": conf.get("Version", "$LATEST"),
            "AWS_LAMBDA_LOG_GROUP_NAME": (conf.get("LoggingConfig") or {}).get("LogGroup", self.p["log_group_name"]),
            "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]weirflow",
            "AWS_EXECUTION_ENV": "AWS_Lambda_" + conf["Runtime"],
            "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": ctx.endpoint,
            "AWS_ACCESS_KEY_ID": "fake", "AWS_SECRET_ACCESS_KEY": "fake", "AWS_SESSION_TOKEN": "fake",
            "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        })
        self.process = subprocess.Popen([BOOTSTRAP], env=fn_env, stdout=open(self.logs["function"], "w"),
                                        stderr=subprocess.STDOUT, start_new_session=True, cwd=ctx.work)
        ctx.children.append(self.process)

    def invoke(self, event):
        path = os.path.join(self.ctx.work, f"{self.key}-event.json")
        with open(path, "w") as f:
            json.dump(event, f)
        # cargo lambda watch routes invocations by cargo binary name, or `_` for the function
        # started on its own (--only-lambda-apis); the deployed name is in the function's env.
        try:
            r = subprocess.run([CARGO_LAMBDA, "lambda", "invoke", "-A", "127.0.0.1", "-P", str(self.port), "-o", "json", "-F", path, "_"],
                               capture_output=True, text=True, timeout=min(self.conf["Timeout"] + 30, max(left(), 5)))
        except subprocess.TimeoutExpired:
            raise Abort(f"cargo lambda invoke ({self.key}) got no answer in time") from None
        if self.process.poll() is not None:
            raise Abort(f"{self.key}'s bootstrap exited ({self.process.returncode})")
        if r.returncode != 0:
            # An invocation error: Lambda returns the whole batch to the queue.
            self.invocations.append({"error": r.stdout + r.stderr})
            return None
        answer = json.loads(r.stdout)
        self.invocations.append(answer)
        return answer

    def lambda_record(self, m):
        attrs = m.get("Attributes", {})
        return {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": {k: attrs[k] for k in ("ApproximateReceiveCount", "SentTimestamp", "SenderId",
                                                 "ApproximateFirstReceiveTimestamp", "AWSTraceHeader") if k in attrs},
            "messageAttributes": {
                k: ({"stringValue": v["StringValue"]} if "StringValue" in v else
                    {"binaryValue": base64.b64encode(v["BinaryValue"]).decode()})
                | {"stringListValues": [], "binaryListValues": [], "dataType": v["DataType"]}
                for k, v in m.get("MessageAttributes", {}).items()
            },
            "md5OfBody": m["MD5OfBody"],
            **({"md5OfMessageAttributes": m["MD5OfMessageAttributes"]} if "MD5OfMessageAttributes" in m else {}),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": REGION,
        }

    def run_queue(self, phase, timeout):
        """Polls until the input queue is empty: batches of up to BatchSize messages gathered
        within the batching window, one invocation each, then what Lambda does with the
        answer: delete every message not in batchItemFailures; the listed ones are left to SQS
        (visibility set to 0 so the test does not wait minutes), which redelivers them and,
        after maxReceiveCount receives, moves them to the DLQ."""
        sqs, queue_url, seen = self.ctx.sqs, self.queue_url, self.seen
        end = time.monotonic() + min(timeout, left())
        while time.monotonic() < end:
            batch, gathering = [], time.monotonic() + self.window
            while len(batch) < self.batch_size:
                got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=min(10, self.batch_size - len(batch)),
                                          AttributeNames=["All"], MessageAttributeNames=["All"], WaitTimeSeconds=0)
                msgs = got.get("Messages", [])
                batch += msgs
                if not msgs or time.monotonic() > gathering:
                    break
            if not batch:
                a = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
                if all(a[k] == "0" for k in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                                             "ApproximateNumberOfMessagesDelayed")):
                    return
                time.sleep(0.2)
                continue
            for m in batch:
                s = seen.setdefault(m["MessageId"], {"body": m["Body"], "receives": [], "failed": 0, "deleted": False,
                                                     "attrs": m.get("MessageAttributes", {}), "phase": phase})
                s["receives"].append(int(m["Attributes"]["ApproximateReceiveCount"]))
            answer = self.invoke({"Records": [self.lambda_record(m) for m in batch]})
            failed = set() if answer is not None else {m["MessageId"] for m in batch}
            if answer is not None:
                failed = {f["itemIdentifier"] for f in answer.get("batchItemFailures") or []}
            done = [m for m in batch if m["MessageId"] not in failed]
            for i in range(0, len(done), 10):
                chunk = done[i:i + 10]
                r = sqs.delete_message_batch(QueueUrl=queue_url, Entries=[
                    {"Id": str(j), "ReceiptHandle": m["ReceiptHandle"]} for j, m in enumerate(chunk)])
                if r.get("Failed"):
                    raise Abort(f"DeleteMessageBatch failed: {r['Failed']}")
            for m in done:
                seen[m["MessageId"]]["deleted"] = True
            for m in batch:
                if m["MessageId"] in failed:
                    seen[m["MessageId"]]["failed"] += 1
                    sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
        raise Abort(f"{self.key} phase {phase}: the input queue was not empty in time")

    def log_ok(self):
        log = open(self.logs["function"], errors="replace").read()
        return expect(all(_is_json(x) for x in log.splitlines() if x.startswith("{"))
                      and '"Inputs"' in log and "refused a pipeline version" not in log, log[-2000:])


def private_wasm(ctx):
    """A private copy of each built plugin (stable while the flow runs), by stage name."""
    wasm = {}
    for stage, file in (("reshape", "csv_reshape"), ("validate", "validate_order"), ("enrich", "enrich_order"), ("redact", "pii_redact")):
        dst = os.path.join(ctx.work, f"{file}.wasm")
        shutil.copyfile(os.path.join(WASM_DIR, f"{file}.wasm"), dst)
        wasm[stage] = dst
    return wasm


def with_built_plugins(text, wasm, crates):
    """A pipeline file with each `plugin = "<...>/plugins/<crate>"` pointing at the built .wasm
    (a crate directory would make `weir publish` run cargo); configs and sinks as they are."""
    out = re.sub(r'plugin = "(?:\.\./)+plugins/([a-z-]+)"', lambda m: f'plugin = "{wasm[crates[m.group(1)]]}"', text)
    assert out.count('.wasm"') == text.count("plugin = "), out
    return out


def run_flow(ctx):
    run_orders(ctx)
    run_events(ctx)


def run_orders(ctx):
    w, endpoint, s3, sqs, sns, lam, ddb, work = ctx.w, ctx.endpoint, ctx.s3, ctx.sqs, ctx.sns, ctx.lam, ctx.ddb, ctx.work
    # ---- 1. The function and its event source, as deployed -------------------------------
    fn = Deployed(ctx, "orders", "deployed: ")
    p, env = fn.p, fn.env
    fn.check_deployed()
    if not SIGNING_KEY_FILE or not os.path.isfile(SIGNING_KEY_FILE):
        raise Abort("no WEIR_SIGNING_KEY_FILE: terraform/tests/run.sh makes one with `weir keygen` before the apply")
    queue_url, dlq_url, max_receives = fn.queue_url, fn.dlq_url, fn.max_receives
    seen, invocations, run_queue = fn.seen, fn.invocations, fn.run_queue

    # moto runs an enabled event source mapping itself (checks.paused_event_sources): this
    # test is the event source mapping, so moto's is paused while it runs and resumed after.
    ctx.restore.enter_context(paused_event_sources(lam, [fn.esm["UUID"]]))

    # The TLS-only bucket policies (checks.lifted_bucket_policies): moto_verify.py has just
    # proven each bucket has one; the functions and `weir publish` need object access, so they
    # are lifted for the flow and put back exactly as they were before destroy.
    buckets = {"plugins": w["plugins_bucket"], "input": w["input_bucket"], "output": w["output_bucket"]}
    try:
        ctx.restore.enter_context(lifted_bucket_policies(s3, buckets.values()))
    except AssertionError as e:
        raise Abort(str(e)) from None

    plugins_bucket = env["WEIR_PLUGINS_BUCKET"]
    bindings = json.loads(s3.get_object(Bucket=plugins_bucket, Key=env["WEIR_BINDINGS_KEY"])["Body"].read())
    tables = {k: t["name"] for k, t in bindings["tables"].items()}
    topic_arn = bindings["topics"]["big-orders"]["arn"]
    objects = bindings["objects"]["orders-processed"]
    rejects_url = bindings["dead_letter"]["queue_url"]
    check("deployed: the bindings document the function reads names the resources terraform output",
          lambda: expect(tables == {k: t["name"] for k, t in p["tables"].items()} and topic_arn == p["topics"]["big-orders"]["arn"]
                         and objects == {"bucket": w["output_bucket"], "prefix": p["output_prefixes"]["orders-processed"]}
                         and rejects_url == p["rejects_queue_url"], bindings))

    # ---- SNS: terraform's filtered subscriber, and a probe of this test's ------------------
    eur_url = ctx.eur_queue_url
    eur_arn = sqs.get_queue_attributes(QueueUrl=eur_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    subs = sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]

    def terraform_subscription():
        if len(subs) != 1:
            return subs
        a = sns.get_subscription_attributes(SubscriptionArn=subs[0]["SubscriptionArn"])["Attributes"]
        return expect(subs[0]["Protocol"] == "sqs" and subs[0]["Endpoint"] == eur_arn and a.get("RawMessageDelivery") == "true"
                      and json.loads(a.get("FilterPolicy") or "null") == BIG_ORDERS_FILTER, {"subscriptions": subs, "attributes": a})

    check(f"deployed: terraform's one subscription to big-orders: raw delivery to the queue envs/local outputs, filter policy {json.dumps(BIG_ORDERS_FILTER)}",
          terraform_subscription)
    # The probe: every notification, unfiltered (SNS's envelope, with its attributes).
    probe_url = sqs.create_queue(QueueName="flowprobe-big-orders")["QueueUrl"]
    ctx.restore.callback(sqs.delete_queue, QueueUrl=probe_url)
    probe_arn = sqs.get_queue_attributes(QueueUrl=probe_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sub = sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=probe_arn, ReturnSubscriptionArn=True)["SubscriptionArn"]
    ctx.restore.callback(sns.unsubscribe, SubscriptionArn=sub)

    # ---- 3. Publish the example pipeline (v1) ----------------------------------------------
    wasm = ctx.wasm = private_wasm(ctx)
    example = open(os.path.join(EXAMPLE, "weir.toml")).read()
    crates = {"csv-reshape": "reshape", "validate-order": "validate", "enrich-order": "enrich", "pii-redact": "redact"}
    definition = with_built_plugins(example, wasm, crates)
    v1_toml = os.path.join(work, "weir.toml")
    open(v1_toml, "w").write(definition)

    target = ["--pipeline", "orders", "--bucket", plugins_bucket, "--endpoint-url", endpoint, "--region", REGION]
    out = weir("publish", "--definition", v1_toml, *target, "--sign", SIGNING_KEY_FILE, "--note", "flow v1")
    check("weir publish --definition --sign (every stage) -> version 1, signed",
          lambda: expect("version 1" in out and "(signed)" in out, out))
    sha = {s: hashlib.sha256(open(f, "rb").read()).hexdigest() for s, f in wasm.items()}

    # ---- 2. The real bootstrap under cargo lambda watch, with the deployed environment ------
    fn.start()

    # ---- 5. Inputs ---------------------------------------------------------------------------
    out = weir("send", "--queue-url", queue_url, "--count", str(N_ORDERS), "--batch-size", "10", "--seed", str(SEED),
               "--bad-share", str(BAD_SHARE), "--endpoint-url", endpoint, "--region", REGION)
    check(f"weir send: {N_ORDERS} orders to the input queue", lambda: expect(f"sent {N_ORDERS} messages" in out, out))
    not_json = sqs.send_message(QueueUrl=queue_url, MessageBody="not json {")["MessageId"]
    # A poison message: an S3 event notification, in exactly the shape S3 sends, for an object
    # in a bucket that does not exist. GetObject fails with NoSuchBucket, which the function
    # treats as transient (only NoSuchKey is final): it reports the message in
    # batchItemFailures on every receive, and after maxReceiveCount SQS moves it to the DLQ.
    poison_body = json.dumps({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": REGION,
        "eventTime": "2026-01-01T00:00:00.000Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "weir-orders-0",
               "bucket": {"name": "weir-flow-no-such-bucket", "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                          "arn": "arn:aws:s3:::weir-flow-no-such-bucket"},
               "object": {"key": "incoming/orders/poison.csv", "size": 42, "eTag": "0123456789abcdef0123456789abcdef",
                          "sequencer": "0055AED6DCD90281E5"}}}]})
    poison = sqs.send_message(QueueUrl=queue_url, MessageBody=poison_body)["MessageId"]

    csv_bytes, csv_header, csv_rows = csv_slice()
    csv_key, jsonl_key = "incoming/orders/flow-orders.csv", "incoming/orders/flow-orders.jsonl"
    jsonl_bytes = ("\n".join(JSONL_LINES) + "\n").encode()
    in_bucket = w["input_bucket"]
    before = int(sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
                 ["Attributes"]["ApproximateNumberOfMessages"])
    s3.put_object(Bucket=in_bucket, Key=csv_key, Body=csv_bytes)
    s3.put_object(Bucket=in_bucket, Key=jsonl_key, Body=jsonl_bytes)
    s3.put_object(Bucket=in_bucket, Key="incoming/orders/ignored.json", Body=b"[]")   # no rule for .json
    after = int(sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
                ["Attributes"]["ApproximateNumberOfMessages"])
    # moto delivers S3 notifications to SQS synchronously with PutObject: the bucket
    # notification terraform configured is what puts these events on the queue.
    check("s3: the bucket notification put one event per .csv/.jsonl object on the input queue (none for .json)",
          lambda: expect(after - before == 2, (before, after)))

    t0 = time.monotonic()
    run_queue("v1", 120)
    v1_seconds = time.monotonic() - t0

    # ---- 6. Ground truth for v1 --------------------------------------------------------------
    generated = weir_send_orders(N_ORDERS, SEED, BAD_SHARE)
    by_order = {}
    s3_msgs = {}
    for mid, s in seen.items():
        if mid in (poison, not_json):
            continue
        body = loads(s["body"])
        if isinstance(body, dict) and "Records" in body:
            s3_msgs[mid] = body
        else:
            by_order[body["order_id"]] = (mid, body, s)
    check(f"input: the {N_ORDERS} messages received are exactly the orders weir send generates (seed {SEED}), each with its channel attribute",
          lambda: expect(sorted(by_order) == [o["order_id"] for o in generated]
                         and all(by_order[o["order_id"]][1] == o
                                 and by_order[o["order_id"]][2]["attrs"] == {"channel": {"StringValue": o["channel"], "DataType": "String"}}
                                 for o in generated), sorted(by_order)[:5]))
    # Keys arrive URL-encoded (moto also encodes `/` as %2F, S3 does not; both decode alike,
    # as the function's decode_key does).
    keys_seen = sorted(unquote_plus(r["s3"]["object"]["key"]) for b in s3_msgs.values() for r in b["Records"])
    check("input: exactly the two S3 events (csv, jsonl) arrived through the queue, from the input bucket",
          lambda: expect(keys_seen == sorted([csv_key, jsonl_key])
                         and all(r["s3"]["bucket"]["name"] == in_bucket and r["eventName"].startswith("ObjectCreated:")
                                 for b in s3_msgs.values() for r in b["Records"]), s3_msgs))

    delivered = {}          # record id -> final record
    letters = {}            # source id -> expected dead letter
    chain_v1 = None         # found from the items, checked against the shas below
    inputs = set()
    for o in generated:
        mid, _, s = by_order[o["order_id"]]
        inputs.add(mid)
        r = chain(s["body"], TAX["v1"])
        if r[0] == "ok":
            delivered[mid] = r[1]
        else:
            letters[mid] = {"stage": r[1], "kind": "plugin-reject", "reason": r[2], "record_id": mid, "body": s["body"], "json": True}
    inputs.add(not_json)
    letters[not_json] = {"stage": "source", "kind": "unreadable", "reason": "message body is not JSON: expected ident at line 1 column 2",
                         "record_id": not_json, "body": "not json {", "json": False}
    inputs.add(poison)
    csv_id = f"s3://{in_bucket}/{csv_key}"
    names = [x.strip() for x in csv_fields(csv_header.lstrip(b"\xef\xbb\xbf"))]
    for line, raw in csv_rows:
        rid = f"{csv_id}#{line}"
        inputs.add(rid)
        try:
            fields = csv_fields(raw)
        except UnicodeDecodeError:
            text = raw.decode("utf-8", "replace")
            bad = next(i for i, f in enumerate(raw.split(b",")) if not _utf8(f))
            letters[rid] = {"stage": "source", "kind": "unreadable", "reason": f"line {line}: field {bad + 1} (`{names[bad]}`) is not UTF-8",
                            "record_id": rid, "body": text, "json": False}
            continue
        if len(fields) != len(names):
            letters[rid] = {"stage": "source", "kind": "unreadable",
                            "reason": f"line {line}: expected {len(names)} fields (as in the header), found {len(fields)}",
                            "record_id": rid, "body": raw.decode(), "json": False}
            continue
        body = json.dumps(dict(zip(names, fields)))
        r = chain(body, TAX["v1"])
        if r[0] == "ok":
            delivered[rid] = r[1]
        else:
            letters[rid] = {"stage": r[1], "kind": "plugin-reject", "reason": r[2], "record_id": rid, "body": body, "json": True}
    jsonl_id = f"s3://{in_bucket}/{jsonl_key}"
    for line, text in enumerate(JSONL_LINES, start=1):
        if not text.strip():
            continue
        rid = f"{jsonl_id}#{line}"
        inputs.add(rid)
        try:
            json.loads(text)
        except ValueError:
            letters[rid] = {"stage": "source", "kind": "unreadable", "reason": f"line {line} is not JSON: expected ident at line 1 column 2",
                            "record_id": rid, "body": text, "json": False}
            continue
        r = chain(text, TAX["v1"])
        if r[0] == "ok":
            delivered[rid] = r[1]
        else:
            letters[rid] = {"stage": r[1], "kind": "plugin-reject", "reason": r[2], "record_id": rid, "body": text, "json": True}
    kinds = collections.Counter((x["stage"], x["kind"]) for x in letters.values())
    print(f"  (ground truth v1: {len(inputs)} inputs -> {len(delivered)} delivered, "
          f"{sum(1 for x in letters.values() if x['kind'] != 'unreadable')} rejected, "
          f"{sum(1 for x in letters.values() if x['kind'] == 'unreadable')} unreadable, 1 poison; {dict(kinds)}; "
          f"{len(invocations)} invocations in {v1_seconds:.1f} s)", flush=True)

    # ---- the ESM's view: who was failed, the poison in the DLQ -------------------------------
    def answers():
        errors = [a for a in invocations if "error" in a]
        failed_ids = collections.Counter(f["itemIdentifier"] for a in invocations if "error" not in a
                                         for f in a.get("batchItemFailures") or [])
        return expect(not errors and set(failed_ids) == {poison} and failed_ids[poison] == max_receives,
                      {"errors": errors[:3], "failed": dict(failed_ids)})

    check(f"function: every answer is a batch response; batchItemFailures named only the poison message, on each of its {max_receives} receives",
          answers)
    check("esm: every other message was deleted after its first receive",
          lambda: expect(all(s["deleted"] and s["receives"] == [1] for mid, s in seen.items() if mid != poison),
                         {m: s["receives"] for m, s in seen.items() if m != poison and not (s["deleted"] and s["receives"] == [1])}))
    dlq = drain(sqs, dlq_url)
    check(f"input DLQ: exactly the poison message, after {max_receives} receives (moto's redrive)",
          lambda: expect([m["MessageId"] for m in dlq] == [poison] and dlq[0]["Body"] == poison_body
                         and seen[poison]["receives"] == list(range(1, max_receives + 1)) and not seen[poison]["deleted"],
                         {"dlq": [(m["MessageId"], m["Body"][:80]) for m in dlq], "receives": seen.get(poison)}))

    # ---- the sinks ----------------------------------------------------------------------------
    items = scan(ddb, tables["orders"])
    v1_chain_items = {i["weir_chain"] for i in items.values()}
    chain_v1 = next(iter(v1_chain_items)) if len(v1_chain_items) == 1 else None

    def chain_of(shas):
        return bool(chain_v1) and re.fullmatch(",".join(f"{s}=[^,@]+@{shas[s][:12]}" for s in ("reshape", "validate", "enrich", "redact")), chain_v1)

    check("orders table: every item names one chain, stage=plugin@sha256[:12] of each published wasm, in order",
          lambda: expect(chain_of(sha), v1_chain_items))
    want_items = {r["pk"]: r for r in delivered.values()}
    check(f"orders table: exactly the {len(want_items)} delivered records, keyed by the enriched pk, fields exact (+ weir_chain)",
          lambda: expect(len(want_items) == len(delivered) and items_equal(items, want_items, chain_v1), diff(items, want_items)))
    aggregates_ok(ddb, tables, delivered)

    letters_got = drain(sqs, rejects_url)
    check(f"rejects queue: exactly {len(letters)} dead letters, each with its body and stage/kind/reason/source_id/record_id/chain attributes",
          lambda: letters_equal(letters_got, letters, chain_v1))

    notes_got = drain(sqs, probe_url)
    want_notes = {r["pk"]: r for r in delivered.values() if r["total"] > 300}
    check(f"sns big-orders: exactly the {len(want_notes)} records with total > 300, with pipeline/currency/channel/weir_chain attributes",
          lambda: notes_equal(notes_got, want_notes, {pk: chain_v1 for pk in want_notes}))
    eur_got = drain(sqs, eur_url)
    want_eur = {pk: r for pk, r in want_notes.items() if filter_admits(orders_attributes(r, chain_v1), BIG_ORDERS_FILTER)}
    check(f"sns big-orders -> terraform's filtered queue: exactly the {len(want_eur)} of those in EUR, each once, raw (the record, its attributes)",
          lambda: filtered_notes_ok(eur_got, want_eur, want_notes, {pk: chain_v1 for pk in want_eur}))
    objects_ok(s3, objects, delivered, {rid: chain_v1 for rid in delivered})

    def conservation():
        markers = marker_ids(ddb, tables["user_stats"])
        rejected = {m["MessageAttributes"]["source_id"]["StringValue"] for m in letters_got
                    if m["MessageAttributes"]["kind"]["StringValue"] != "unreadable"}
        unreadable = {m["MessageAttributes"]["source_id"]["StringValue"] for m in letters_got
                      if m["MessageAttributes"]["kind"]["StringValue"] == "unreadable"}
        dlqd = {m["MessageId"] for m in dlq}
        return exactly_one_of([markers, rejected, unreadable, dlqd], inputs)

    check(f"conservation: each of the {len(inputs)} inputs is exactly one of delivered (aggregate marker), rejected, unreadable, input DLQ",
          conservation)
    check("output bucket: no checkpoint left, nothing offloaded (every dead letter fit in SQS)",
          lambda: expect(not list_keys(s3, w["output_bucket"], "weir-checkpoints/orders/")
                         and not list_keys(s3, w["output_bucket"], "weir-dead-letters/orders/"),
                         list_keys(s3, w["output_bucket"], "weir-")))

    # ---- 7. Hot swap while the same process runs, then rollback ------------------------------
    rebuilt = open(wasm["enrich"], "rb").read()
    tag = b"\x0fweir-test-build" + b"flow-v2"
    rebuilt += b"\x00" + bytes([len(tag)]) + tag          # a custom section: same code, new sha256
    rebuilt_path = os.path.join(work, "enrich_order_v2.wasm")
    open(rebuilt_path, "wb").write(rebuilt)
    v2_toml = os.path.join(work, "weir-v2.toml")
    edited = definition.replace('tax_rate = "0.2"', 'tax_rate = "0.5"')
    assert edited != definition
    open(v2_toml, "w").write(edited)
    out = weir("publish", rebuilt_path, "--stage", "enrich", "--definition", v2_toml, *target, "--sign", SIGNING_KEY_FILE,
               "--note", "flow v2 enrich tax 0.5")
    check("weir publish <rebuilt enrich.wasm> --stage enrich --definition (tax_rate 0.5) -> version 2",
          lambda: expect("version 2" in out, out))
    sha_v2 = dict(sha, enrich=hashlib.sha256(rebuilt).hexdigest())
    phase_orders = {}

    def send_phase(tagname):
        orders = swap_orders(tagname)
        for i in range(0, len(orders), 10):
            sqs.send_message_batch(QueueUrl=queue_url, Entries=[
                {"Id": str(j), "MessageBody": dumps(o),
                 "MessageAttributes": {"channel": {"DataType": "String", "StringValue": o["channel"]}}}
                for j, o in enumerate(orders[i:i + 10])])
        phase_orders[tagname] = orders

    send_phase("v2")
    run_queue("v2", 40)
    send_out = weir("rollback", *target)
    check("weir rollback -> version 3 (version 1's stages and pipeline file)", lambda: expect("version 3" in send_out, send_out))
    send_phase("v3")
    run_queue("v3", 40)

    items = scan(ddb, tables["orders"])
    swap = {}
    for tagname, tax in (("v2", TAX["v2"]), ("v3", TAX["v1"])):
        for o in phase_orders[tagname]:
            mid = next(m for m, s in seen.items() if s["phase"] == tagname and loads(s["body"])["order_id"] == o["order_id"])
            r = chain(seen[mid]["body"], tax)
            assert r[0] == "ok", r
            swap[mid] = (tagname, r[1])
    chains = {pk: items[pk]["weir_chain"] for pk in (r["pk"] for _, r in swap.values()) if pk in items}
    v2_chains = {chains.get(r["pk"]) for t, r in swap.values() if t == "v2"}
    v3_chains = {chains.get(r["pk"]) for t, r in swap.values() if t == "v3"}
    chain_v2 = next(iter(v2_chains)) if len(v2_chains) == 1 else None
    check("hot swap: the v2 orders' items carry a new chain: enrich's sha256 is the rebuilt wasm's, the other stages unchanged",
          lambda: expect(chain_v2 and chain_v2 != chain_v1 and re.fullmatch(
              ",".join(f"{s}=[^,@]+@{sha_v2[s][:12]}" for s in ("reshape", "validate", "enrich", "redact")), chain_v2),
              {"v1": chain_v1, "v2": v2_chains}))
    check("rollback: the next batch runs version 1's chain again (the v3 orders' items)",
          lambda: expect(v3_chains == {chain_v1}, v3_chains))
    want_swap = {r["pk"]: r for _, r in swap.values()}
    chain_by_pk = {r["pk"]: (chain_v2 if t == "v2" else chain_v1) for t, r in swap.values()}
    check(f"hot swap: the {len(want_swap)} swap-phase items exact, totals with tax 0.5 under v2 and 0.2 after the rollback",
          lambda: expect(all(items_equal({pk: items.get(pk)}, {pk: r}, chain_by_pk[pk]) for pk, r in want_swap.items()),
                         diff({pk: items.get(pk) for pk in want_swap}, want_swap)))
    check("orders table: nothing else was written (v1 items unchanged, put-if-absent)",
          lambda: expect(set(items) == set(want_items) | set(want_swap)
                         and items_equal({k: items[k] for k in want_items}, want_items, chain_v1), len(items)))
    all_delivered = dict(delivered, **{mid: r for mid, (_, r) in swap.items()})
    aggregates_ok(ddb, tables, all_delivered, label=" (after the swap phases)")
    notes_got = drain(sqs, probe_url)
    want_notes = {r["pk"]: r for _, r in swap.values() if r["total"] > 300}
    check(f"sns big-orders: exactly the {len(want_notes)} swap-phase records over 300, weir_chain = the chain that ran",
          lambda: notes_equal(notes_got, want_notes, chain_by_pk))
    eur_got = drain(sqs, eur_url)
    want_eur = {pk: r for pk, r in want_notes.items() if filter_admits(orders_attributes(r, chain_by_pk[pk]), BIG_ORDERS_FILTER)}
    check(f"sns big-orders -> terraform's filtered queue: exactly the {len(want_eur)} swap-phase ones in EUR, each once, raw",
          lambda: filtered_notes_ok(eur_got, want_eur, want_notes, chain_by_pk))
    objects_ok(s3, objects, all_delivered,
               {rid: (chain_v2 if rid in swap and swap[rid][0] == "v2" else chain_v1) for rid in all_delivered},
               label=" (after the swap phases)")
    check("rejects queue and input DLQ: nothing new in the swap phases",
          lambda: expect(not drain(sqs, rejects_url) and not drain(sqs, dlq_url), "not empty"))
    status = weir("status", *target)
    check("weir status: live version 3, history 3 (rollback), 2 (flow v2), 1 (flow v1)",
          lambda: expect(re.search(r"live version 3\b", status) and re.search(r"^\s+3\s.*rollback", status, re.M)
                         and re.search(r"^\s+2\s.*flow v2", status, re.M) and re.search(r"^\s+1\s.*flow v1", status, re.M), status))
    check("function log: JSON lines, EMF metrics, no refused version", fn.log_ok)
    print(f"  ({len(invocations)} invocations in all)")



def run_events(ctx):
    """The events pipeline through its own function (a second bootstrap): its pipeline file is
    the one whose plan terraform deployed, published signed; JSON array objects delivered
    S3 -> SNS -> its queue; every effect checked against ground truth."""
    w, endpoint, s3, sqs, sns, lam, ddb = ctx.w, ctx.endpoint, ctx.s3, ctx.sqs, ctx.sns, ctx.lam, ctx.ddb
    # ---- The pipeline file: its plan is the one terraform deployed --------------------------
    r = subprocess.run([WEIR, "plan", EVENTS_TOML], capture_output=True, text=True, env=CLI_ENV, timeout=max(min(30, left()), 5))
    deployed_plan = open(EVENTS_PLAN).read()
    check("events: weir plan terraform/envs/local/events.weir.toml prints exactly envs/local/events.plan.json (the plan terraform deployed)",
          lambda: expect(r.returncode == 0 and r.stdout == deployed_plan, r.stdout + r.stderr))
    try:
        model = events_model()
    except NotImplementedError as e:
        raise Abort(str(e)) from None
    source = json.loads(deployed_plan)["source"]

    # ---- The function and its event source, as deployed --------------------------------------
    fn = Deployed(ctx, "events", "events: deployed: ")
    p, env = fn.p, fn.env
    fn.check_deployed()
    ctx.restore.enter_context(paused_event_sources(lam, [fn.esm["UUID"]]))
    bindings = json.loads(s3.get_object(Bucket=env["WEIR_PLUGINS_BUCKET"], Key=env["WEIR_BINDINGS_KEY"])["Body"].read())
    table = bindings["tables"][model["table"]]["name"]
    topic_arn = bindings["topics"][model["topic"]]["arn"]
    rejects_url = bindings["dead_letter"]["queue_url"]
    check("events: deployed: the bindings document names the table, topic and rejects queue terraform output, and no objects sink",
          lambda: expect(table == p["tables"][model["table"]]["name"] and topic_arn == p["topics"][model["topic"]]["arn"]
                         and rejects_url == p["rejects_queue_url"] and rejects_url.endswith(f"-{model['dead_letter']}")
                         and bindings["objects"] == {}, bindings))
    subs = sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
    check(f"events: deployed: terraform subscribes nothing to {model['topic']} (so no filter policy to copy onto the probe)",
          lambda: expect(subs == [], subs))
    probe_url = sqs.create_queue(QueueName="flowprobe-file-events")["QueueUrl"]
    ctx.restore.callback(sqs.delete_queue, QueueUrl=probe_url)
    probe_arn = sqs.get_queue_attributes(QueueUrl=probe_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sub = sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=probe_arn, ReturnSubscriptionArn=True)["SubscriptionArn"]
    ctx.restore.callback(sns.unsubscribe, SubscriptionArn=sub)

    # ---- Publish events.weir.toml (its plugins pointed at the built .wasm), signed -----------
    # ctx.wasm: the private copies the orders part published (the same reshape and redact).
    definition = with_built_plugins(open(EVENTS_TOML).read(), ctx.wasm, {"csv-reshape": "reshape", "pii-redact": "redact"})
    events_toml = os.path.join(ctx.work, "events.weir.toml")
    open(events_toml, "w").write(definition)
    target = ["--pipeline", "events", "--bucket", env["WEIR_PLUGINS_BUCKET"], "--endpoint-url", endpoint, "--region", REGION]
    out = weir("publish", "--definition", events_toml, *target, "--sign", SIGNING_KEY_FILE, "--note", "flow events v1")
    check("events: weir publish --definition events.weir.toml --sign (every stage) -> version 1, signed",
          lambda: expect("version 1" in out and "(signed)" in out, out))
    sha = {s: hashlib.sha256(open(ctx.wasm[s], "rb").read()).hexdigest() for s in ("reshape", "redact")}
    fn.start()

    # ---- Inputs: two .json objects (one broken part way), one with a suffix not in the filter --
    in_bucket = w["input_bucket"]
    array_key, broken_key = f"{source['prefix']}flow-events.json", f"{source['prefix']}flow-events-broken.json"
    ignored_key = f"{source['prefix']}flow-events.jsonl"
    assert source["suffixes"] == [".json"], source

    def queued():
        return int(sqs.get_queue_attributes(QueueUrl=fn.queue_url, AttributeNames=["ApproximateNumberOfMessages"])
                   ["Attributes"]["ApproximateNumberOfMessages"])

    before = queued()
    for key, text in ((array_key, EVENTS_ARRAY), (broken_key, EVENTS_BROKEN), (ignored_key, EVENTS_IGNORED)):
        s3.put_object(Bucket=in_bucket, Key=key, Body=text.encode())
    after = queued()
    # moto delivers synchronously with PutObject: S3 -> the input-events topic -> the queue.
    check("events: s3 -> sns -> queue: the notification put one event per .json object on the events queue (none for .jsonl)",
          lambda: expect(after - before == 2, (before, after)))
    t0 = time.monotonic()
    fn.run_queue("events", 60)
    seconds = time.monotonic() - t0

    # ---- Ground truth ---------------------------------------------------------------------------
    events_seen, envelopes = [], []
    for mid, s in fn.seen.items():
        body = json.loads(s["body"])
        if "Records" not in body:
            envelopes.append(body)      # an SNS envelope: not raw delivery
        for rec in body.get("Records", []):
            o = rec["s3"]["object"]
            events_seen.append((rec["s3"]["bucket"]["name"], unquote_plus(o["key"]), o.get("versionId"), rec["eventName"]))
    check("events: input: exactly the two .json objects' S3 events arrived, raw (the S3 event itself, not an SNS envelope), from the input bucket",
          lambda: expect(not envelopes and sorted(k for _, k, _, _ in events_seen) == sorted([array_key, broken_key])
                         and all(b == in_bucket and e.startswith("ObjectCreated:") for b, _, _, e in events_seen),
                         {"events": events_seen, "envelopes": envelopes[:2]}))
    # A record's id is its object's: s3://bucket/key, with ?versionId=... when the event names one.
    ids = {k: f"s3://{b}/{k}" + (f"?versionId={v}" if v and v != "null" else "") for b, k, v, _ in events_seen}
    delivered, letters, inputs = {}, {}, set()
    for key, text in ((array_key, EVENTS_ARRAY), (broken_key, EVENTS_BROKEN)):
        for n, raw in enumerate(array_elements(text), start=1):
            rid = f"{ids.get(key, key)}#{n}"
            inputs.add(rid)
            r = events_chain(raw, model)
            if r[0] == "ok":
                delivered[rid] = r[1]
            else:
                letters[rid] = {"stage": r[1], "kind": "plugin-reject", "reason": r[2], "record_id": rid, "body": raw, "json": True}
    unreadable = f"{ids.get(broken_key, broken_key)}#?"
    inputs.add(unreadable)
    # Its body is its id: the reader had no text of it to keep.
    letters[unreadable] = {"stage": "source", "kind": "unreadable", "reason": events_array_error(EVENTS_BROKEN),
                           "record_id": unreadable, "body": unreadable, "json": False}
    print(f"  (ground truth events: {len(inputs)} inputs -> {len(delivered)} delivered, "
          f"{sum(1 for x in letters.values() if x['kind'] != 'unreadable')} rejected, "
          f"{sum(1 for x in letters.values() if x['kind'] == 'unreadable')} unreadable; "
          f"{len(fn.invocations)} invocations in {seconds:.1f} s)", flush=True)

    # ---- The event source mapping's view --------------------------------------------------------
    check("events: function: every answer is a batch response with no batchItemFailures",
          lambda: expect(fn.invocations and all("error" not in a and not a.get("batchItemFailures") for a in fn.invocations),
                         fn.invocations))
    check("events: esm: every message was deleted after its first receive",
          lambda: expect(all(s["deleted"] and s["receives"] == [1] for s in fn.seen.values()),
                         {m: s["receives"] for m, s in fn.seen.items()}))
    check("events: input DLQ: empty", lambda: expect(not drain(sqs, fn.dlq_url), "not empty"))

    # ---- The sinks ------------------------------------------------------------------------------
    key = model["key"]
    items = scan(ddb, table)
    chains = {i.get("weir_chain") for i in items.values()}
    chain_version = next(iter(chains)) if len(chains) == 1 else None
    check("events table: every item names one chain, stage=plugin@sha256[:12] of each published wasm, in order",
          lambda: expect(chain_version and re.fullmatch(
              ",".join(f"{s}=[^,@]+@{sha[s][:12]}" for s in ("reshape", "redact")), chain_version), chains))
    want_items = {r[key]: r for r in delivered.values()}
    check(f"events table: exactly the {len(want_items)} delivered records (after pii-redact), keyed by {key}, fields exact (+ weir_chain)",
          lambda: expect(len(want_items) == len(delivered) and items_equal(items, want_items, chain_version), diff(items, want_items)))
    letters_got = drain(sqs, rejects_url)
    check(f"events rejects queue: exactly {len(letters)} dead letters (csv-reshape's refusals, the broken array), each with its body, stage, kind and reason",
          lambda: letters_equal(letters_got, letters, chain_version))
    notes_got = drain(sqs, probe_url)
    want_notes = {r[key]: r for r in delivered.values() if events_notified(r, model)}
    field, value = model["when"]

    def notes_ok():
        if not 0 < len(want_notes) < len(delivered):
            # The inputs would no longer test the predicate.
            return {"notified": len(want_notes), "delivered": len(delivered)}
        return notes_equal(notes_got, want_notes, {pk: chain_version for pk in want_notes},
                           attributes=lambda r, c: events_attributes(r, model, c), key=key)

    check(f"sns {model['topic']}: exactly the {len(want_notes)} records with {field} != {value}, each once, "
          f"with pipeline/{'/'.join(model['attributes'])}/weir_chain attributes (numbers as Number)", notes_ok)

    def conservation():
        found = {rid for rid, r in delivered.items() if items.get(r[key]) == dict(r, weir_chain=chain_version)}
        kinds = collections.defaultdict(set)
        for m in letters_got:
            a = m["MessageAttributes"]
            kinds[a["kind"]["StringValue"] == "unreadable"].add(a["source_id"]["StringValue"])
        return exactly_one_of([found, kinds[False], kinds[True]], inputs, show=None)

    check(f"events conservation: each of the {len(inputs)} input records is exactly one of delivered (its item), rejected, unreadable",
          conservation)
    check("events output bucket: no checkpoint left, nothing offloaded",
          lambda: expect(not list_keys(s3, w["output_bucket"], "weir-checkpoints/events/")
                         and not list_keys(s3, w["output_bucket"], "weir-dead-letters/events/"),
                         list_keys(s3, w["output_bucket"], "weir-")))
    check("events function log: JSON lines, EMF metrics, no refused version", fn.log_ok)


def _utf8(b):
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _is_json(x):
    try:
        json.loads(x)
        return True
    except ValueError:
        return False


def drain(sqs, url):
    """Every message a queue holds (received once, with attributes, then deleted)."""
    out, empty = [], 0
    while empty < 2:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"],
                                  MessageAttributeNames=["All"], WaitTimeSeconds=0, VisibilityTimeout=600).get("Messages", [])
        if not got:
            empty += 1
            continue
        out += got
        sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])
    return out


def scan(ddb, table):
    """Every item of a table, deserialized, by its hash key."""
    from boto3.dynamodb.types import TypeDeserializer
    de = TypeDeserializer()
    key = ddb.describe_table(TableName=table)["Table"]["KeySchema"][0]["AttributeName"]
    out, start = {}, None
    while True:
        kw = {"TableName": table, **({"ExclusiveStartKey": start} if start else {})}
        r = ddb.scan(**kw)
        for it in r["Items"]:
            v = {k: de.deserialize(x) for k, x in it.items()}
            out[v[key]] = v
        start = r.get("LastEvaluatedKey")
        if not start:
            return out


def marker_ids(ddb, table):
    return {k.removeprefix("weir-seen#") for k in scan(ddb, table) if isinstance(k, str) and k.startswith("weir-seen#")}


def items_equal(got, want, chain_version):
    for pk, r in want.items():
        g = got.get(pk)
        if g is None or g != dict(r, weir_chain=chain_version):
            return False
    return set(got) == set(want)


def diff(got, want):
    out = {"missing": sorted(set(want) - set(got))[:5], "extra": sorted(set(got) - set(want))[:5]}
    for pk in sorted(set(want) & set(got)):
        if {k: v for k, v in (got[pk] or {}).items() if k != "weir_chain"} != want[pk]:
            out.setdefault("differ", []).append({"pk": pk, "got": got[pk], "want": want[pk]})
            if len(out["differ"]) > 2:
                break
    return out


def aggregates_ok(ddb, tables, delivered, label=""):
    users, currencies = collections.defaultdict(lambda: [0, Decimal(0)]), collections.defaultdict(lambda: [0, Decimal(0)])
    for r in delivered.values():
        users[r["user_id"]][0] += 1
        users[r["user_id"]][1] += r["amount_cents"]
        currencies[r["currency"]][0] += 1
        currencies[r["currency"]][1] += r["total"]

    def table(name, key, want, counters):
        got = scan(ddb, tables[name])
        groups = {k: v for k, v in got.items() if not str(k).startswith("weir-seen#")}
        markers = {k.removeprefix("weir-seen#"): v for k, v in got.items() if str(k).startswith("weir-seen#")}
        want_groups = {g: {key: g, counters[0]: Decimal(n), counters[1]: s} for g, (n, s) in want.items()}
        marker_ok = set(markers) == set(delivered) and all(set(m) == {key, "expires_at"} for m in markers.values())
        return expect(groups == want_groups and marker_ok,
                      {"differ": {g: (groups.get(g), want_groups.get(g)) for g in set(groups) | set(want_groups)
                                  if groups.get(g) != want_groups.get(g)},
                       "markers missing": sorted(set(delivered) - set(markers))[:5], "markers extra": sorted(set(markers) - set(delivered))[:5]})

    check(f"user_stats: per user, orders = count and spend_cents = sum of amount_cents over distinct delivered records; one marker per record{label}",
          lambda: table("user_stats", "user_id", users, ("orders", "spend_cents")))
    check(f"currency_stats: per currency, orders and total = exact sum of totals; one marker per record{label}",
          lambda: table("currency_stats", "currency", currencies, ("orders", "total")))


def letters_equal(got, want, chain_version):
    problems = []
    by_source = collections.defaultdict(list)
    for m in got:
        a = {k: v["StringValue"] for k, v in m.get("MessageAttributes", {}).items()}
        by_source[a.get("source_id")].append((a, m["Body"]))
    for sid, x in want.items():
        entries = by_source.get(sid, [])
        if len(entries) != 1:
            problems.append((sid, f"{len(entries)} letters"))
            continue
        a, body = entries[0]
        want_attrs = {"stage": x["stage"], "kind": x["kind"], "reason": x["reason"], "source_id": sid, "record_id": x["record_id"]}
        if x["kind"] != "unreadable":
            want_attrs["chain"] = chain_version
        body_ok = loads(body) == loads(x["body"]) if x["json"] else body == x["body"]
        if a != want_attrs or not body_ok:
            problems.append({"source": sid, "got": (a, body), "want": (want_attrs, x["body"])})
    extra = sorted(set(by_source) - set(want))
    return expect(not problems and not extra and len(got) == len(want), {"problems": problems[:4], "extra": extra[:5], "count": len(got)})


def orders_attributes(r, chain_version):
    """The big-orders notification's attributes, (SNS type, value): examples/orders/weir.toml
    names currency and channel (strings); weir adds pipeline and weir_chain."""
    return {"pipeline": ("String", "orders"), "currency": ("String", r["currency"]), "channel": ("String", r["channel"]),
            "weir_chain": ("String", chain_version)}


def filter_admits(attributes, policy):
    """An SNS filter policy of exact string values on message attributes, as envs/local's."""
    return all(name in attributes and attributes[name][1] in allowed for name, allowed in policy.items())


def filtered_notes_ok(got, want, unfiltered, chains):
    """What the filtered subscription received (raw delivery) is exactly `want`; and the
    inputs do test the filter (some of the unfiltered notifications pass it, not all)."""
    if not 0 < len(want) < len(unfiltered):
        return {"filtered": len(want), "unfiltered": len(unfiltered)}
    return notes_equal(got, want, chains, raw=True)


def notes_equal(got, want, chains, attributes=orders_attributes, raw=False, key="pk"):
    """Every notification exactly once, its record and attributes exact: `want` by `key`,
    `attributes(record, chain)` the (type, value) of each. `raw`: SQS messages of a raw
    delivery subscription (the record, its attributes as SQS's), else SNS envelopes."""
    seen = {}
    problems = []
    for m in got:
        if raw:
            rec = loads(m["Body"])
            attrs = {k: (v["DataType"], v.get("StringValue")) for k, v in m.get("MessageAttributes", {}).items()}
        else:
            env = json.loads(m["Body"])
            rec = loads(env["Message"])
            attrs = {k: (v["Type"], v["Value"]) for k, v in env.get("MessageAttributes", {}).items()}
        if rec.get(key) in seen:
            problems.append(("duplicate", rec.get(key)))
        seen[rec.get(key)] = (rec, attrs)
    for pk, r in want.items():
        if pk not in seen:
            problems.append(("missing", pk))
            continue
        rec, attrs = seen[pk]
        want_attrs = attributes(r, chains[pk])
        if rec != r or attrs != want_attrs:
            problems.append({"pk": pk, "got": (rec, attrs), "want": (r, want_attrs)})
    extra = sorted(set(seen) - set(want))
    return expect(not problems and not extra, {"problems": problems[:4], "extra": extra[:5], "count": len(got)})


def list_keys(s3, bucket, prefix):
    keys, token = [], None
    while True:
        r = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, **({"ContinuationToken": token} if token else {}))
        keys += [o["Key"] for o in r.get("Contents", [])]
        token = r.get("NextContinuationToken")
        if not token:
            return keys


def objects_ok(s3, objects, delivered, chains, label=""):
    def run():
        bucket, prefix = objects["bucket"], objects["prefix"]
        lines = collections.Counter()
        problems = []
        for key in list_keys(s3, bucket, prefix):
            m = re.fullmatch(re.escape(prefix) + r"dt=(\d{4}-\d{2}-\d{2})/part-[0-9a-f]{16}\.jsonl", key)
            if not m:
                problems.append(("key", key))
                continue
            obj = s3.get_object(Bucket=bucket, Key=key)
            text = obj["Body"].read().decode()
            meta_chain = obj.get("Metadata", {}).get("weir-chain")
            for line in text.splitlines():
                rec = loads(line)
                if rec.get("date") != m.group(1):
                    problems.append(("partition", key, rec.get("pk")))
                lines[(rec.get("pk"), meta_chain)] += 1
                if rec != delivered_by_pk.get(rec.get("pk")):
                    problems.append({"key": key, "got": rec, "want": delivered_by_pk.get(rec.get("pk"))})
        want = collections.Counter((r["pk"], chains[rid]) for rid, r in delivered.items())
        return expect(not problems and lines == want,
                      {"problems": problems[:4], "missing": list((want - lines).items())[:5], "extra": list((lines - want).items())[:5]})

    delivered_by_pk = {r["pk"]: r for r in delivered.values()}
    check(f"objects s3://{objects['bucket']}/{objects['prefix']}dt=<date>/part-*.jsonl: every delivered record exactly once, exact, "
          f"in its date's partition, weir-chain metadata{label}", run)


if __name__ == "__main__":
    main()
    sys.exit(summary("flow"))
