"""Checks, through the AWS API of a local moto server, that `terraform apply` of
terraform/envs/local created weir's resources and wired them together.

Usage: moto_verify.py ENDPOINT OUTPUTS_JSON ENV_CONTRACT_JSON [--destroyed]

OUTPUTS_JSON is `terraform output -json` of envs/local; ENV_CONTRACT_JSON is
lambda/env-vars.json. With --destroyed it checks instead that nothing is left.
Prints one line per check and, last, `verify: N passed, M failed`; exits 1 on failure.
"""

import json
import re
import sys
from urllib.parse import unquote_plus

import boto3
from botocore.config import Config

PASSED = 0
FAILED = 0


def check(name, fn):
    """Runs one check; an exception or a false result is a failure, never fatal."""
    global PASSED, FAILED
    try:
        result = fn()
        ok = result is None or result is True
        detail = "" if ok else f": {result!r}"
    except Exception as exc:  # noqa: BLE001 - a broken check is a failed check
        ok = False
        detail = f": {type(exc).__name__}: {exc}"
    if ok:
        PASSED += 1
        print(f"  ok   {name}")
    else:
        FAILED += 1
        print(f"  FAIL {name}{detail}")


def expect(cond, got):
    return True if cond else got


def main():
    endpoint, outputs_path, contract_path = sys.argv[1:4]
    destroyed = "--destroyed" in sys.argv[4:]
    with open(outputs_path) as f:
        w = json.load(f)["weir"]["value"]
    with open(contract_path) as f:
        contract = sorted(v["name"] for v in json.load(f)["variables"])

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

    if destroyed:
        names = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        check("destroy: no weir bucket left", lambda: expect(not names & set(buckets), names & set(buckets)))
        queues = sqs.list_queues(QueueNamePrefix="weir-local").get("QueueUrls", [])
        check("destroy: no weir queue left", lambda: expect(not queues, queues))
        fns = [f["FunctionName"] for f in lam.list_functions()["Functions"]]
        check("destroy: no weir function left", lambda: expect(w["function_name"] not in fns, fns))
        tables = ddb.list_tables()["TableNames"]
        check("destroy: no weir table left", lambda: expect(not [t for t in tables if t.startswith("weir-local")], tables))
        alarms = cw.describe_alarms(AlarmNamePrefix="weir-local")["MetricAlarms"]
        check("destroy: no weir alarm left", lambda: expect(not alarms, [a["AlarmName"] for a in alarms]))
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

    def notification():
        conf = s3.get_bucket_notification_configuration(Bucket=w["input_bucket"])
        qs = conf.get("QueueConfigurations", [])
        if len(qs) != 1:
            return conf
        q = qs[0]
        rules = {r["Name"].lower(): r["Value"] for r in q["Filter"]["Key"]["FilterRules"]}
        return expect(
            q["QueueArn"] == w["input_queue_arn"]
            and rules == {"prefix": "incoming/", "suffix": ".csv"}
            and any(e.startswith("s3:ObjectCreated:") for e in q["Events"]),
            q,
        )

    check("s3 input bucket notifies the input queue, filtered incoming/ + .csv", notification)

    # --- SQS ------------------------------------------------------------------------
    def attrs(url):
        return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]

    def redrive():
        rp = json.loads(attrs(w["input_queue_url"])["RedrivePolicy"])
        return expect(rp["deadLetterTargetArn"] == w["input_dlq_arn"] and int(rp["maxReceiveCount"]) == 4, rp)

    check("sqs input queue redrives to the input DLQ after 4 receives", redrive)
    check("sqs input queue visibility timeout = 6 x function timeout (180 s)",
          lambda: expect(attrs(w["input_queue_url"])["VisibilityTimeout"] == "180", attrs(w["input_queue_url"])["VisibilityTimeout"]))
    for key in ("input_queue_url", "input_dlq_url", "rejects_queue_url"):
        check(f"sqs {key.removesuffix('_url')}: SQS-managed SSE",
              lambda key=key: expect(attrs(w[key]).get("SqsManagedSseEnabled") == "true", attrs(w[key]).get("SqsManagedSseEnabled")))
    check("sqs input queue policy lets only the input bucket send", lambda: expect(
        w["input_bucket"] in attrs(w["input_queue_url"])["Policy"] and "s3.amazonaws.com" in attrs(w["input_queue_url"])["Policy"],
        attrs(w["input_queue_url"]).get("Policy")))

    def drain(url):
        """Deletes what the queue holds (PurgeQueue is limited to once a minute)."""
        while msgs := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", []):
            sqs.delete_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)])

    # --- SNS ------------------------------------------------------------------------
    def filter_policy():
        a = sns.get_subscription_attributes(SubscriptionArn=w["notify_example_subscription_arn"])["Attributes"]
        return expect(
            json.loads(a["FilterPolicy"]) == {"pipeline": ["local"]}
            and a.get("FilterPolicyScope", "MessageAttributes") == "MessageAttributes"
            and a["TopicArn"] == w["notify_topic_arn"],
            a,
        )

    check("sns example subscription filters on pipeline=local", filter_policy)

    def filter_delivers():
        url = w["notify_example_queue_url"]
        drain(url)
        for pipeline in ("other", "local"):
            sns.publish(TopicArn=w["notify_topic_arn"], Message=json.dumps({"pipeline": pipeline}),
                        MessageAttributes={"pipeline": {"DataType": "String", "StringValue": pipeline}})
        got = []
        for _ in range(3):
            msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
            got += [json.loads(m["Body"])["pipeline"] for m in msgs]
            if got:
                break
        return expect(got == ["local"], got)

    check("sns publish reaches the example queue only when the filter matches", filter_delivers)

    def email():
        subs = sns.list_subscriptions_by_topic(TopicArn=w["alerts_topic_arn"])["Subscriptions"]
        return expect([s["Protocol"] for s in subs] == ["email"], subs)

    check("sns alerts topic has the e-mail subscription", email)

    # --- Lambda ---------------------------------------------------------------------
    def function():
        c = lam.get_function(FunctionName=w["function_name"])["Configuration"]
        return expect(
            c["Runtime"] == "provided.al2023" and c["Handler"] == "bootstrap" and c["Architectures"] == ["arm64"]
            and c["Timeout"] == 30 and c["Role"] == w["function_role_arn"],
            {k: c.get(k) for k in ("Runtime", "Handler", "Architectures", "Timeout", "Role")},
        )

    check("lambda provided.al2023 / arm64 / bootstrap / 30 s / weir role", function)

    def env_names():
        env = lam.get_function(FunctionName=w["function_name"])["Configuration"]["Environment"]["Variables"]
        return expect(sorted(env) == contract and env["WEIR_REJECTS_QUEUE_URL"] == w["rejects_queue_url"]
                      and env["WEIR_NOTIFY_TOPIC_ARN"] == w["notify_topic_arn"], sorted(env))

    check("lambda environment names == lambda/env-vars.json, values wired", env_names)
    check("lambda reserved concurrency = 10", lambda: expect(
        lam.get_function_concurrency(FunctionName=w["function_name"]).get("ReservedConcurrentExecutions") == 10,
        lam.get_function_concurrency(FunctionName=w["function_name"])))

    def esm():
        m = lam.get_event_source_mapping(UUID=w["event_source_mapping_uuid"])
        return expect(
            m["FunctionResponseTypes"] == ["ReportBatchItemFailures"] and m["EventSourceArn"] == w["input_queue_arn"]
            and m["BatchSize"] == 25 and m.get("MaximumBatchingWindowInSeconds") == 2,
            {k: m.get(k) for k in ("FunctionResponseTypes", "EventSourceArn", "BatchSize", "MaximumBatchingWindowInSeconds")},
        )

    check("lambda SQS event source: ReportBatchItemFailures, batch 25, window 2 s", esm)

    def plain_http_put_is_refused():
        try:
            s3.put_object(Bucket=w["input_bucket"], Key="incoming/plain-http.csv", Body=b"x")
        except s3.exceptions.ClientError as exc:
            code = exc.response["Error"]["Code"]
            return expect(code in ("403", "AccessDenied"), code)
        return "PutObject over plain HTTP succeeded"

    check("s3 TLS-only policy refuses a plain-HTTP PutObject", plain_http_put_is_refused)

    def object_created_reaches_queue():
        # The event source is paused so that moto does not try to run the function
        # (it cannot: the zip is a placeholder); the queue is drained before resuming.
        # The bucket's TLS-only policy refuses this plain-HTTP emulator connection (see the
        # check above), so it is lifted for the test and restored after.
        uuid, url, bucket = w["event_source_mapping_uuid"], w["input_queue_url"], w["input_bucket"]
        policy = s3.get_bucket_policy(Bucket=bucket)["Policy"]
        lam.update_event_source_mapping(UUID=uuid, Enabled=False)
        s3.delete_bucket_policy(Bucket=bucket)
        try:
            drain(url)
            for key in ("incoming/orders.csv", "incoming/orders.txt", "elsewhere/orders.csv"):
                s3.put_object(Bucket=w["input_bucket"], Key=key, Body=b"id,amount\n1,2\n")
            keys = []
            for _ in range(3):
                for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
                    body = json.loads(m["Body"])
                    keys += [unquote_plus(r["s3"]["object"]["key"]) for r in body.get("Records", [])
                             if r["eventName"].startswith("ObjectCreated:") and r["s3"]["bucket"]["name"] == w["input_bucket"]]
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
                if keys:
                    break
            return expect(keys == ["incoming/orders.csv"], keys)
        finally:
            drain(url)
            s3.put_bucket_policy(Bucket=bucket, Policy=policy)
            lam.update_event_source_mapping(UUID=uuid, Enabled=True)

    check("s3 put: only incoming/*.csv raises an event on the input queue", object_created_reaches_queue)

    # --- IAM ------------------------------------------------------------------------
    def role_policy():
        role = w["function_role_arn"].split("/")[-1]
        names = iam.list_role_policies(RoleName=role)["PolicyNames"]
        attached = iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
        if len(names) != 1 or attached:
            return {"inline": names, "attached": attached}
        doc = iam.get_role_policy(RoleName=role, PolicyName=names[0])["PolicyDocument"]
        doc = json.loads(doc) if isinstance(doc, str) else doc
        bad = []
        for s in doc["Statement"]:
            acts = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
            ress = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
            bad += [a for a in acts if "*" in a]
            bad += [r for r in ress if "*" in r and not (
                re.fullmatch(r"arn:aws:s3:::[a-z0-9.-]+/([^*]*/)?\*", r)
                or re.fullmatch(r"arn:aws:logs:[a-z0-9-]+:\d{12}:log-group:[^*:]+:log-stream:\*", r))]
        return expect(not bad, bad)

    check("iam one inline policy, no wildcard actions or resources", role_policy)

    # --- DynamoDB -------------------------------------------------------------------
    for t in (w["results_table"], w["aggregates_table"]):
        check(f"dynamodb {t}: on-demand", lambda t=t: expect(
            ddb.describe_table(TableName=t)["Table"]["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST", "not on-demand"))
        check(f"dynamodb {t}: point-in-time recovery", lambda t=t: expect(
            ddb.describe_continuous_backups(TableName=t)["ContinuousBackupsDescription"]
            ["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED", "PITR off"))
        check(f"dynamodb {t}: TTL on expires_at", lambda t=t: expect(
            ddb.describe_time_to_live(TableName=t)["TimeToLiveDescription"].get("AttributeName") == "expires_at",
            ddb.describe_time_to_live(TableName=t)))

    # --- Logs, alarms, dashboard ----------------------------------------------------
    check("logs log group retention 30 days", lambda: expect(
        [g.get("retentionInDays") for g in logs.describe_log_groups(logGroupNamePrefix=w["log_group_name"])["logGroups"]] == [30],
        logs.describe_log_groups(logGroupNamePrefix=w["log_group_name"])["logGroups"]))

    def alarms():
        al = cw.describe_alarms(AlarmNamePrefix="weir-local-")["MetricAlarms"]
        wanted = {("AWS/SQS", "ApproximateNumberOfMessagesVisible"), ("AWS/Lambda", "Errors"), ("AWS/Lambda", "Throttles"),
                  ("AWS/SQS", "ApproximateAgeOfOldestMessage"), ("Weir", "PluginRefusals")}
        seen = {(a["Namespace"], a["MetricName"]) for a in al}
        actions_ok = all(a["AlarmActions"] == [w["alerts_topic_arn"]] for a in al)
        refusals = [a for a in al if a["MetricName"] == "PluginRefusals"]
        dims_ok = refusals and refusals[0]["Dimensions"] == [{"Name": "Pipeline", "Value": "local"}]
        return expect(len(al) == 6 and wanted <= seen and actions_ok and dims_ok, [(a["AlarmName"], a["AlarmActions"]) for a in al])

    check("cloudwatch 6 alarms (DLQ, errors, throttles, age, refusals) -> alerts topic", alarms)
    check("cloudwatch dashboard exists", lambda: expect(
        "widgets" in json.loads(cw.get_dashboard(DashboardName=w["dashboard_name"])["DashboardBody"]), "no widgets"))

    # --- Glue / Athena --------------------------------------------------------------
    def glue_table():
        t = glue.get_table(DatabaseName=w["glue_database"], Name=w["glue_table"])["Table"]
        sd = t["StorageDescriptor"]
        return expect(
            [p["Name"] for p in t["PartitionKeys"]] == ["dt"] and sd["Location"] == w["output_location"]
            and sd["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe",
            {"keys": t["PartitionKeys"], "location": sd["Location"]},
        )

    check("glue table over the output prefix, partitioned by dt, JSON", glue_table)

    def workgroup():
        wg = athena.get_work_group(WorkGroup=w["athena_workgroup"])["WorkGroup"]
        loc = wg["Configuration"]["ResultConfiguration"]["OutputLocation"]
        return expect(loc == f"s3://{w['output_bucket']}/athena-results/", loc)

    check("athena workgroup writes results to the output bucket", workgroup)


if __name__ == "__main__":
    main()
    print(f"verify: {PASSED} passed, {FAILED} failed")
    sys.exit(1 if FAILED else 0)
