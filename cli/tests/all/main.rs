//! End-to-end tests of the `weir` binary, as a user runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use weir_test_artifacts as wasm;
use weir_test_artifacts::emulators;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap()
}

fn weir(args: &[&str]) -> Output {
    weir_in(Path::new(env!("CARGO_BIN_EXE_weir")), &root(), args, &[], &[])
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn the_readme_command_runs_the_orders_example_and_accounts_for_every_record() {
    let out = tempfile::tempdir().unwrap();
    let o = out.path().to_str().unwrap();
    let run = weir(&["run", "examples/orders/weir.toml", "--input", "examples/orders/data/orders.csv", "--out", o]);
    assert!(run.status.success());
    let text = stdout(&run);
    assert!(text.contains("every input accounted for: yes"), "{text}");
    assert!(text.contains("inputs 10002"), "{text}");
    for stage in ["reshape", "validate", "enrich", "redact"] {
        assert!(text.contains(stage), "{text}");
    }
    assert!(out.path().join("weir.db").exists() && out.path().join("rejected.jsonl").exists());
    assert!(out.path().join("objects/orders-processed/orders/dt=2024-05-01").is_dir());

    let json =
        weir(&["run", "examples/orders/weir.toml", "--input", "examples/orders/data/orders.csv", "--out", o, "--json"]);
    let summary: Value = serde_json::from_slice(&json.stdout).expect("--json prints JSON");
    assert_eq!(summary["conserved"], true);
    let t = &summary["totals"];
    let sum = ["unreadable", "delivered", "filtered", "rejected"].iter().map(|k| t[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(t["inputs"].as_u64(), Some(sum));
    assert_eq!(summary["stages"].as_array().unwrap().len(), 4);

    // Replayed: the aggregates are the same.
    let stats = weir(&["stats", "--out", o, "--table", "user_stats", "--json"]);
    let stats: Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(
        stats["user_stats"]["totals"]["orders"].as_str().unwrap().parse::<u64>().unwrap(),
        t["delivered"].as_u64().unwrap()
    );

    let strict = weir(&[
        "run",
        "examples/orders/weir.toml",
        "--input",
        "examples/orders/data/orders.csv",
        "--out",
        o,
        "--json",
        "--fail-on-reject",
    ]);
    assert_eq!(strict.status.code(), Some(1), "rejects fail the run only with --fail-on-reject");
}

#[test]
fn a_bad_pipeline_file_is_reported_with_file_field_and_allowed_values() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("weir.toml");
    std::fs::write(&file, "name = \"x\"\n[[stages]]\nname = \"v\"\nplugin = \"v.wasm\"\n[[sinks.table]]\nname = \"t\"\nkey = \"k\"\nmode = \"upsert\"\n").unwrap();
    let o = weir(&[
        "run",
        file.to_str().unwrap(),
        "--input",
        "examples/orders/data/orders.csv",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("weir.toml: sinks.table[0].mode: unknown variant `upsert`, expected one of `put`, `put-if-absent`, `aggregate`"), "{err}");
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `weir plan` prints what terraform deploys for a pipeline: the committed plan of the example
/// is exactly its output, so the deployed example cannot drift from its pipeline file.
#[test]
fn weir_plan_prints_the_deployment_a_pipeline_file_needs() {
    let o = weir(&["plan", "examples/orders/weir.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let committed = std::fs::read_to_string(root().join("examples/orders/plan.json")).unwrap();
    assert_eq!(stdout(&o), committed);
    let plan: Value = serde_json::from_str(&committed).unwrap();
    assert_eq!(plan["tables"]["user_stats"]["hash_key"], "user_id");
    assert_eq!(plan["topics"]["big-orders"]["fifo"], false);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("plan.json");
    let o = weir(&["plan", "examples/orders/weir.toml", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), committed);
    let bad = weir(&["plan", "no/such/weir.toml"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("reading no/such/weir.toml"), "{}", stderr(&bad));
}

#[test]
fn golden_tests_pass_and_fail_with_a_readable_diff() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "{\"order_id\":\"o\",\"user_id\":\"u\",\"amount\":1,\"currency\":\"EUR\",\"timestamp\":\"2024-05-01T00:00:00Z\"}\n{\"order_id\":\"\"}\n").unwrap();
    let expect = dir.path().join("expected.jsonl");
    std::fs::write(&expect, "{\"user_id\":\"u\",\"order_id\":\"o\",\"amount\":1,\"currency\":\"EUR\",\"timestamp\":\"2024-05-01T00:00:00Z\"}\n{\"$reject\":\"field `order_id` must be a non-empty string\"}\n").unwrap();
    let args = |e: &Path| {
        vec![
            "test".to_string(),
            wasm::VALIDATE_ORDER.to_string(),
            "--input".into(),
            input.display().to_string(),
            "--expect".into(),
            e.display().to_string(),
        ]
    };
    let pass = weir(&args(&expect).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(pass.status.success());
    assert!(stdout(&pass).starts_with("ok: 2 results match"));

    let wrong = dir.path().join("wrong.jsonl");
    std::fs::write(&wrong, "{\"order_id\":\"o\"}\n{\"$reject\":\"something else\"}\n").unwrap();
    let fail = weir(&args(&wrong).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(fail.status.code(), Some(1));
    let text = stdout(&fail);
    assert!(text.contains("golden test failed"), "{text}");
    assert!(text.contains("-{\"$reject\":\"something else\"}"), "{text}");
    assert!(text.contains("+{\"$reject\":\"field `order_id` must be a non-empty string\"}"), "{text}");
    assert!(text.contains("--update"), "{text}");
}

/// `weir` with fake AWS credentials (for the local emulator), never a real profile.
fn weir_aws(args: &[&str]) -> Output {
    let fake = [
        ("AWS_ACCESS_KEY_ID", "fake".as_ref()),
        ("AWS_SECRET_ACCESS_KEY", "fake".as_ref()),
        ("AWS_REGION", "us-east-1".as_ref()),
        ("AWS_EC2_METADATA_DISABLED", "true".as_ref()),
    ];
    weir_in(Path::new(env!("CARGO_BIN_EXE_weir")), &root(), args, &fake, &["AWS_PROFILE", "AWS_ENDPOINT_URL"])
}

/// `weir send --queue-url` puts generated orders on a real queue (moto server); `weir run --aws`
/// runs the example pipeline on what was received, writing to DynamoDB, SNS, S3 and the DLQ
/// named by the same weir.toml, one of them bound to another name with --bind.
#[test]
fn send_to_a_queue_then_run_on_aws() {
    let Some(moto) = emulators::moto() else { return };
    let endpoint = moto.endpoint();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = rt.block_on(emulators::sdk_config(&endpoint, 3));
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build());
    let sns = aws_sdk_sns::Client::new(&config);
    let input = rt.block_on(async {
        for (table, key) in [("cli-orders", "pk"), ("user_stats", "user_id"), ("currency_stats", "currency")] {
            emulators::create_table(&dynamodb, table, key).await;
        }
        s3.create_bucket().bucket("orders-processed").send().await.unwrap();
        sns.create_topic().name("big-orders").send().await.unwrap();
        sqs.create_queue().queue_name("orders-rejects").send().await.unwrap();
        sqs.create_queue().queue_name("orders-in").send().await.unwrap().queue_url().unwrap().to_string()
    });

    let sent = weir_aws(&[
        "send",
        "--count",
        "30",
        "--batch-size",
        "10",
        "--bad-share",
        "0.2",
        "--queue-url",
        &input,
        "--endpoint-url",
        &endpoint,
    ]);
    assert!(sent.status.success());
    assert!(stdout(&sent).contains("sent 30 messages in 3 SendMessageBatch calls"), "{}", stdout(&sent));

    // What Lambda would receive: the messages as an SQS event.
    let mut records = Vec::new();
    while records.len() < 30 {
        let out = rt
            .block_on(
                sqs.receive_message()
                    .queue_url(&input)
                    .max_number_of_messages(10)
                    .message_attribute_names("All")
                    .send(),
            )
            .unwrap();
        assert!(!out.messages().is_empty(), "the queue holds what weir send sent");
        for m in out.messages() {
            assert_eq!(m.message_attributes().unwrap()["channel"].data_type(), "String");
            records.push(serde_json::json!({"messageId": m.message_id(), "body": m.body(), "eventSource": "aws:sqs"}));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let event = dir.path().join("event.json");
    std::fs::write(&event, serde_json::json!({ "Records": records }).to_string()).unwrap();
    let run = weir_aws(&[
        "run",
        "examples/orders/weir.toml",
        "--aws",
        "--endpoint-url",
        &endpoint,
        "--bind",
        "table.orders=cli-orders",
        "--input",
        event.to_str().unwrap(),
        "--json",
    ]);
    assert!(run.status.success());
    let summary: Value = serde_json::from_slice(&run.stdout).expect("--json prints JSON");
    assert_eq!(summary["conserved"], true);
    let t = &summary["totals"];
    assert_eq!((t["inputs"].as_u64(), t["failed"].as_u64()), (Some(30), Some(0)));
    let delivered = t["delivered"].as_u64().unwrap();
    assert!(t["rejected"].as_u64().unwrap() > 0, "--bad-share 0.2 sends some bad orders");
    let rows = rt.block_on(dynamodb.scan().table_name("cli-orders").send()).unwrap();
    assert_eq!(rows.count() as u64, delivered, "one row per delivered order, in the bound table");
    let rejects = rt.block_on(sqs.get_queue_url().queue_name("orders-rejects").send()).unwrap();
    let letters = rt
        .block_on(
            sqs.get_queue_attributes()
                .queue_url(rejects.queue_url().unwrap())
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
                .send(),
        )
        .unwrap();
    let n = &letters.attributes().unwrap()[&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages];
    assert_eq!(n.parse::<u64>().unwrap(), t["rejected"].as_u64().unwrap());

    // On a deployed stack's resources, as its bindings document names them.
    let topic = rt.block_on(sns.create_topic().name("big-orders").send()).unwrap().topic_arn().unwrap().to_string();
    rt.block_on(emulators::create_table(&dynamodb, "deployed-orders", "pk"));
    rt.block_on(s3.create_bucket().bucket("plugins").send()).unwrap();
    let put_bindings = |tables: Value| {
        let doc = serde_json::json!({
            "weir_bindings": 1, "pipeline": "orders", "tables": tables,
            "topics": {"big-orders": {"arn": topic}},
            "objects": {"orders-processed": {"bucket": "orders-processed", "prefix": "deployed/orders/"}},
            "dead_letter": {"queue_url": rejects.queue_url().unwrap(), "offload_bucket": "orders-processed",
                            "offload_prefix": "weir-dead-letters/orders/"},
            "checkpoints": {"bucket": "orders-processed", "prefix": "weir-checkpoints/orders/"},
        });
        let body = doc.to_string().into_bytes();
        rt.block_on(s3.put_object().bucket("plugins").key("pipelines/orders/bindings.json").body(body.into()).send())
            .unwrap();
    };
    let table = |name: &str, key: &str| serde_json::json!({"name": name, "hash_key": key});
    put_bindings(
        serde_json::json!({"orders": table("deployed-orders", "pk"), "user_stats": table("user_stats", "user_id")}),
    );
    let on_deployment = |input: &Path| {
        weir_aws(&[
            "run",
            "examples/orders/weir.toml",
            "--aws",
            "--endpoint-url",
            &endpoint,
            "--deployment",
            "s3://plugins/pipelines/orders/bindings.json",
            "--input",
            input.to_str().unwrap(),
            "--json",
        ])
    };
    let unfit = on_deployment(&event);
    assert_eq!(unfit.status.code(), Some(2));
    let err = String::from_utf8_lossy(&unfit.stderr);
    assert!(err.contains("table \"currency_stats\": the deployment has no such table"), "{err}");
    put_bindings(serde_json::json!({
        "orders": table("deployed-orders", "pk"),
        "user_stats": table("user_stats", "user_id"),
        "currency_stats": table("currency_stats", "currency"),
    }));
    let deployed = on_deployment(&event);
    assert!(deployed.status.success(), "{}", String::from_utf8_lossy(&deployed.stderr));
    let rows = rt.block_on(dynamodb.scan().table_name("deployed-orders").send()).unwrap();
    assert_eq!(rows.count() as u64, delivered, "one row per delivered order, in the deployed table");
    let objects =
        rt.block_on(s3.list_objects_v2().bucket("orders-processed").prefix("deployed/orders/").send()).unwrap();
    assert!(objects.key_count().unwrap_or(0) > 0, "objects under the deployed prefix");

    // A table that does not exist: the run says which inputs failed and exits non-zero.
    let missing = weir_aws(&[
        "run",
        "examples/orders/weir.toml",
        "--aws",
        "--endpoint-url",
        &endpoint,
        "--bind",
        "table.orders=no-such-table",
        "--input",
        event.to_str().unwrap(),
    ]);
    assert_eq!(missing.status.code(), Some(1));
    let text = stdout(&missing);
    assert!(text.contains("failed inputs (not done; retry them)") && text.contains("no-such-table"), "{text}");
}

#[test]
fn send_writes_sqs_events_that_run_reads() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events");
    let o =
        weir(&["send", "--count", "25", "--batch-size", "10", "--target-kb", "4", "--out", events.to_str().unwrap()]);
    assert!(o.status.success());
    let mut files: Vec<_> = std::fs::read_dir(&events).unwrap().flatten().map(|e| e.path()).collect();
    files.sort();
    assert_eq!(files.len(), 3);
    let first: Value = serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    assert_eq!(first["Records"].as_array().unwrap().len(), 10);
    assert_eq!(first["Records"][0]["eventSource"], "aws:sqs");
    let size = std::fs::metadata(&files[0]).unwrap().len();
    assert!(size > 4 * 1024, "padded toward --target-kb: {size}");

    let pipeline = dir.path().join("weir.toml");
    std::fs::write(
        &pipeline,
        format!("name = \"send\"\n[[stages]]\nname = \"validate\"\nplugin = {:?}\n", wasm::VALIDATE_ORDER),
    )
    .unwrap();
    let mut args = vec![
        "run".to_string(),
        pipeline.display().to_string(),
        "--json".into(),
        "--out".into(),
        dir.path().join("out").display().to_string(),
        "--input".into(),
    ];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let run = weir(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let summary: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(summary["totals"]["inputs"], 25);
    assert_eq!(summary["conserved"], true);
}

/// `weir new` -> `cargo test` -> `weir build` -> `weir test`, by a weir binary copied out of the
/// repository and run elsewhere: the scaffold carries its own SDK and contract (issue #12).
#[test]
fn new_build_test_round_trip_with_a_copied_binary_outside_the_repository() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let copied = bin.join("weir");
    std::fs::copy(env!("CARGO_BIN_EXE_weir"), &copied).unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let weir = |args: &[&str]| weir_in(&copied, &work, args, &[], &[]);

    let created = weir(&["new", "my-filter"]);
    assert!(created.status.success());
    let plugin = work.join("my-filter");
    assert!(plugin.join("src/lib.rs").exists() && plugin.join("README.md").exists());
    let manifest = std::fs::read_to_string(plugin.join("Cargo.toml")).unwrap();
    assert!(manifest.contains(r#"weir-plugin = { path = "vendor/weir-plugin" }"#), "{manifest}");
    assert!(!manifest.contains(root().to_str().unwrap()), "the scaffold must not point into the repository");
    assert_eq!(
        std::fs::read_to_string(plugin.join("wit/v0.1.0/transform.wit")).unwrap(),
        std::fs::read_to_string(root().join("wit/v0.1.0/transform.wit")).unwrap()
    );
    // Its unit tests pass natively, unmodified.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let test = Command::new(cargo)
        .args(["test", "--quiet", "--locked"])
        .current_dir(&plugin)
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .unwrap();
    assert!(
        test.status.success(),
        "{}{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
    // It builds to a component of the weir world.
    let build = weir(&["build", "my-filter"]);
    assert!(build.status.success());
    assert!(stdout(&build).starts_with("ok    my_filter"), "{}", stdout(&build));
    // And golden-tests.
    std::fs::write(plugin.join("in.jsonl"), "{\"a\":1}\n{\"skip\":true}\n[1]\n").unwrap();
    std::fs::write(
        plugin.join("expected.jsonl"),
        "{\"a\":1,\"processed\":true}\n{\"$filtered\":true}\n{\"$reject\":\"body must be a JSON object, got array\"}\n",
    )
    .unwrap();
    let golden = weir(&["test", "my-filter", "--input", "my-filter/in.jsonl", "--expect", "my-filter/expected.jsonl"]);
    assert!(golden.status.success(), "{}", stdout(&golden));

    let again = weir(&["new", "my-filter"]);
    assert_eq!(again.status.code(), Some(2), "refuses to overwrite");
}

/// Runs `bin` in `cwd` with extra environment (and without `unset`), echoing what it printed.
fn weir_in(bin: &Path, cwd: &Path, args: &[&str], env: &[(&str, &std::ffi::OsStr)], unset: &[&str]) -> Output {
    let mut cmd = Command::new(bin);
    cmd.args(args).current_dir(cwd).env("WEIR_CACHE_DIR", root().join("target/test-weir-cache"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    for k in unset {
        cmd.env_remove(k);
    }
    let out = cmd.output().expect("run weir");
    eprintln!(
        "$ weir {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A toolchain without the wasm target (a fake `rustc` whose sysroot, a toolchain of a throwaway
/// `RUSTUP_HOME`, lacks it), and nothing else on PATH: with a (fake) rustup, weir adds the target
/// to that toolchain itself, from the crate's directory, saying so in one line, before `new` and
/// before `build`; without rustup it stops with the command to run (issue #12).
#[test]
fn a_missing_wasm_target_is_added_with_rustup_or_named() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let rustup_home = root.join("rustup-home");
    let sysroot = rustup_home.join("toolchains/fake-1.95");
    let wasm_lib = sysroot.join("lib/rustlib/wasm32-wasip2/lib");
    std::fs::create_dir_all(sysroot.join("lib/rustlib/x86_64-unknown-linux-gnu/lib")).unwrap();
    let mkdir = ["/bin/mkdir", "/usr/bin/mkdir"].into_iter().find(|p| Path::new(p).exists()).expect("mkdir");
    let script = |path: &Path, body: String| {
        std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    let without = root.join("without-rustup");
    let with = root.join("with-rustup");
    for bin in [&without, &with] {
        std::fs::create_dir_all(bin).unwrap();
        script(&bin.join("rustc"), format!("echo {}", sysroot.display()));
    }
    let calls = root.join("rustup-calls");
    script(
        &with.join("rustup"),
        format!("echo \"$(pwd) $*\" >> {}\n{mkdir} -p {}", calls.display(), wasm_lib.display()),
    );
    let weir = |bin: &Path, args: &[&str]| {
        weir_in(
            Path::new(env!("CARGO_BIN_EXE_weir")),
            &root,
            args,
            &[("PATH", bin.as_os_str()), ("RUSTC", "rustc".as_ref()), ("RUSTUP_HOME", rustup_home.as_os_str())],
            &[],
        )
    };
    let adding = "adding it: rustup target add --toolchain fake-1.95 wasm32-wasip2";

    // No rustup: `weir new` writes the crate but stops with the command; `weir build` stops before cargo.
    let new = weir(&without, &["new", "plain"]);
    assert_eq!(new.status.code(), Some(2), "{}", stderr(&new));
    assert!(stderr(&new).contains("run `rustup target add wasm32-wasip2`"), "{}", stderr(&new));
    assert!(stderr(&new).contains(sysroot.to_str().unwrap()), "{}", stderr(&new));
    let build = weir(&without, &["build", "plain"]);
    assert_eq!(build.status.code(), Some(1));
    assert!(stdout(&build).contains("run `rustup target add wasm32-wasip2`"), "{}", stdout(&build));
    assert!(!calls.exists());

    // With rustup: added once, to the toolchain that lacked it, from the crate's directory.
    let new = weir(&with, &["new", "added"]);
    assert!(new.status.success(), "{}", stderr(&new));
    assert_eq!(stderr(&new).lines().filter(|l| l.contains(adding)).count(), 1, "{}", stderr(&new));
    let crate_dir = root.join("added");
    let call = format!("{} target add --toolchain fake-1.95 wasm32-wasip2\n", crate_dir.display());
    assert_eq!(std::fs::read_to_string(&calls).unwrap(), call);
    // Now present: nothing more to add.
    let new = weir(&with, &["new", "second"]);
    assert!(new.status.success());
    assert!(!stderr(&new).contains("adding it"));
    // `weir build` adds it too (the fake toolchain cannot build, so the build itself then fails).
    std::fs::remove_dir_all(&wasm_lib).unwrap();
    let build = weir(&with, &["build", "added"]);
    assert_eq!(stderr(&build).lines().filter(|l| l.contains(adding)).count(), 1, "{}", stderr(&build));
    assert_eq!(std::fs::read_to_string(&calls).unwrap(), format!("{call}{call}"));
    assert!(wasm_lib.is_dir());
}

/// `weir keygen`, `publish` (a whole pipeline file, then one stage), `status` and `rollback`
/// against a bucket on moto server; a plugin that does not load is never published.
#[test]
fn publish_status_and_rollback_a_deployed_pipeline() {
    let Some(moto) = emulators::moto() else { return };
    let endpoint = moto.endpoint();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = rt.block_on(emulators::sdk_config(&endpoint, 3));
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build());
    rt.block_on(s3.create_bucket().bucket("plugins").send()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("weir.toml");
    std::fs::write(
        &file,
        format!(
            r#"name = "orders"
[[stages]]
name = "validate"
plugin = "{}"
[[stages]]
name = "enrich"
plugin = "{}"
[stages.config]
tax_rate = "0.2"
[[sinks.table]]
name = "orders"
key = ["pk"]
[dead_letter]
queue = "rejects"
"#,
            wasm::VALIDATE_ORDER,
            wasm::ENRICH_ORDER
        ),
    )
    .unwrap();
    let key = dir.path().join("signing.key");
    let keygen = weir_aws(&["keygen", "--out", key.to_str().unwrap()]);
    assert!(keygen.status.success());
    let public = stdout(&keygen).lines().last().unwrap().trim().to_string();
    assert_eq!(public.len(), 44, "{public}");
    assert!(!weir_aws(&["keygen", "--out", key.to_str().unwrap()]).status.success(), "never overwrites a key");

    let target = ["--pipeline", "orders", "--bucket", "plugins", "--endpoint-url", &endpoint];
    let with = |args: &[&str]| -> Output { weir_aws(&[args, &target[..]].concat()) };

    // The deployment decides what can be published: without its bindings document, or with one
    // that lacks a sink of the file, nothing is published.
    let publish_all = ["publish", "--definition", file.to_str().unwrap(), "--sign", key.to_str().unwrap()];
    let absent = with(&publish_all);
    assert_eq!(absent.status.code(), Some(2));
    let err = stderr(&absent);
    assert!(err.contains("no bindings document at s3://plugins/pipelines/orders/bindings.json"), "{err}");
    assert!(err.contains("nothing was published"), "{err}");
    let put_bindings = |tables: Value| {
        let doc = serde_json::json!({
            "weir_bindings": 1, "pipeline": "orders", "tables": tables,
            "dead_letter": {"queue_url": "https://sqs.us-east-1.amazonaws.com/123456789012/weir-orders-rejects",
                            "offload_bucket": "out", "offload_prefix": "weir-dead-letters/orders/"},
            "checkpoints": {"bucket": "out", "prefix": "weir-checkpoints/orders/"},
        });
        let body = doc.to_string().into_bytes();
        rt.block_on(s3.put_object().bucket("plugins").key("pipelines/orders/bindings.json").body(body.into()).send())
            .unwrap();
    };
    put_bindings(serde_json::json!({"orders": {"name": "weir-orders-orders", "hash_key": "order_id"}}));
    let mismatched = with(&publish_all);
    assert_eq!(mismatched.status.code(), Some(2));
    let err = stderr(&mismatched);
    assert!(
        err.contains("table \"orders\": the file keys it by [pk], the deployed table weir-orders-orders by [order_id]"),
        "{err}"
    );
    assert!(err.contains("weir plan"), "the fix is named: {err}");
    assert!(stdout(&with(&["status"])).contains("nothing published"), "no version was written");
    let listed = rt.block_on(s3.list_objects_v2().bucket("plugins").prefix("artifacts/").send()).unwrap();
    assert_eq!(listed.key_count(), Some(0), "no artifact was uploaded");
    put_bindings(serde_json::json!({"orders": {"name": "weir-orders-orders", "hash_key": "pk"}}));

    let first = with(&publish_all);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(stdout(&first).contains("published orders version 1: validate="), "{}", stdout(&first));

    // One stage, from a rebuilt component (same code, new sha256).
    let mut rebuilt = std::fs::read(wasm::ENRICH_ORDER).unwrap();
    rebuilt.extend_from_slice(&[0, 6, 3, b'w', b'e', b'i', b'v', b'2']);
    let v2_wasm = dir.path().join("enrich-v2.wasm");
    std::fs::write(&v2_wasm, &rebuilt).unwrap();
    let second = with(&["publish", v2_wasm.to_str().unwrap(), "--stage", "enrich", "--sign", key.to_str().unwrap()]);
    assert!(second.status.success());
    assert!(stdout(&second).contains("version 2"));

    // Refused before anything is written: not a weir component; a stage the file does not have.
    let bad = with(&["publish", wasm::NOT_WEIR, "--stage", "enrich"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("does not load, so it is not published"));
    let unknown = with(&["publish", wasm::ENRICH_ORDER, "--stage", "nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("its stages: validate, enrich"));

    let status = with(&["status", "--json"]);
    assert!(status.status.success());
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["live"]["version"], 2);
    assert_eq!(status["history"].as_array().unwrap().len(), 2);
    let keys = weir_host::manifest::verifying_keys(&public).unwrap();
    let live: weir_host::manifest::Manifest = serde_json::from_value(status["live"].clone()).unwrap();
    for stage in &live.stages {
        weir_host::manifest::verify("orders", stage, &keys).expect("signed with the generated key");
    }
    assert_eq!(live.stages[1].config["tax_rate"], "0.2", "config from the pipeline file");
    let v1_stages = status["history"][0]["stages"].clone();

    let back = with(&["rollback"]);
    assert!(back.status.success());
    assert!(stdout(&back).contains("version 3") && stdout(&back).contains("rollback to 1"), "{}", stdout(&back));
    let status: Value = serde_json::from_slice(&with(&["status", "--json"]).stdout).unwrap();
    assert_eq!(status["live"]["stages"], v1_stages);
    let none = with(&["rollback", "--to", "9"]);
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no version 9 (versions: 1, 2, 3)"));
    let text = stdout(&with(&["status"]));
    assert!(text.contains("live version 3 (rollback to 1)") && text.contains("signed"), "{text}");

    // A rollback is checked against the deployment as a publish is: once the stack keys the
    // table otherwise, going back to a version whose file keys it by pk is refused, and nothing
    // is written; --skip-deployment-check goes back anyway.
    put_bindings(serde_json::json!({"orders": {"name": "weir-orders-orders", "hash_key": "order_id"}}));
    let refused = with(&["rollback", "--to", "2"]);
    assert_eq!(refused.status.code(), Some(2));
    let err = stderr(&refused);
    assert!(err.contains("nothing was rolled back to version 2"), "{err}");
    assert!(err.contains("the deployed table weir-orders-orders by [order_id]"), "{err}");
    assert!(stdout(&with(&["status"])).contains("live version 3 (rollback to 1)"), "no version was written");
    let forced = with(&["rollback", "--to", "2", "--skip-deployment-check"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert!(stdout(&forced).contains("version 4") && stdout(&forced).contains("rollback to 2"), "{}", stdout(&forced));
}
