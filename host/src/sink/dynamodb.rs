//! DynamoDB table sink: the production twin of [`local::TableSink`](super::local::TableSink),
//! with the same three modes.
//!
//! - `put`: `BatchWriteItem` in groups of 25 (DynamoDB's limit), a bounded number of groups in
//!   flight; `UnprocessedItems` are retried with exponential backoff and full jitter, a bounded
//!   number of times, after which the sink fails for the batch (nothing is reported as written
//!   that was not). Two records with the same key in one batch: the later wins, as it would
//!   one after the other (DynamoDB refuses duplicate keys inside one request).
//! - `put-if-absent`: `PutItem` with `attribute_not_exists(<key>)`, one record at a time for
//!   now; a conditional failure means the item is already there (a redelivery) and counts as
//!   done.
//! - `aggregate`: one `TransactWriteItems` per record: a marker item `weir-seen#<record id>`
//!   put only if absent, and `ADD` of every counter on the group's item. A redelivered record's
//!   marker exists, the transaction is cancelled, and nothing is counted twice, also when two
//!   consumers deliver the same batch at once.
//!
//! JSON maps to attribute values exactly: numbers keep their decimal text (`N`), objects and
//! arrays become `M` and `L`, `null` becomes `NULL`, empty strings stay empty strings (DynamoDB
//! accepts them except in key attributes, where the record is reported unwritable). An item
//! over DynamoDB's 400 KB limit is unwritable, with its size in the reason.
//!
//! The sink is synchronous, like every [`Sink`]: it blocks on a tokio runtime handle, so call
//! it from a blocking thread (the Lambda runs the pipeline under `spawn_blocking`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Put, PutRequest, TransactWriteItem, Update, WriteRequest};
use serde_json::{Map, Value};

use super::{Delivery, Sink, SinkError, SinkReport, Unwritable};
use crate::pipeline::config::{CounterOp, TableConfig, TableMode};

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// DynamoDB's item size limit.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// DynamoDB's `BatchWriteItem` limit.
pub const BATCH_WRITE_MAX: usize = 25;
/// Prefix of the marker items that make aggregates idempotent.
pub const SEEN_PREFIX: &str = "weir-seen#";

/// JSON -> attribute value, exactly.
pub fn to_attribute(value: &Value) -> AttributeValue {
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::String(s) => AttributeValue::S(s.clone()),
        Value::Array(items) => AttributeValue::L(items.iter().map(to_attribute).collect()),
        Value::Object(map) => AttributeValue::M(map.iter().map(|(k, v)| (k.clone(), to_attribute(v))).collect()),
    }
}

/// Attribute value -> JSON. Numbers keep their text when JSON can hold it; sets become arrays,
/// binary becomes base64-free byte arrays (numbers 0-255).
pub fn from_attribute(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::N(n) => {
            n.parse::<serde_json::Number>().map(Value::Number).unwrap_or_else(|_| Value::String(n.clone()))
        }
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::L(items) => Value::Array(items.iter().map(from_attribute).collect()),
        AttributeValue::M(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), from_attribute(v))).collect()),
        AttributeValue::Ss(items) => Value::Array(items.iter().cloned().map(Value::String).collect()),
        AttributeValue::Ns(items) => {
            Value::Array(items.iter().map(|n| from_attribute(&AttributeValue::N(n.clone()))).collect())
        }
        AttributeValue::B(b) => Value::Array(b.as_ref().iter().map(|x| Value::from(*x)).collect()),
        AttributeValue::Bs(items) => Value::Array(
            items.iter().map(|b| Value::Array(b.as_ref().iter().map(|x| Value::from(*x)).collect())).collect(),
        ),
        _ => Value::Null,
    }
}

/// An item's size as DynamoDB counts it (attribute names plus values; numbers at most 21 bytes).
pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    fn value_size(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(s) => s.len(),
            AttributeValue::N(n) => n.len().div_ceil(2) + 1,
            AttributeValue::B(b) => b.as_ref().len(),
            AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
            AttributeValue::L(items) => 3 + items.iter().map(|i| 1 + value_size(i)).sum::<usize>(),
            AttributeValue::M(map) => 3 + map.iter().map(|(k, v)| 1 + k.len() + value_size(v)).sum::<usize>(),
            AttributeValue::Ss(items) => items.iter().map(String::len).sum(),
            AttributeValue::Ns(items) => items.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
            AttributeValue::Bs(items) => items.iter().map(|b| b.as_ref().len()).sum(),
            _ => 0,
        }
    }
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

/// Retry policy for partial failures (on top of the SDK's own retries of whole requests).
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { attempts: 8, base: Duration::from_millis(50), max: Duration::from_secs(5) }
    }
}

impl Backoff {
    /// Full jitter: a random delay up to `min(max, base * 2^attempt)`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let cap = self.base.saturating_mul(1u32 << attempt.min(16)).min(self.max);
        let mut r = [0u8; 8];
        let frac = match getrandom::fill(&mut r) {
            Ok(()) => (u64::from_le_bytes(r) >> 11) as f64 / (1u64 << 53) as f64,
            Err(_) => 0.5,
        };
        cap.mul_f64(frac)
    }
}

/// A DynamoDB table sink.
pub struct DynamoTable {
    client: Client,
    runtime: tokio::runtime::Handle,
    /// The DynamoDB table name (the pipeline's table name unless mapped).
    table_name: String,
    config: TableConfig,
    /// Groups of 25 in flight at once (`put`). `put-if-absent` and `aggregate` write one record
    /// at a time for now.
    pub concurrency: usize,
    pub backoff: Backoff,
}

impl DynamoTable {
    pub fn new(
        client: Client,
        runtime: tokio::runtime::Handle,
        table_name: impl Into<String>,
        config: TableConfig,
    ) -> Self {
        DynamoTable {
            client,
            runtime,
            table_name: table_name.into(),
            config,
            concurrency: 8,
            backoff: Backoff::default(),
        }
    }

    fn error(&self, message: impl std::fmt::Display) -> SinkError {
        SinkError { sink: self.name(), message: message.to_string() }
    }

    /// The item for a record, or why it cannot be one.
    fn item(&self, body: &str) -> Result<(Map<String, Value>, Item), String> {
        let Ok(Value::Object(map)) = serde_json::from_str::<Value>(body) else {
            return Err("a table item must be a JSON object".into());
        };
        for key in &self.config.key {
            match map.get(key) {
                Some(Value::String(s)) if !s.is_empty() => {}
                Some(Value::Number(_)) => {}
                _ => return Err(format!("key attribute `{key}` is missing, empty, or not a string or number")),
            }
        }
        let item: HashMap<String, AttributeValue> = map.iter().map(|(k, v)| (k.clone(), to_attribute(v))).collect();
        let size = item_size(&item);
        if size > MAX_ITEM_BYTES {
            return Err(format!("item is {size} bytes, over DynamoDB's {MAX_ITEM_BYTES}-byte limit"));
        }
        Ok((map, item))
    }

    async fn put_all(&self, items: Vec<HashMap<String, AttributeValue>>) -> Result<(), SinkError> {
        let semaphore = Arc::new(tokio::sync::Semaphore::new(self.concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for chunk in items.chunks(BATCH_WRITE_MAX) {
            let requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|item| {
                    let put = PutRequest::builder().set_item(Some(item.clone())).build().map_err(|e| self.error(e))?;
                    Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect::<Result<_, SinkError>>()?;
            let permit = semaphore.clone().acquire_owned().await.map_err(|e| self.error(e))?;
            let (client, table, backoff, name) =
                (self.client.clone(), self.table_name.clone(), self.backoff, self.name());
            tasks.spawn(async move {
                let _permit = permit;
                let mut pending = requests;
                for attempt in 0..=backoff.attempts {
                    let out =
                        client.batch_write_item().request_items(&table, pending.clone()).send().await.map_err(|e| {
                            SinkError {
                                sink: name.clone(),
                                message: format!(
                                    "BatchWriteItem: {}",
                                    aws_sdk_dynamodb::error::DisplayErrorContext(&e)
                                ),
                            }
                        })?;
                    pending = out.unprocessed_items().and_then(|u| u.get(&table)).cloned().unwrap_or_default();
                    if pending.is_empty() {
                        return Ok(());
                    }
                    if attempt < backoff.attempts {
                        tokio::time::sleep(backoff.delay(attempt)).await;
                    }
                }
                Err(SinkError {
                    sink: name,
                    message: format!("{} items still unprocessed after {} retries", pending.len(), backoff.attempts),
                })
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.map_err(|e| self.error(e))??;
        }
        Ok(())
    }

    /// `Ok(true)` written, `Ok(false)` already present.
    async fn put_if_absent(&self, item: HashMap<String, AttributeValue>) -> Result<bool, SinkError> {
        let key = &self.config.key[0];
        let result = self
            .client
            .put_item()
            .table_name(&self.table_name)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#k)")
            .expression_attribute_names("#k", key)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(self.error(format!("PutItem: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)))),
        }
    }

    /// `Ok(true)` counted now, `Ok(false)` counted before (a redelivery).
    async fn aggregate(
        &self,
        record_id: &str,
        group: AttributeValue,
        deltas: Vec<(String, String)>,
    ) -> Result<bool, SinkError> {
        let key = &self.config.key[0];
        let marker = Put::builder()
            .table_name(&self.table_name)
            .item(key, AttributeValue::S(format!("{SEEN_PREFIX}{record_id}")))
            .condition_expression("attribute_not_exists(#k)")
            .expression_attribute_names("#k", key)
            .build()
            .map_err(|e| self.error(e))?;
        let mut update = Update::builder().table_name(&self.table_name).key(key, group);
        let mut set = Vec::new();
        for (i, (name, delta)) in deltas.into_iter().enumerate() {
            set.push(format!("#c{i} :d{i}"));
            update = update
                .expression_attribute_names(format!("#c{i}"), name)
                .expression_attribute_values(format!(":d{i}"), AttributeValue::N(delta));
        }
        let update = update.update_expression(format!("ADD {}", set.join(", "))).build().map_err(|e| self.error(e))?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(marker).build())
            .transact_items(TransactWriteItem::builder().update(update).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) => {
                let duplicate = e.as_service_error().is_some_and(|s| match s {
                    aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) => {
                        c.cancellation_reasons().first().and_then(|r| r.code()) == Some("ConditionalCheckFailed")
                    }
                    _ => false,
                });
                if duplicate {
                    Ok(false)
                } else {
                    Err(self.error(format!("TransactWriteItems: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&e))))
                }
            }
        }
    }

    async fn write_async(&self, delivery: &Delivery<'_>) -> Result<SinkReport, SinkError> {
        let mut report = SinkReport::default();
        let mut ok = Vec::with_capacity(delivery.emitted.len());
        for (index, e) in delivery.emitted.iter().enumerate() {
            match self.item(&e.record.body) {
                Ok(item) => ok.push((index, item)),
                Err(reason) => report.unwritable.push(Unwritable { index, reason }),
            }
        }
        match &self.config.mode {
            TableMode::Put => {
                // Later records win over earlier ones with the same key, as written in order.
                let mut slots: HashMap<Vec<String>, usize> = HashMap::new();
                let mut items: Vec<Item> = Vec::new();
                for (_, (map, item)) in ok {
                    let key: Vec<String> =
                        self.config.key.iter().map(|k| map.get(k).map(Value::to_string).unwrap_or_default()).collect();
                    match slots.get(&key) {
                        Some(&slot) => {
                            items[slot] = item;
                            report.unchanged += 1;
                        }
                        None => {
                            slots.insert(key, items.len());
                            items.push(item);
                        }
                    }
                }
                report.written += items.len();
                self.put_all(items).await?;
            }
            TableMode::PutIfAbsent => {
                for (_, (_, item)) in ok {
                    if self.put_if_absent(item).await? { report.written += 1 } else { report.unchanged += 1 }
                }
            }
            TableMode::Aggregate { group_by, counters } => {
                for (index, (map, _)) in ok {
                    let Some(group) =
                        map.get(group_by).filter(|g| matches!(g, Value::String(s) if !s.is_empty()) || g.is_number())
                    else {
                        report.unwritable.push(Unwritable {
                            index,
                            reason: format!("group field `{group_by}` is missing or empty"),
                        });
                        continue;
                    };
                    let mut deltas = Vec::new();
                    let mut bad = None;
                    for c in counters {
                        match (c.op, &c.field) {
                            (CounterOp::Count, _) => deltas.push((c.name.clone(), "1".to_string())),
                            (CounterOp::Sum, Some(f)) => match map.get(f) {
                                Some(Value::Number(n)) => deltas.push((c.name.clone(), n.to_string())),
                                _ => {
                                    bad = Some(format!(
                                        "counter `{}` sums `{f}`, which is missing or not a number",
                                        c.name
                                    ))
                                }
                            },
                            (CounterOp::Sum, None) => bad = Some(format!("counter `{}` has no field", c.name)),
                        }
                    }
                    if let Some(reason) = bad {
                        report.unwritable.push(Unwritable { index, reason });
                        continue;
                    }
                    let id = &delivery.emitted[index].record.id;
                    if self.aggregate(id, to_attribute(group), deltas).await? {
                        report.written += 1
                    } else {
                        report.unchanged += 1
                    }
                }
            }
        }
        Ok(report)
    }
}

impl Sink for DynamoTable {
    fn name(&self) -> String {
        format!("dynamodb:{}", self.table_name)
    }

    fn write(&mut self, delivery: &Delivery<'_>) -> Result<SinkReport, SinkError> {
        let runtime = self.runtime.clone();
        runtime.block_on(self.write_async(delivery))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_maps_exactly_both_ways() {
        let v: Value =
            serde_json::from_str(r#"{"a":0.1,"b":[1,"x",null,true],"c":{"d":""},"e":12345678901234567890}"#).unwrap();
        let item = to_attribute(&v);
        let AttributeValue::M(m) = &item else { panic!() };
        assert_eq!(m["a"], AttributeValue::N("0.1".into()));
        assert_eq!(m["e"], AttributeValue::N("12345678901234567890".into()));
        assert_eq!(m["c"], AttributeValue::M(HashMap::from([("d".to_string(), AttributeValue::S(String::new()))])));
        assert_eq!(from_attribute(&item), v);
    }

    #[test]
    fn sizes_and_backoff() {
        let item = HashMap::from([("pk".to_string(), AttributeValue::S("x".repeat(10)))]);
        assert_eq!(item_size(&item), 12);
        let b = Backoff::default();
        for attempt in 0..20 {
            assert!(b.delay(attempt) <= b.max);
        }
        assert!(b.delay(0) <= Duration::from_millis(50));
    }
}
