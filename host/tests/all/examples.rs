//! The example plugins as a chain: validate -> enrich -> pii-redact, and csv-reshape in front.

use serde_json::Value;
use weir_host::{Record, RejectKind, StageSpec};
use weir_test_artifacts as wasm;

use crate::{chain, load, records, run};

pub const GOOD_ORDER: &str = r#"{"order_id":"o-1","user_id":"u-1","amount":19.99,"currency":"usd","timestamp":"2024-05-01T12:00:00Z","email":"jane.doe@example.com","note":"card 4111 1111 1111 1111"}"#;

fn order_chain() -> weir_host::Chain {
    chain(vec![
        StageSpec::new("validate", load(wasm::VALIDATE_ORDER)),
        StageSpec::new("enrich", load(wasm::ENRICH_ORDER)).config("tax_rate", "0.2"),
        StageSpec::new("redact", load(wasm::PII_REDACT)).config("skip_fields", "order_id,user_id,pk"),
    ])
}

#[test]
fn valid_orders_come_out_enriched_and_redacted() {
    let mut chain = order_chain();
    let report = run(&mut chain, records(&[GOOD_ORDER]));
    assert_eq!(report.emitted.len(), 1);
    let out: Value = serde_json::from_str(&report.emitted[0].record.body).unwrap();
    assert_eq!(out["amount_cents"], 1999);
    assert_eq!(out["total"].to_string(), "23.99");
    assert_eq!(out["currency"], "USD");
    assert_eq!(out["date"], "2024-05-01");
    assert_eq!(out["pk"], "u-1#o-1");
    assert_eq!(out["email"], "j***@example.com");
    assert_eq!(out["note"], "card ************1111");
    assert_eq!(report.emitted[0].record.id, "test#1");
    assert!(report.chain.starts_with("validate=validate_order@"), "{}", report.chain);
    assert_eq!(report.chain.matches('=').count(), 3);
}

#[test]
fn invalid_orders_are_rejected_by_the_right_stage_with_a_reason_and_the_rest_go_on() {
    let mut chain = order_chain();
    let bad_currency = GOOD_ORDER.replace("\"usd\"", "\"XYZ\"");
    let no_user = GOOD_ORDER.replace("\"user_id\":\"u-1\",", "");
    let batch = records(&[GOOD_ORDER, &bad_currency, "not json", &no_user, GOOD_ORDER]);
    let report = run(&mut chain, batch);
    assert_eq!(report.emitted.len(), 2);
    assert_eq!(report.emitted.iter().map(|e| e.origin).collect::<Vec<_>>(), [0, 4]);
    let reasons: Vec<(usize, &str, RejectKind, &str)> =
        report.rejected.iter().map(|r| (r.origin, r.stage.as_str(), r.kind, r.reason.as_str())).collect();
    assert_eq!(reasons.len(), 3);
    assert_eq!(reasons[0].0, 1);
    assert_eq!(reasons[0].1, "validate");
    assert_eq!(reasons[0].2, RejectKind::PluginReject);
    assert!(reasons[0].3.contains("`currency`"), "{}", reasons[0].3);
    assert!(reasons[1].3.starts_with("body is not valid JSON"), "{}", reasons[1].3);
    assert_eq!(reasons[2].3, "field `user_id` is missing");
    // The dead-letter copy is the record as the stage saw it.
    assert_eq!(report.rejected[1].record.body, "not json");

    let validate = chain.stages()[0].metrics();
    assert_eq!((validate.records_in, validate.passed, validate.rejected_total()), (5, 2, 3));
    assert_eq!(validate.rejected[&RejectKind::PluginReject], 3);
    assert_eq!(chain.stages()[1].metrics().records_in, 2);
}

#[test]
fn csv_rows_are_reshaped_then_validated() {
    let mut chain = chain(vec![
        StageSpec::new("reshape", load(wasm::CSV_RESHAPE))
            .config("cast.amount", "float")
            .config("rename.customer", "user_id")
            .config("drop", "internal"),
        StageSpec::new("validate", load(wasm::VALIDATE_ORDER)),
    ]);
    let row = r#"{"order_id":"o-9","customer":"u-9","amount":"12.50","currency":"EUR","timestamp":"2024-05-01T12:00:00Z","internal":"x","coupon":""}"#;
    let bad =
        r#"{"order_id":"o-10","customer":"u-9","amount":"12,50","currency":"EUR","timestamp":"2024-05-01T12:00:00Z"}"#;
    let batch =
        vec![Record::new("orders.csv#2", row).with_attribute("source", "orders.csv"), Record::new("orders.csv#3", bad)];
    let report = run(&mut chain, batch);
    assert_eq!(report.emitted.len(), 1);
    let out: Value = serde_json::from_str(&report.emitted[0].record.body).unwrap();
    assert_eq!(out["user_id"], "u-9");
    assert_eq!(out["amount"].to_string(), "12.50");
    assert!(out.get("internal").is_none() && out.get("coupon").is_none());
    assert_eq!(report.emitted[0].record.attribute("source"), Some("orders.csv"), "attributes pass through");
    assert_eq!(report.rejected[0].stage, "reshape");
    assert_eq!(report.rejected[0].reason, "column `amount`: cannot cast \"12,50\" to float");
}

#[test]
fn large_batches_keep_order_and_count() {
    let mut chain = order_chain();
    let bodies: Vec<String> = (0..1000)
        .map(|i| {
            GOOD_ORDER
                .replace("\"o-1\"", &format!("\"o-{i}\""))
                .replace("19.99", if i % 10 == 0 { "-1" } else { "19.99" })
        })
        .collect();
    let batch: Vec<Record> =
        bodies.iter().enumerate().map(|(i, b)| Record::new(format!("m-{i}"), b.as_str())).collect();
    let report = run(&mut chain, batch);
    assert_eq!(report.emitted.len(), 900);
    assert_eq!(report.rejected.len(), 100);
    for e in &report.emitted {
        let v: Value = serde_json::from_str(&e.record.body).unwrap();
        assert_eq!(v["order_id"], format!("o-{}", e.origin));
        assert_eq!(e.record.id, format!("m-{}", e.origin));
    }
}
