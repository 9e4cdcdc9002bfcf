"""The deployed flow, end to end, in the shape terraform deploys it: after `terraform apply` of
terraform/envs/local against moto (and moto_verify.py), runs the real `bootstrap` binary with
the `orders` function's environment exactly as terraform configured it, under
`cargo lambda watch --only-lambda-apis` (the Lambda runtime API), and plays the function's SQS
event source mapping against the input queue terraform created. Inputs: `weir send` orders,
a CSV and a JSON Lines object uploaded under the pipeline's S3 input filter (delivered to the
queue by the bucket notification terraform made), a message that is not JSON and a poison
message. Every effect is checked exactly against ground truth computed here, in Python, from
the inputs (the example plugins' rules, re-implemented from their Rust source): the tables,
the aggregates, the SNS notifications, the output objects, the dead letters, the input DLQ,
and that every input is exactly one of delivered, rejected, unreadable or dead-lettered. Then
a stage is hot-swapped while the same process runs, and rolled back.

Usage: deployed_flow.py ENDPOINT OUTPUTS_JSON

ENDPOINT is the moto server; OUTPUTS_JSON is `terraform output -json` of envs/local. The
binaries come from WEIR_BIN, WEIR_BOOTSTRAP and CARGO_LAMBDA (terraform/tests/run.sh sets them
and reports SKIPPED when one is missing). Prints one line per check and, last,
`flow: N passed, M failed`; exits 1 on failure. Leaves nothing running; restores what it
changed in moto (bucket policies, the event source mapping's state) for the destroy.
"""

import base64
import collections
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
from decimal import ROUND_HALF_EVEN, Decimal
from urllib.parse import unquote_plus

import boto3
from botocore.config import Config

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
TRIPLE_DIR = os.path.join(REPO, "target", "x86_64-unknown-linux-gnu", "debug")
WEIR = os.environ.get("WEIR_BIN") or os.path.join(TRIPLE_DIR, "weir")
BOOTSTRAP = os.environ.get("WEIR_BOOTSTRAP") or os.path.join(TRIPLE_DIR, "bootstrap")
CARGO_LAMBDA = os.environ.get("CARGO_LAMBDA") or os.path.join(REPO, ".venv-cargo-lambda", "bin", "cargo-lambda")
# The built plugins (wasm32-wasip2): `weir publish` of a crate directory would run cargo.
WASM_DIR = os.environ.get("WEIR_WASM_DIR") or os.path.join(REPO, "plugins", "target", "wasm32-wasip2", "release")
EXAMPLE = os.path.join(REPO, "examples", "orders")
# Made by terraform/tests/run.sh with `weir keygen`; its public key is the function's WEIR_SIGNING_KEYS.
SIGNING_KEY_FILE = os.environ.get("WEIR_SIGNING_KEY_FILE", "")
REGION = "us-east-1"
N_ORDERS = 300          # weir send; a few hundred keeps the run well under 3 minutes on moto
SEED = 42
BAD_SHARE = 0.05
SWAP_ORDERS = 8         # per hot-swap phase
TAX = {"v1": Decimal("0.2"), "v2": Decimal("0.5")}
OVERALL_TIMEOUT = 170   # seconds; every wait below is bounded by it too
STARTED = time.monotonic()

PASSED = 0
FAILED = 0


def check(name, fn):
    """Runs one check; an exception or a result other than None/True is a failure."""
    global PASSED, FAILED
    try:
        result = fn()
        ok = result is None or result is True
        detail = "" if ok else f": {short(result)}"
    except Exception as exc:  # noqa: BLE001 - a broken check is a failed check
        ok = False
        detail = f": {type(exc).__name__}: {short(exc)}"
    if ok:
        PASSED += 1
        print(f"  ok   {name}", flush=True)
    else:
        FAILED += 1
        print(f"  FAIL {name}{detail}", flush=True)
    return ok


def short(x, n=1500):
    s = repr(x) if not isinstance(x, str) else x
    return s if len(s) <= n else s[:n] + f"... ({len(s)} chars)"


def expect(cond, got):
    return True if cond else got


def left():
    return OVERALL_TIMEOUT - (time.monotonic() - STARTED)


class Abort(Exception):
    """The flow cannot go on (a step everything after it depends on failed)."""


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


def reshape(row):
    """csv-reshape with the example's config: cast.amount = float, drop = note_internal."""
    if not isinstance(row, dict):
        raise Reject(f"body must be a JSON object, got {kind_of(row)}")
    out = {}
    for column, value in row.items():
        if column == "note_internal":
            continue
        if isinstance(value, str) and value == "":
            continue
        if isinstance(value, str) and column == "amount":
            s = value.strip()
            fail = Reject(f"column `amount`: cannot cast {rust_debug(value)} to float")
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
            value = Decimal(text)
        elif column == "amount" and not isinstance(value, Decimal):
            raise Reject(f"column `amount`: expected a string to cast to float, got {kind_of(value)}")
        out[column] = value
    return out


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


def redact(o):
    """pii-redact with skip_fields = order_id,user_id,pk."""
    return {k: (v if k in ("order_id", "user_id", "pk") else redact_value(v)) for k, v in o.items()}


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

def main():
    endpoint, outputs_path = sys.argv[1:3]
    with open(outputs_path) as f:
        w = json.load(f)["weir"]["value"]
    p = w["pipelines"]["orders"]
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
    s3, sqs, sns, lam, ddb = c["s3"], c["sqs"], c["sns"], c["lambda"], c["dynamodb"]

    work = tempfile.mkdtemp(prefix="weir-flow.")
    children = []
    restore = []          # (description, fn) run at exit, last first
    state = {}            # "cache_existed": whether WEIR_CACHE_DIR was there before the function ran

    def stop_children(*_):
        for proc in children:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in children:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    logs = {"function": os.path.join(work, "function.log"), "watch": os.path.join(work, "watch.log")}

    def tail(name, n=60):
        try:
            lines = open(logs[name], errors="replace").read().splitlines()
        except OSError:
            return f"({name} log missing)"
        return "\n".join(f"      | {x}" for x in lines[-n:])

    try:
        run_flow(w, p, endpoint, s3, sqs, sns, lam, ddb, work, children, restore, logs, tail, state)
    except Abort as a:
        global FAILED
        FAILED += 1
        print(f"  FAIL flow stopped: {a}")
        print("  function log (last lines):\n" + tail("function"))
        print("  cargo lambda watch log (last lines):\n" + tail("watch", 20))
    finally:
        stop_children()
        for what, fn in reversed(restore):
            try:
                fn()
            except Exception as exc:  # noqa: BLE001
                print(f"  warning: could not restore {what}: {exc}")
        # The function runs with the deployed WEIR_CACHE_DIR (/tmp/weir-cache): removed after
        # the run unless it was there before.
        cache = state.get("cache_dir")
        if cache and state.get("cache_existed") is False and os.path.isdir(cache):
            shutil.rmtree(cache, ignore_errors=True)
        if FAILED:
            print("  function log (last lines):\n" + tail("function", 40))
        shutil.rmtree(work, ignore_errors=True)
    print(f"  (flow took {time.monotonic() - STARTED:.0f} s)")


def run_flow(w, p, endpoint, s3, sqs, sns, lam, ddb, work, children, restore, logs, tail, state):
    # ---- 1. The function and its event source, as deployed -------------------------------
    name = p["function_name"]
    conf = lam.get_function_configuration(FunctionName=name)
    env = conf["Environment"]["Variables"]
    contract = sorted(v["name"] for v in json.load(open(os.path.join(REPO, "lambda", "env-vars.json")))["variables"])
    check(f"deployed: {name}'s environment has exactly the names of lambda/env-vars.json",
          lambda: expect(sorted(env) == contract, sorted(env)))
    public_key = os.environ.get("WEIR_SIGNING_PUBLIC_KEY", "")
    check("deployed: WEIR_REFRESH_SECONDS=0 and WEIR_SIGNING_KEYS = the key run.sh made for this run",
          lambda: expect(env.get("WEIR_REFRESH_SECONDS") == "0" and public_key
                         and env.get("WEIR_SIGNING_KEYS") == public_key, env))
    if not SIGNING_KEY_FILE or not os.path.isfile(SIGNING_KEY_FILE):
        raise Abort("no WEIR_SIGNING_KEY_FILE: terraform/tests/run.sh makes one with `weir keygen` before the apply")
    # By ARN: moto 5.2.5 matches FunctionName against the mapping's function ARN only.
    maps = lam.list_event_source_mappings(FunctionName=conf["FunctionArn"])["EventSourceMappings"]
    if len(maps) != 1:
        raise Abort(f"expected one event source mapping for {name}, got {maps}")
    esm = maps[0]
    queue_arn = esm["EventSourceArn"]
    batch_size = esm["BatchSize"]
    window = esm.get("MaximumBatchingWindowInSeconds", 0)
    check(f"deployed: one SQS event source = the pipeline's input queue, batch {batch_size}, window {window} s, ReportBatchItemFailures",
          lambda: expect(queue_arn == p["input_queue_arn"] and esm.get("FunctionResponseTypes") == ["ReportBatchItemFailures"]
                         and esm.get("State") in ("Enabled", "Enabling", None), esm))
    queue_url = sqs.get_queue_url(QueueName=queue_arn.split(":")[-1])["QueueUrl"]
    qattrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(qattrs["RedrivePolicy"])
    max_receives = int(redrive["maxReceiveCount"])
    dlq_url = sqs.get_queue_url(QueueName=redrive["deadLetterTargetArn"].split(":")[-1])["QueueUrl"]
    check(f"deployed: input queue redrives to {redrive['deadLetterTargetArn'].split(':')[-1]} after {max_receives} receives",
          lambda: expect(redrive["deadLetterTargetArn"] == p["input_dlq_arn"], redrive))

    # moto's SQS runs an enabled event source mapping itself on every SendMessage (it would
    # try to run the placeholder zip in Docker and consume the messages): this test is the
    # event source mapping, so moto's is disabled while it runs and re-enabled after.
    lam.update_event_source_mapping(UUID=esm["UUID"], Enabled=False)
    restore.append(("the event source mapping", lambda: lam.update_event_source_mapping(UUID=esm["UUID"], Enabled=True)))

    # moto 5.2.5 does not evaluate `aws:SecureTransport`: it denies every object request to a
    # bucket carrying the TLS-only policy (modules/bucket_policies), plain HTTP or not, and moto
    # only speaks plain HTTP here. moto_verify.py has just proven each bucket has the policy;
    # the function and `weir publish` need object access, so the policies are lifted for the
    # flow and put back exactly as they were before destroy. Production keeps them.
    buckets = {"plugins": w["plugins_bucket"], "input": w["input_bucket"], "output": w["output_bucket"]}
    for b in buckets.values():
        policy = s3.get_bucket_policy(Bucket=b)["Policy"]
        if "aws:SecureTransport" not in policy:
            raise Abort(f"{b} has no TLS-only policy: {policy}")
        s3.delete_bucket_policy(Bucket=b)
        restore.append((f"the policy of {b}", lambda b=b, policy=policy: s3.put_bucket_policy(Bucket=b, Policy=policy)))

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

    # ---- SNS probe: an SQS queue subscribed to big-orders, before anything is sent --------
    subs = sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
    check("deployed: terraform subscribes nothing to big-orders (so no filter policy to copy onto the probe)",
          lambda: expect(subs == [], subs))
    probe_url = sqs.create_queue(QueueName="flowprobe-big-orders")["QueueUrl"]
    restore.append(("the probe queue", lambda: sqs.delete_queue(QueueUrl=probe_url)))
    probe_arn = sqs.get_queue_attributes(QueueUrl=probe_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sub = sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=probe_arn, ReturnSubscriptionArn=True)["SubscriptionArn"]
    restore.append(("the probe subscription", lambda: sns.unsubscribe(SubscriptionArn=sub)))

    # ---- 3. Publish the example pipeline (v1) ----------------------------------------------
    wasm = {}
    for stage, file in (("reshape", "csv_reshape"), ("validate", "validate_order"), ("enrich", "enrich_order"), ("redact", "pii_redact")):
        dst = os.path.join(work, f"{file}.wasm")
        shutil.copyfile(os.path.join(WASM_DIR, f"{file}.wasm"), dst)   # a private copy: stable while we run
        wasm[stage] = dst
    example = open(os.path.join(EXAMPLE, "weir.toml")).read()
    # The example's file with each `plugin = "../../plugins/<crate>"` pointing at the built
    # .wasm (a crate directory would make `weir publish` run cargo); configs and sinks as they are.
    crates = {"csv-reshape": "reshape", "validate-order": "validate", "enrich-order": "enrich", "pii-redact": "redact"}
    definition = re.sub(r'plugin = "\.\./\.\./plugins/([a-z-]+)"', lambda m: f'plugin = "{wasm[crates[m.group(1)]]}"', example)
    assert definition.count(".wasm\"") == 4, definition
    v1_toml = os.path.join(work, "weir.toml")
    open(v1_toml, "w").write(definition)
    cli_env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION=REGION,
                   AWS_DEFAULT_REGION=REGION, AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")

    def weir(*args, timeout=60):
        r = subprocess.run([WEIR, *args], capture_output=True, text=True, env=cli_env, timeout=min(timeout, max(left(), 5)))
        if r.returncode != 0:
            raise Abort(f"weir {' '.join(args)} exited {r.returncode}: {r.stdout}{r.stderr}")
        return r.stdout

    target = ["--pipeline", "orders", "--bucket", plugins_bucket, "--endpoint-url", endpoint, "--region", REGION]
    out = weir("publish", "--definition", v1_toml, *target, "--sign", SIGNING_KEY_FILE, "--note", "flow v1")
    check("weir publish --definition --sign (every stage) -> version 1, signed",
          lambda: expect("version 1" in out and "(signed)" in out, out))
    sha = {s: hashlib.sha256(open(f, "rb").read()).hexdigest() for s, f in wasm.items()}

    # ---- 2. The real bootstrap under cargo lambda watch, with the deployed environment ------
    port = free_port()
    watch = subprocess.Popen(
        [CARGO_LAMBDA, "lambda", "watch", "--only-lambda-apis", "--timeout", str(conf["Timeout"] + 30),
         "-A", "127.0.0.1", "-P", str(port)],
        # cargo lambda reads the cargo metadata of the directory it runs in (no build with
        # --only-lambda-apis): the function's own crate, as lambda/tests/e2e.rs runs it.
        cwd=os.path.join(REPO, "lambda"), stdout=open(logs["watch"], "w"), stderr=subprocess.STDOUT,
        start_new_session=True)
    children.append(watch)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if watch.poll() is not None or time.monotonic() > deadline:
                raise Abort(f"cargo lambda watch did not listen on {port}:\n{tail('watch')}") from None
            time.sleep(0.2)
    state["cache_dir"] = env.get("WEIR_CACHE_DIR", "/tmp/weir-cache")
    state["cache_existed"] = os.path.isdir(state["cache_dir"])
    # What Lambda gives a provided.al2023 function: its configuration's environment, exactly,
    # plus the variables the service sets (runtime API, name, memory, version, log group,
    # region, credentials: here fake ones and the emulator's endpoint).
    fn_env = dict(env)
    fn_env.update({
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_LAMBDA_RUNTIME_API": f"http://127.0.0.1:{port}/.rt",
        "AWS_LAMBDA_FUNCTION_NAME": conf["FunctionName"],
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(conf["MemorySize"]),
        "AWS_LAMBDA_FUNCTION_VERSION": conf.get("Version", "$LATEST"),
        "AWS_LAMBDA_LOG_GROUP_NAME": (conf.get("LoggingConfig") or {}).get("LogGroup", p["log_group_name"]),
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]weirflow",
        "AWS_EXECUTION_ENV": "AWS_Lambda_" + conf["Runtime"],
        "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "fake", "AWS_SECRET_ACCESS_KEY": "fake", "AWS_SESSION_TOKEN": "fake",
        "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    })
    function = subprocess.Popen([BOOTSTRAP], env=fn_env, stdout=open(logs["function"], "w"), stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=work)
    children.append(function)

    invocations = []

    def invoke(event):
        path = os.path.join(work, "event.json")
        with open(path, "w") as f:
            json.dump(event, f)
        # cargo lambda watch routes invocations by cargo binary name, or `_` for the function
        # started on its own (--only-lambda-apis); the deployed name is in the function's env.
        try:
            r = subprocess.run([CARGO_LAMBDA, "lambda", "invoke", "-A", "127.0.0.1", "-P", str(port), "-o", "json", "-F", path, "_"],
                               capture_output=True, text=True, timeout=min(conf["Timeout"] + 30, max(left(), 5)))
        except subprocess.TimeoutExpired:
            raise Abort("cargo lambda invoke got no answer in time") from None
        if function.poll() is not None:
            raise Abort(f"bootstrap exited ({function.returncode})")
        if r.returncode != 0:
            # An invocation error: Lambda returns the whole batch to the queue.
            invocations.append({"error": r.stdout + r.stderr})
            return None
        answer = json.loads(r.stdout)
        invocations.append(answer)
        return answer

    # ---- 4. The event source mapping -------------------------------------------------------
    seen = {}                      # messageId -> {"body", "receives", "failed", "deleted", "attrs"}

    def lambda_record(m):
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
            "eventSourceARN": queue_arn,
            "awsRegion": REGION,
        }

    def run_queue(phase, timeout):
        """Polls until the input queue is empty: batches of up to BatchSize messages gathered
        within the batching window, one invocation each, then what Lambda does with the
        answer: delete every message not in batchItemFailures; the listed ones are left to SQS
        (visibility set to 0 so the test does not wait 180 s), which redelivers them and, after
        maxReceiveCount receives, moves them to the DLQ."""
        end = time.monotonic() + min(timeout, left())
        while time.monotonic() < end:
            batch, gathering = [], time.monotonic() + window
            while len(batch) < batch_size:
                got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=min(10, batch_size - len(batch)),
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
            answer = invoke({"Records": [lambda_record(m) for m in batch]})
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
        raise Abort(f"phase {phase}: the input queue was not empty in time")

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
    objects_ok(s3, objects, delivered, {rid: chain_v1 for rid in delivered})

    def conservation():
        markers = marker_ids(ddb, tables["user_stats"])
        rejected = {m["MessageAttributes"]["source_id"]["StringValue"] for m in letters_got
                    if m["MessageAttributes"]["kind"]["StringValue"] != "unreadable"}
        unreadable = {m["MessageAttributes"]["source_id"]["StringValue"] for m in letters_got
                      if m["MessageAttributes"]["kind"]["StringValue"] == "unreadable"}
        dlqd = {m["MessageId"] for m in dlq}
        parts = [markers, rejected, unreadable, dlqd]
        disjoint = sum(map(len, parts)) == len(set().union(*parts))
        return expect(disjoint and set().union(*parts) == inputs,
                      {"missing": sorted(inputs - set().union(*parts))[:10], "extra": sorted(set().union(*parts) - inputs)[:10],
                       "sizes": list(map(len, parts)), "inputs": len(inputs)})

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
    objects_ok(s3, objects, all_delivered,
               {rid: (chain_v2 if rid in swap and swap[rid][0] == "v2" else chain_v1) for rid in all_delivered},
               label=" (after the swap phases)")
    check("rejects queue and input DLQ: nothing new in the swap phases",
          lambda: expect(not drain(sqs, rejects_url) and not drain(sqs, dlq_url), "not empty"))
    status = weir("status", *target)
    check("weir status: live version 3, history 3 (rollback), 2 (flow v2), 1 (flow v1)",
          lambda: expect(re.search(r"live version 3\b", status) and re.search(r"^\s+3\s.*rollback", status, re.M)
                         and re.search(r"^\s+2\s.*flow v2", status, re.M) and re.search(r"^\s+1\s.*flow v1", status, re.M), status))
    log = open(logs["function"], errors="replace").read()
    check("function log: JSON lines, EMF metrics, no refused version",
          lambda: expect(all(_is_json(x) for x in log.splitlines() if x.startswith("{"))
                         and '"Inputs"' in log and "refused a pipeline version" not in log, log[-2000:]))
    print(f"  ({len(invocations)} invocations in all)")


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


def notes_equal(got, want, chains):
    seen = {}
    problems = []
    for m in got:
        env = json.loads(m["Body"])
        rec = loads(env["Message"])
        attrs = {k: v["Value"] for k, v in env.get("MessageAttributes", {}).items()}
        if rec.get("pk") in seen:
            problems.append(("duplicate", rec.get("pk")))
        seen[rec.get("pk")] = (rec, attrs)
    for pk, r in want.items():
        if pk not in seen:
            problems.append(("missing", pk))
            continue
        rec, attrs = seen[pk]
        want_attrs = {"pipeline": "orders", "currency": r["currency"], "channel": r["channel"], "weir_chain": chains[pk]}
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
    print(f"flow: {PASSED} passed, {FAILED} failed")
    sys.exit(1 if FAILED else 0)
