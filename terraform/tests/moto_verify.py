"""Checks, through the AWS API of a local moto server, that `terraform apply` of
terraform/envs/local created weir's two pipelines (orders, events) and wired them together,
and the subscriber envs/local adds next to the module (a queue subscribed to the orders
pipeline's big-orders topic with a filter policy on the `currency` message attribute).

Usage: moto_verify.py ENDPOINT OUTPUTS_JSON ENV_CONTRACT_JSON [--destroyed]

OUTPUTS_JSON is `terraform output -json` of envs/local; ENV_CONTRACT_JSON is
lambda/env-vars.json. The pipelines' plans are read from the files envs/local deploys
(examples/orders/plan.json, terraform/envs/local/events.plan.json). With --destroyed it
checks instead that nothing is left.
Prints one line per check and, last, `verify: N passed, M failed`; exits 1 on failure.
"""

import json
import os
import re
import sys
from urllib.parse import unquote_plus

import boto3
from botocore.config import Config

from checks import check, expect, lifted_bucket_policies, paused_event_sources, summary

HERE = os.path.dirname(os.path.abspath(__file__))
PLAN_FILES = {
    "orders": os.path.join(HERE, "..", "..", "examples", "orders", "plan.json"),
    "events": os.path.join(HERE, "..", "envs", "local", "events.plan.json"),
}

# What envs/local/main.tf asks for, per pipeline.
EXPECTED = {
    "orders": {
        "timeout": 30, "visibility": "180", "max_receive": 4, "batch": 25, "window": 2, "reserved": 10,
        "s3": {"prefix": "incoming/orders/", "suffixes": [".csv", ".jsonl"], "via": "sqs"},
    },
    "events": {
        "timeout": 60, "visibility": "360", "max_receive": 5, "batch": 10, "window": 5, "reserved": 5,
        "s3": {"prefix": "incoming/events/", "suffixes": [".json"], "via": "sns"},
    },
}

BINDINGS_KEYS = {"weir_bindings", "pipeline", "tables", "topics", "objects", "dead_letter", "checkpoints", "input"}

# The subscriber envs/local/main.tf adds to the orders pipeline's big-orders topic.
BIG_ORDERS_FILTER = {"currency": ["EUR"]}


def main():
    endpoint, outputs_path, contract_path = sys.argv[1:4]
    destroyed = "--destroyed" in sys.argv[4:]
    with open(outputs_path) as f:
        outputs = json.load(f)
    w = outputs["weir"]["value"]
    eur_queue_url = outputs["big_orders_eur_queue_url"]["value"]
    with open(contract_path) as f:
        contract = sorted(v["name"] for v in json.load(f)["variables"])
    plans = {}
    for k, path in PLAN_FILES.items():
        with open(path) as f:
            plans[k] = json.load(f)
    pipelines = w["pipelines"]

    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    cfg = Config(retries={"max_attempts": 2}, s3={"addressing_style": "path"})

    def client(service):
        return session.client(service, endpoint_url=endpoint, config=cfg)

    s3, sqs, sns, lam = client("s3"), client("sqs"), client("sns"), client("lambda")
    ddb, iam, logs, cw = client("dynamodb"), client("iam"), client("logs"), client("cloudwatch")
    glue, athena = client("glue"), client("athena")

    buckets = [w["plugins_bucket"], w["input_bucket"], w["output_bucket"]]
    topic_arns = [t["arn"] for p in pipelines.values() for t in p["topics"].values()]
    topic_arns += [p["input_events_topic_arn"] for p in pipelines.values() if p["input_events_topic_arn"]]
    topic_arns += [w["alerts_topic_arn"]]

    if destroyed:
        names = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        check("destroy: no weir bucket left", lambda: expect(not names & set(buckets), names & set(buckets)))
        queues = sqs.list_queues(QueueNamePrefix="weir-").get("QueueUrls", [])
        check("destroy: no weir queue left", lambda: expect(not queues, queues))
        left = {t["TopicArn"] for t in sns.list_topics()["Topics"]} & set(topic_arns)
        check("destroy: no weir topic left", lambda: expect(not left, left))
        fns = [f["FunctionName"] for f in lam.list_functions()["Functions"]]
        check("destroy: no weir function left", lambda: expect(
            not [p["function_name"] for p in pipelines.values() if p["function_name"] in fns], fns))
        tables = ddb.list_tables()["TableNames"]
        check("destroy: no weir table left", lambda: expect(not [t for t in tables if t.startswith("weir-")], tables))
        alarms = cw.describe_alarms(AlarmNamePrefix="weir-")["MetricAlarms"]
        check("destroy: no weir alarm left", lambda: expect(not alarms, [a["AlarmName"] for a in alarms]))
        eur_name = eur_queue_url.rstrip("/").split("/")[-1]
        subs = [s for s in sns.list_subscriptions()["Subscriptions"] if s["Endpoint"].split(":")[-1] == eur_name]
        check("destroy: no subscription left to the big-orders EUR queue", lambda: expect(not subs, subs))
        return

    # --- S3 -------------------------------------------------------------------------
    for b in buckets:
        check(f"s3 {b}: versioning enabled",
              lambda b=b: expect(s3.get_bucket_versioning(Bucket=b).get("Status") == "Enabled", s3.get_bucket_versioning(Bucket=b)))
        check(f"s3 {b}: SSE-S3 default encryption", lambda b=b: expect(
            s3.get_bucket_encryption(Bucket=b)["ServerSideEncryptionConfiguration"]["Rules"][0]
            ["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256", "not AES256"))
        check(f"s3 {b}: public access blocked", lambda b=b: expect(
            all(s3.get_public_access_block(Bucket=b)["PublicAccessBlockConfiguration"].values()), "not all blocked"))
        check(f"s3 {b}: TLS-only policy", lambda b=b: expect(
            "aws:SecureTransport" in s3.get_bucket_policy(Bucket=b)["Policy"], "no SecureTransport condition"))
        check(f"s3 {b}: lifecycle expires non-current versions", lambda b=b: expect(any(
            "NoncurrentVersionExpiration" in r for r in s3.get_bucket_lifecycle_configuration(Bucket=b)["Rules"]), "no rule"))

    def rules_of(c):
        return {r["Name"].lower(): r["Value"] for r in c["Filter"]["Key"]["FilterRules"]}

    def notification():
        conf = s3.get_bucket_notification_configuration(Bucket=w["input_bucket"])
        qs, ts = conf.get("QueueConfigurations", []), conf.get("TopicConfigurations", [])
        o, e = EXPECTED["orders"]["s3"], EXPECTED["events"]["s3"]
        # One rule per suffix.
        return expect(
            all(q["QueueArn"] == pipelines["orders"]["input_queue_arn"] for q in qs)
            and sorted(tuple(sorted(rules_of(q).items())) for q in qs)
            == sorted((("prefix", o["prefix"]), ("suffix", x)) for x in o["suffixes"])
            and all(t["TopicArn"] == pipelines["events"]["input_events_topic_arn"] for t in ts)
            and sorted(tuple(sorted(rules_of(t).items())) for t in ts)
            == sorted((("prefix", e["prefix"]), ("suffix", x)) for x in e["suffixes"])
            and all(any(x.startswith("s3:ObjectCreated:") for x in c["Events"]) for c in qs + ts),
            conf,
        )

    check("s3 input bucket: one notification, orders' rules (.csv, .jsonl) -> its queue, events' rule -> its topic", notification)

    def plain_http_put_is_refused():
        try:
            s3.put_object(Bucket=w["input_bucket"], Key="incoming/orders/plain-http.csv", Body=b"x")
        except s3.exceptions.ClientError as exc:
            code = exc.response["Error"]["Code"]
            return expect(code in ("403", "AccessDenied"), code)
        return "PutObject over plain HTTP succeeded"

    check("s3 TLS-only policy refuses a plain-HTTP PutObject", plain_http_put_is_refused)

    # --- Bindings documents -----------------------------------------------------------
    bindings = {}

    def read_bindings():
        # moto denies object reads under the TLS-only policy (checks.lifted_bucket_policies).
        with lifted_bucket_policies(s3, [w["plugins_bucket"]]):
            for k in pipelines:
                obj = s3.get_object(Bucket=w["plugins_bucket"], Key=f"pipelines/{k}/bindings.json")
                bindings[k] = (obj["ContentType"], json.loads(obj["Body"].read()))

    check("bindings: each pipeline's pipelines/<p>/bindings.json read from the plugins bucket", read_bindings)

    def queue_arn(url):
        return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    for k, p in pipelines.items():
        plan = plans[k]

        def schema(k=k, plan=plan):
            ctype, b = bindings[k]
            return expect(
                ctype == "application/json" and set(b) == BINDINGS_KEYS and b["weir_bindings"] == 1 and b["pipeline"] == k
                and set(b["tables"]) == set(plan["tables"]) and set(b["topics"]) == set(plan["topics"])
                and set(b["objects"]) == set(plan["objects"]),
                {"content_type": ctype, "keys": sorted(b), "tables": sorted(b["tables"]), "topics": sorted(b["topics"])},
            )

        check(f"bindings {k}: s3://plugins/pipelines/{k}/bindings.json is JSON with the schema and exactly its plan's sinks", schema)

        def tables(k=k, plan=plan):
            bad = []
            for logical, t in bindings[k][1]["tables"].items():
                d = ddb.describe_table(TableName=t["name"])["Table"]
                keys = {s["KeyType"]: s["AttributeName"] for s in d["KeySchema"]}
                types = {a["AttributeName"]: a["AttributeType"] for a in d["AttributeDefinitions"]}
                want = plan["tables"][logical]
                ok = (set(t) == {"name", "arn", "hash_key", "range_key"} and t["name"] == f"weir-{k}-{logical}"
                      and t["arn"] == d["TableArn"] and t["hash_key"] == want["hash_key"] == keys.get("HASH")
                      and t["range_key"] == want["range_key"] == keys.get("RANGE") and set(types.values()) == {"S"})
                if not ok:
                    bad.append((logical, t, keys, types))
            return expect(not bad, bad)

        check(f"bindings {k}: each table is its DynamoDB table (name, ARN, key schema of the plan, type S)", tables)

        def topics(k=k, plan=plan):
            b = bindings[k][1]["topics"]
            existing = {t["TopicArn"] for t in sns.list_topics()["Topics"]}
            ok = all(set(t) == {"arn"} and t["arn"] in existing and t["arn"].endswith(f":weir-{k}-{logical}" + (".fifo" if plan["topics"][logical]["fifo"] else ""))
                     for logical, t in b.items())
            return expect(ok, b)

        check(f"bindings {k}: each topic is its SNS topic", topics)

        def objects_dead_letter_checkpoints(k=k, p=p, plan=plan):
            b = bindings[k][1]
            want_objects = {l: {"bucket": w["output_bucket"], "prefix": f"{k}/{o['prefix']}"} for l, o in plan["objects"].items()}
            return expect(
                b["objects"] == want_objects
                and b["dead_letter"] == {"queue_url": p["rejects_queue_url"], "queue_arn": queue_arn(p["rejects_queue_url"]),
                                         "offload_bucket": w["output_bucket"], "offload_prefix": f"weir-dead-letters/{k}/"}
                and b["checkpoints"] == {"bucket": w["output_bucket"], "prefix": f"weir-checkpoints/{k}/"}
                and b["input"] == {"queue_url": p["input_queue_url"], "queue_arn": queue_arn(p["input_queue_url"])}
                and p["rejects_queue_url"].endswith(f"/weir-{k}-{plan['dead_letter']['queue']}"),
                {x: b[x] for x in ("objects", "dead_letter", "checkpoints", "input")},
            )

        check(f"bindings {k}: objects under {k}/ of the output bucket, its rejects queue, its dead-letter and checkpoint prefixes, its input queue",
              objects_dead_letter_checkpoints)

    # --- SQS ------------------------------------------------------------------------
    def attrs(url):
        return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]

    for k, p in pipelines.items():
        x = EXPECTED[k]

        def redrive(p=p, x=x):
            rp = json.loads(attrs(p["input_queue_url"])["RedrivePolicy"])
            return expect(rp["deadLetterTargetArn"] == p["input_dlq_arn"] and int(rp["maxReceiveCount"]) == x["max_receive"], rp)

        check(f"sqs {k}: input queue redrives to its own DLQ after {x['max_receive']} receives", redrive)
        check(f"sqs {k}: visibility timeout = 6 x function timeout ({x['visibility']} s)", lambda p=p, x=x: expect(
            attrs(p["input_queue_url"])["VisibilityTimeout"] == x["visibility"], attrs(p["input_queue_url"])["VisibilityTimeout"]))
        for key in ("input_queue_url", "input_dlq_url", "rejects_queue_url"):
            check(f"sqs {k} {key.removesuffix('_url')}: SQS-managed SSE", lambda p=p, key=key: expect(
                attrs(p[key]).get("SqsManagedSseEnabled") == "true", attrs(p[key]).get("SqsManagedSseEnabled")))

    def queue_policies():
        o = attrs(pipelines["orders"]["input_queue_url"]).get("Policy", "")
        e = attrs(pipelines["events"]["input_queue_url"]).get("Policy", "")
        return expect(
            "s3.amazonaws.com" in o and w["input_bucket"] in o
            and "sns.amazonaws.com" in e and pipelines["events"]["input_events_topic_arn"] in e and "s3.amazonaws.com" not in e,
            {"orders": o, "events": e},
        )

    check("sqs queue policies: orders' queue admits the input bucket, events' queue its input-events topic only", queue_policies)

    def drain(url):
        """Deletes what the queue holds (PurgeQueue is limited to once a minute)."""
        while msgs := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", []):
            sqs.delete_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)])

    # --- SNS ------------------------------------------------------------------------
    def input_events_subscription():
        subs = sns.list_subscriptions_by_topic(TopicArn=pipelines["events"]["input_events_topic_arn"])["Subscriptions"]
        if len(subs) != 1:
            return subs
        a = sns.get_subscription_attributes(SubscriptionArn=subs[0]["SubscriptionArn"])["Attributes"]
        return expect(subs[0]["Protocol"] == "sqs" and subs[0]["Endpoint"] == pipelines["events"]["input_queue_arn"]
                      and a.get("RawMessageDelivery") == "true", a)

    check("sns events' input-events topic delivers raw to events' input queue", input_events_subscription)

    def email():
        subs = sns.list_subscriptions_by_topic(TopicArn=w["alerts_topic_arn"])["Subscriptions"]
        return expect([s["Protocol"] for s in subs] == ["email"], subs)

    check("sns alerts topic has the e-mail subscription", email)

    # --- The subscriber envs/local adds: big orders in EUR ---------------------------------
    big_orders_arn = pipelines["orders"]["topics"]["big-orders"]["arn"]

    def eur_subscription():
        # Terraform's is the topic's only subscription (deployed_flow.py adds its own probe later).
        subs = sns.list_subscriptions_by_topic(TopicArn=big_orders_arn)["Subscriptions"]
        if len(subs) != 1:
            return subs
        a = sns.get_subscription_attributes(SubscriptionArn=subs[0]["SubscriptionArn"])["Attributes"]
        return expect(subs[0]["Protocol"] == "sqs" and subs[0]["Endpoint"] == queue_arn(eur_queue_url)
                      and a.get("RawMessageDelivery") == "true" and json.loads(a.get("FilterPolicy") or "null") == BIG_ORDERS_FILTER
                      and a.get("FilterPolicyScope", "MessageAttributes") == "MessageAttributes", a)

    check(f"sns orders' big-orders topic: one subscription, sqs -> the EUR queue, raw delivery, filter policy {json.dumps(BIG_ORDERS_FILTER)} on message attributes",
          eur_subscription)
    check("sqs big-orders EUR queue: SQS-managed SSE", lambda: expect(
        attrs(eur_queue_url).get("SqsManagedSseEnabled") == "true", attrs(eur_queue_url).get("SqsManagedSseEnabled")))

    def eur_queue_policy():
        doc = json.loads(attrs(eur_queue_url).get("Policy") or "{}")
        st = doc.get("Statement", [])
        return expect(len(st) == 1 and st[0]["Effect"] == "Allow" and st[0]["Principal"] == {"Service": "sns.amazonaws.com"}
                      and st[0]["Action"] == "sqs:SendMessage" and st[0]["Resource"] == queue_arn(eur_queue_url)
                      and st[0]["Condition"] == {"ArnEquals": {"aws:SourceArn": big_orders_arn}}, doc)

    check("sqs big-orders EUR queue policy: only the big-orders topic may send (sqs:SendMessage, aws:SourceArn)", eur_queue_policy)

    # --- Lambda ---------------------------------------------------------------------
    for k, p in pipelines.items():
        x = EXPECTED[k]

        def function(p=p, x=x):
            c = lam.get_function(FunctionName=p["function_name"])["Configuration"]
            return expect(
                c["Runtime"] == "provided.al2023" and c["Handler"] == "bootstrap" and c["Architectures"] == ["arm64"]
                and c["Timeout"] == x["timeout"] and c["Role"] == p["function_role_arn"],
                {n: c.get(n) for n in ("Runtime", "Handler", "Architectures", "Timeout", "Role")},
            )

        check(f"lambda {p['function_name']}: provided.al2023 / arm64 / bootstrap / {x['timeout']} s / own role", function)

        def env(k=k, p=p):
            e = lam.get_function(FunctionName=p["function_name"])["Configuration"]["Environment"]["Variables"]
            return expect(
                sorted(e) == contract and e["WEIR_PIPELINE"] == k and e["WEIR_PLUGINS_BUCKET"] == w["plugins_bucket"]
                and e["WEIR_MANIFEST_KEY"] == f"pipelines/{k}/manifest.json" and e["WEIR_BINDINGS_KEY"] == f"pipelines/{k}/bindings.json",
                e,
            )

        check(f"lambda {p['function_name']}: environment names == lambda/env-vars.json, its pipeline's manifest and bindings", env)
        check(f"lambda {p['function_name']}: reserved concurrency = {x['reserved']}", lambda p=p, x=x: expect(
            lam.get_function_concurrency(FunctionName=p["function_name"]).get("ReservedConcurrentExecutions") == x["reserved"],
            lam.get_function_concurrency(FunctionName=p["function_name"])))

        def esm(p=p, x=x):
            m = lam.get_event_source_mapping(UUID=p["event_source_mapping_uuid"])
            return expect(
                m["FunctionResponseTypes"] == ["ReportBatchItemFailures"] and m["EventSourceArn"] == p["input_queue_arn"]
                and m["BatchSize"] == x["batch"] and m.get("MaximumBatchingWindowInSeconds") == x["window"],
                {n: m.get(n) for n in ("FunctionResponseTypes", "EventSourceArn", "BatchSize", "MaximumBatchingWindowInSeconds")},
            )

        check(f"lambda {p['function_name']}: SQS event source = own queue, ReportBatchItemFailures, batch {x['batch']}, window {x['window']} s", esm)

    def object_created_reaches_each_pipeline():
        # The event sources are paused so that moto does not try to run the functions
        # (checks.paused_event_sources); the queues are drained before resuming.
        uuids = [p["event_source_mapping_uuid"] for p in pipelines.values()]
        urls = {k: p["input_queue_url"] for k, p in pipelines.items()}
        with paused_event_sources(lam, uuids):
            try:
                with lifted_bucket_policies(s3, [w["input_bucket"]]):
                    for url in urls.values():
                        drain(url)
                    for key in ("incoming/orders/a.csv", "incoming/orders/a.jsonl", "incoming/orders/a.json",
                                "incoming/events/e.json", "incoming/events/e.csv", "elsewhere/a.csv"):
                        s3.put_object(Bucket=w["input_bucket"], Key=key, Body=b"id,amount\n1,2\n")
                    got = {}
                    for k, url in urls.items():
                        keys = []
                        for _ in range(3):
                            for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
                                body = json.loads(m["Body"])
                                keys += [unquote_plus(r["s3"]["object"]["key"]) for r in body.get("Records", [])
                                         if r["eventName"].startswith("ObjectCreated:") and r["s3"]["bucket"]["name"] == w["input_bucket"]]
                                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
                            if len(keys) >= {"orders": 2, "events": 1}[k]:
                                break
                        got[k] = sorted(keys)
                    return expect(got == {"orders": ["incoming/orders/a.csv", "incoming/orders/a.jsonl"],
                                          "events": ["incoming/events/e.json"]}, got)
            finally:
                for url in urls.values():
                    drain(url)

    check("s3 put: incoming/orders/*.csv and *.jsonl reach only orders' queue, incoming/events/*.json only events' (through SNS)",
          object_created_reaches_each_pipeline)

    # --- IAM ------------------------------------------------------------------------
    def policy_of(p):
        role = p["function_role_arn"].split("/")[-1]
        names = iam.list_role_policies(RoleName=role)["PolicyNames"]
        attached = iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
        if len(names) != 1 or attached:
            raise AssertionError({"inline": names, "attached": attached})
        doc = iam.get_role_policy(RoleName=role, PolicyName=names[0])["PolicyDocument"]
        doc = json.loads(doc) if isinstance(doc, str) else doc
        out = []
        for s in doc["Statement"]:
            acts = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
            ress = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
            out.append((acts, ress))
        return out

    for k, p in pipelines.items():
        def role_policy(p=p):
            bad = []
            for acts, ress in policy_of(p):
                bad += [a for a in acts if "*" in a]
                bad += [r for r in ress if "*" in r and not (
                    re.fullmatch(r"arn:aws:s3:::[a-z0-9.-]+/[^*]*\*", r)
                    or re.fullmatch(r"arn:aws:logs:[a-z0-9-]+:\d{12}:log-group:[^*:]+:log-stream:\*", r))]
            return expect(not bad, bad)

        check(f"iam {k}: one inline policy, no wildcard actions or resources", role_policy)

        def own_resources_only(k=k, p=p):
            mine = {r for _, ress in policy_of(p) for r in ress}
            others = set()
            for o, q in pipelines.items():
                if o != k:
                    others |= {t["arn"] for t in q["tables"].values()} | {t["arn"] for t in q["topics"].values()}
                    others |= {q["input_queue_arn"], q["input_dlq_arn"], queue_arn(q["rejects_queue_url"])}
            own = {t["arn"] for t in p["tables"].values()} | {t["arn"] for t in p["topics"].values()}
            own |= {p["input_queue_arn"], queue_arn(p["rejects_queue_url"])}
            return expect(not (mine & others) and own <= mine, {"others": sorted(mine & others), "missing": sorted(own - mine)})

        check(f"iam {k}: names its own tables, topics and queues and none of the other pipeline's", own_resources_only)

    # --- DynamoDB -------------------------------------------------------------------
    for k, p in pipelines.items():
        for t in (t["name"] for t in p["tables"].values()):
            check(f"dynamodb {t}: on-demand", lambda t=t: expect(
                ddb.describe_table(TableName=t)["Table"]["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST", "not on-demand"))
            check(f"dynamodb {t}: point-in-time recovery", lambda t=t: expect(
                ddb.describe_continuous_backups(TableName=t)["ContinuousBackupsDescription"]
                ["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED", "PITR off"))
            check(f"dynamodb {t}: TTL on expires_at", lambda t=t: expect(
                ddb.describe_time_to_live(TableName=t)["TimeToLiveDescription"].get("AttributeName") == "expires_at",
                ddb.describe_time_to_live(TableName=t)))

    # --- Logs, alarms, dashboard ----------------------------------------------------
    for k, p in pipelines.items():
        check(f"logs {p['log_group_name']}: retention 30 days", lambda p=p: expect(
            [g.get("retentionInDays") for g in logs.describe_log_groups(logGroupNamePrefix=p["log_group_name"])["logGroups"]] == [30],
            logs.describe_log_groups(logGroupNamePrefix=p["log_group_name"])["logGroups"]))

        def alarms(k=k, p=p):
            al = cw.describe_alarms(AlarmNamePrefix=f"weir-{k}-")["MetricAlarms"]
            wanted = {("AWS/SQS", "ApproximateNumberOfMessagesVisible"), ("AWS/Lambda", "Errors"), ("AWS/Lambda", "Throttles"),
                      ("AWS/SQS", "ApproximateAgeOfOldestMessage"), ("Weir", "PluginRefusals")}
            seen = {(a["Namespace"], a["MetricName"]) for a in al}
            actions_ok = all(a["AlarmActions"] == [w["alerts_topic_arn"]] for a in al)
            refusals = [a for a in al if a["MetricName"] == "PluginRefusals"]
            dims_ok = refusals and refusals[0]["Dimensions"] == [{"Name": "Pipeline", "Value": k}]
            own = {d["Value"] for a in al for d in a["Dimensions"]} <= {
                k, p["function_name"], p["input_queue_name"], p["input_dlq_name"], p["rejects_queue_name"]}
            return expect(len(al) == 6 and wanted <= seen and actions_ok and dims_ok and own,
                          [(a["AlarmName"], a["Dimensions"], a["AlarmActions"]) for a in al])

        check(f"cloudwatch {k}: 6 alarms on its own queues, function and Pipeline={k} -> alerts topic", alarms)

    def dashboard():
        body = json.loads(cw.get_dashboard(DashboardName=w["dashboard_name"])["DashboardBody"])
        text = json.dumps(body)
        return expect("widgets" in body and all(p["function_name"] in text for p in pipelines.values()), "not every pipeline")

    check("cloudwatch one dashboard covering every pipeline", dashboard)

    # --- Glue / Athena --------------------------------------------------------------
    def glue_tables():
        want = {f"orders_{l.replace('-', '_')}": f"s3://{w['output_bucket']}/orders/{o['prefix']}"
                for l, o in plans["orders"]["objects"].items()}
        got = {}
        for name in want:
            t = glue.get_table(DatabaseName=w["glue_database"], Name=name)["Table"]
            sd = t["StorageDescriptor"]
            if [p["Name"] for p in t["PartitionKeys"]] == ["dt"] and sd["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe":
                got[name] = sd["Location"]
        listed = {t["Name"] for t in glue.get_tables(DatabaseName=w["glue_database"])["TableList"]}
        return expect(got == want and listed == set(want), {"got": got, "listed": sorted(listed)})

    check("glue one table per objects sink (orders), over <pipeline>/<prefix>, partitioned by dt, JSON", glue_tables)

    def workgroup():
        wg = athena.get_work_group(WorkGroup=w["athena_workgroup"])["WorkGroup"]
        loc = wg["Configuration"]["ResultConfiguration"]["OutputLocation"]
        return expect(loc == f"s3://{w['output_bucket']}/athena-results/", loc)

    check("athena workgroup writes results to the output bucket", workgroup)


if __name__ == "__main__":
    main()
    sys.exit(summary("verify"))
