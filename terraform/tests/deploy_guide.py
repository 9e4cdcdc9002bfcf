"""docs/deploy.md, run: every fenced block of the deploy guide whose info string is `sh test`
runs, word for word and in order, in one bash session (`set -euo pipefail`) against
terraform/envs/local applied to a moto server; then the effects the guide promises are checked
through the AWS API. So the guide cannot drift from what works.

One substitution: the guide deploys `terraform/envs/example` (a real account); the test reads
`terraform/envs/local` there (the same module pointed at moto, with the example's outputs:
envs/local/example_outputs.tf is a link to envs/example/outputs.tf). The shell gets what an
operator's would have: `weir` and `aws` on PATH, credentials and `AWS_ENDPOINT_URL` (moto) in the
environment (and `aws` given it as `--endpoint-url`, which awscli v1 needs for SQS), `TF_CLI_ARGS_output=-state=STATE` (run.sh keeps the state outside the env dir),
and `WEIR_SIGNING_KEY_FILE` (envs/local's orders function requires signed plugins).

Usage: deploy_guide.py ENDPOINT OUTPUTS_JSON STATE

Prints one line per check and, last, `guide: N passed, M failed`; exits 1 on failure. Run by
terraform/tests/run.sh after the deployed flow, before the destroy; leaves the stack as it found
it (queues drained, bucket policies and event sources restored).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from urllib.parse import unquote_plus

import boto3
from botocore.config import Config

from checks import check, expect, lifted_bucket_policies, paused_event_sources, short, summary

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
GUIDE = os.path.join(REPO, "docs", "deploy.md")
REGION = "us-east-1"
TIMEOUT = 240   # seconds for every block together (the publish builds four plugin crates, warm)


def guide_blocks(path):
    """[(line, text)] of the ```sh test blocks, in order."""
    blocks, current, start = [], None, 0
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if current is None and re.fullmatch(r"```sh test\s*", line):
                current, start = [], n
            elif current is not None and line.strip() == "```":
                blocks.append((start, "".join(current)))
                current = None
            elif current is not None:
                current.append(line)
    if current is not None:
        raise SystemExit(f"{path}:{start}: a ```sh test block is not closed")
    return blocks


def main():
    endpoint, outputs_path, state = sys.argv[1:4]
    with open(outputs_path) as f:
        outputs = json.load(f)
    w = outputs["weir"]["value"]
    orders = w["pipelines"]["orders"]
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    cfg = Config(retries={"max_attempts": 2}, s3={"addressing_style": "path"})
    s3, sqs, lam = (session.client(s, endpoint_url=endpoint, config=cfg) for s in ("s3", "sqs", "lambda"))

    blocks = guide_blocks(GUIDE)
    commands = "\n".join(text for _, text in blocks)
    check(f"docs/deploy.md has the guide's tested blocks ({len(blocks)}: output, publish, status, rollback, S3 upload, send)",
          lambda: expect(len(blocks) >= 4 and all(c in commands for c in (
              "weir publish", "weir status", "weir rollback", "aws s3 cp", "weir send")), [l for l, _ in blocks]))

    work = tempfile.mkdtemp(prefix="weir-guide-")
    aws_config = os.path.join(work, "aws-config")
    with open(aws_config, "w") as f:
        f.write("[default]\nregion = us-east-1\ns3 =\n  addressing_style = path\n")
    # awscli v1 ignores AWS_ENDPOINT_URL for SQS in us-east-1 (its overridesslcommonname
    # customization pins queue.amazonaws.com unless --endpoint-url is given): the shell's `aws`
    # passes the emulator's endpoint explicitly, as AWS_ENDPOINT_URL does for everything else.
    script = ["set -euo pipefail", 'aws() { command aws --endpoint-url "$AWS_ENDPOINT_URL" "$@"; }']
    for line, text in blocks:
        script.append(f"echo '### docs/deploy.md:{line}'")
        script.append(text.replace("terraform/envs/example", "terraform/envs/local"))
    weir_bin = os.environ.get("WEIR_BIN", "")
    venv_bin = os.path.dirname(sys.executable)
    path = os.pathsep.join(p for p in (os.path.dirname(weir_bin) if weir_bin else "", venv_bin, os.environ.get("PATH", "")) if p)
    env = dict(os.environ, PATH=path, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_SESSION_TOKEN="testing", AWS_REGION=REGION, AWS_DEFAULT_REGION=REGION, AWS_CONFIG_FILE=aws_config,
               AWS_SHARED_CREDENTIALS_FILE="/dev/null", TF_CLI_ARGS_output=f"-state={state}", TF_IN_AUTOMATION="1")
    env.pop("AWS_PROFILE", None)
    env.pop("WEIR_PLUGINS_BUCKET", None)
    check("the guide's shell has weir, aws, terraform and jq on PATH",
          lambda: expect(all(shutil.which(t, path=path) for t in ("weir", "aws", "terraform", "jq")),
                         {t: shutil.which(t, path=path) for t in ("weir", "aws", "terraform", "jq")}))

    manifest_key = "pipelines/orders/manifest.json"
    queue = orders["input_queue_url"]
    uuids = [p["event_source_mapping_uuid"] for p in w["pipelines"].values()]
    buckets = [w["plugins_bucket"], w["input_bucket"], w["output_bucket"]]
    try:
        with paused_event_sources(lam, uuids), lifted_bucket_policies(s3, buckets):
            drain(sqs, queue)
            before = live_version(s3, w["plugins_bucket"], manifest_key)
            r = subprocess.run(["bash", "-c", "\n".join(script)], cwd=REPO, env=env, capture_output=True, text=True,
                               timeout=TIMEOUT)
            out = r.stdout + r.stderr
            ran = re.findall(r"^### (docs/deploy\.md:\d+)$", r.stdout, re.M)
            check(f"every tested block of docs/deploy.md ran and succeeded ({', '.join(ran)})",
                  lambda: expect(r.returncode == 0 and len(ran) == len(blocks), f"exit {r.returncode}: ...{out[-1200:]}"))

            def published_then_rolled_back():
                live = json.loads(s3.get_object(Bucket=w["plugins_bucket"], Key=manifest_key)["Body"].read())
                first = json.loads(s3.get_object(Bucket=w["plugins_bucket"],
                                                 Key=f"pipelines/orders/history/{before + 1:010}.json")["Body"].read())
                second = json.loads(s3.get_object(Bucket=w["plugins_bucket"],
                                                  Key=f"pipelines/orders/history/{before + 2:010}.json")["Body"].read())
                return expect(
                    first["note"] == "first deploy" and [s["name"] for s in first["stages"]] == ["reshape", "validate", "enrich", "redact"]
                    and all(s.get("signature") for s in first["stages"])
                    and second["note"] == "enrich again" and [s["name"] for s in second["stages"]] == [s["name"] for s in first["stages"]]
                    and live["version"] == before + 3 and live["note"] == f"rollback to {before + 1}" and live["stages"] == first["stages"],
                    {"before": before, "live": {k: live.get(k) for k in ("version", "note")}})

            check("step 3: weir publish wrote version N+1 (every stage, signed), N+2 (enrich), and rollback made N+3 = N+1's chain",
                  published_then_rolled_back)
            check("step 3: weir status lists the published versions",
                  lambda: expect("first deploy" in out and "enrich again" in out, short(out[-2000:])))

            def queued():
                got = drain(sqs, queue)
                s3_keys = [unquote_plus(rec["s3"]["object"]["key"]) for m in got for rec in m.get("Records", [])
                           if isinstance(m, dict) and rec.get("eventName", "").startswith("ObjectCreated:")]
                direct = [m for m in got if isinstance(m, dict) and m.get("order_id") == "A-3"]
                others = [m for m in got if not (isinstance(m, dict) and ("Records" in m or m.get("order_id") == "A-3"))]
                return expect(s3_keys == ["incoming/orders/orders.csv"] and len(direct) == 1 and len(others) == 100 and len(got) == 102,
                              {"messages": len(got), "s3 events": s3_keys, "direct": len(direct), "sent": len(others)})

            check("step 4: orders' input queue got the S3 event of the uploaded CSV, the message sent with aws sqs, "
                  "and weir send's 100 records, nothing else", queued)
    finally:
        drain(sqs, queue)
        shutil.rmtree(work, ignore_errors=True)


def live_version(s3, bucket, key):
    try:
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())["version"]
    except s3.exceptions.NoSuchKey:
        return 0


def drain(sqs, url):
    """Receives and deletes everything the queue holds; returns the bodies (JSON when they parse)."""
    bodies = []
    idle = 0
    while idle < 2:
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        if not msgs:
            idle += 1
            continue
        idle = 0
        for m in msgs:
            try:
                bodies.append(json.loads(m["Body"]))
            except ValueError:
                bodies.append(m["Body"])
        sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)])
    return bodies


if __name__ == "__main__":
    main()
    sys.exit(summary("guide"))
