"""What the Python checks of terraform/tests/ share: one line per check, a count, and the two
things moto needs undone around object access and SQS delivery.

    from checks import check, expect, exactly_one_of, short, summary, lifted_bucket_policies, paused_event_sources

`check(name, fn)` runs `fn`; an exception or a result other than None/True fails the check
(never the script). `summary(label)` prints `<label>: N passed, M failed` and returns the exit
status (1 when anything failed).
"""

import contextlib

COUNTS = {"passed": 0, "failed": 0}


def short(x, n=1500):
    s = x if isinstance(x, str) else repr(x)
    return s if len(s) <= n else s[:n] + f"... ({len(s)} chars)"


def expect(cond, got):
    """True when `cond` holds, else `got` (what the failed check prints)."""
    return True if cond else got


def exactly_one_of(parts, inputs, show=10):
    """Conservation: every input is in exactly one of `parts` (sets of input ids), nothing else is."""
    union = set().union(*parts)
    disjoint = sum(map(len, parts)) == len(union)
    return expect(disjoint and union == inputs,
                  {"missing": sorted(inputs - union)[:show], "extra": sorted(union - inputs)[:show],
                   "sizes": list(map(len, parts)), "inputs": len(inputs)})


def check(name, fn):
    """Runs one check; an exception or a result other than None/True is a failure."""
    try:
        result = fn()
        ok = result is None or result is True
        detail = "" if ok else f": {short(result)}"
    except Exception as exc:  # noqa: BLE001 - a broken check is a failed check
        ok = False
        detail = f": {type(exc).__name__}: {short(exc)}"
    COUNTS["passed" if ok else "failed"] += 1
    print(f"  {'ok  ' if ok else 'FAIL'} {name}{detail}", flush=True)
    return ok


def summary(label):
    print(f"{label}: {COUNTS['passed']} passed, {COUNTS['failed']} failed", flush=True)
    return 1 if COUNTS["failed"] else 0


@contextlib.contextmanager
def lifted_bucket_policies(s3, buckets):
    """moto 5.2.5 does not evaluate `aws:SecureTransport`: it denies every object request to a
    bucket carrying the TLS-only policy (modules/bucket_policies), and moto only speaks plain
    HTTP. The policies are lifted for the duration and put back exactly as they were; moto_verify.py
    proves each bucket has one. Production keeps them."""
    saved = []
    try:
        for b in buckets:
            policy = s3.get_bucket_policy(Bucket=b)["Policy"]
            if "aws:SecureTransport" not in policy:
                raise AssertionError(f"{b} has no TLS-only policy: {policy}")
            s3.delete_bucket_policy(Bucket=b)
            saved.append((b, policy))
        yield
    finally:
        for b, policy in saved:
            s3.put_bucket_policy(Bucket=b, Policy=policy)


@contextlib.contextmanager
def paused_event_sources(lam, uuids):
    """moto runs an enabled SQS event source mapping itself on every SendMessage (it would try
    to run the function's zip in Docker and consume the messages): paused for the duration."""
    paused = []
    try:
        for u in uuids:
            lam.update_event_source_mapping(UUID=u, Enabled=False)
            paused.append(u)
        yield
    finally:
        for u in paused:
            lam.update_event_source_mapping(UUID=u, Enabled=True)
