//! DynamoDB table sink: the production twin of [`sqlite::TableSink`](super::sqlite::TableSink),
//! with the same three modes.
//!
//! - `put`: `BatchWriteItem` in groups of 25 (DynamoDB's limit), a bounded number of groups in
//!   flight; `UnprocessedItems` are retried with exponential backoff and full jitter, a bounded
//!   number of times, after which that group's records are reported failed (nothing is
//!   reported as written that was not). Two records with the same key in one batch: the later
//!   wins, as it would one after the other (DynamoDB refuses duplicate keys in one request).
//!   With `order_by`: one `PutItem` per key on condition that the stored item is not newer by
//!   that field, so a redelivered older record never overwrites a newer one; in one batch the
//!   newest record of a key is the one written (the others count as unchanged).
//! - `put-if-absent`: `PutItem` with `attribute_not_exists(<key>)`, a bounded number at once; a
//!   conditional failure means the item is already there (a redelivery) and counts as done. A
//!   put that fails for now is sent again with backoff (also with `order_by`).
//! - `aggregate`: per group, `TransactWriteItems` of up to 99 marker items
//!   `weir-seen#<record id>` (put only if absent, with `expires_at` 15 days on for the table's
//!   TTL) and one `ADD` of the records' summed counters on the group's item, with an
//!   idempotency token derived from the record ids. A redelivered record's marker exists: the
//!   transaction is cancelled with `ConditionalCheckFailed` for it, that record is counted as
//!   unchanged and the rest are retried at once, so nothing is counted twice, also when two
//!   consumers deliver the same batch at once. Conflicts and throttling are retried with
//!   backoff; what still fails is reported per record.
//!
//! JSON maps to attribute values exactly: numbers keep their decimal text (`N`), objects and
//! arrays become `M` and `L`, `null` becomes `NULL`, empty strings stay empty strings (DynamoDB
//! accepts them except in key attributes, where the record is reported unwritable). An item
//! over DynamoDB's 400 KB limit is unwritable, with its size in the reason.
//!
//! Its writes are futures, like every [`Sink`]'s: the runner drives them on the clients' runtime,
//! concurrently with the other sinks of the batch.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder;
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_sdk_dynamodb::types::{AttributeValue, Put, PutRequest, TransactWriteItem, Update, WriteRequest};
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{TableConfig, TableMode, rules};
use crate::aws::retry::Backoff;
use crate::sink::{Delivery, Failed, Sink, SinkError, SinkFuture, SinkReport, Unwritable};

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

pub use super::rules::MAX_ITEM_BYTES;
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

/// A DynamoDB table sink.
pub struct DynamoTable {
    client: Client,
    /// The DynamoDB table name (the pipeline's table name unless mapped).
    table_name: String,
    config: TableConfig,
    /// Requests in flight at once: groups of 25 (`put`), 25 times as many single writes
    /// (`put-if-absent`), group transactions (`aggregate`).
    pub concurrency: usize,
    pub backoff: Backoff,
    /// How long aggregate markers live: longer than any redelivery can come (SQS keeps a
    /// message at most 14 days). `None`: forever.
    pub marker_ttl: Option<Duration>,
    /// The table's TTL attribute (epoch seconds) that markers carry.
    pub marker_ttl_attribute: Option<String>,
    counter_names: Vec<String>,
}

impl DynamoTable {
    pub fn new(client: Client, table_name: impl Into<String>, config: TableConfig) -> Self {
        DynamoTable {
            client,
            table_name: table_name.into(),
            counter_names: match &config.mode {
                TableMode::Aggregate { counters, .. } => counters.iter().map(|c| c.name.clone()).collect(),
                _ => Vec::new(),
            },
            config,
            concurrency: 8,
            backoff: Backoff::default(),
            marker_ttl: Some(Duration::from_secs(15 * 24 * 3600)),
            marker_ttl_attribute: Some("expires_at".into()),
        }
    }

    /// The item for a record, or why it cannot be one.
    /// The item a record makes, by the rules both backends share ([`rules::item`]).
    fn item(&self, body: &str, chain: &str) -> Result<(Map<String, Value>, Item), String> {
        let aggregate = matches!(self.config.mode, TableMode::Aggregate { .. });
        let map = rules::item(body, &self.config.key, if aggregate { "" } else { chain })?;
        let item: Item = map.iter().map(|(k, v)| (k.clone(), to_attribute(v))).collect();
        Ok((map, item))
    }

    /// `put`: groups of 25 in flight, at most `concurrency` at once. A group that cannot be
    /// written fails its records (they are retried with their inputs).
    async fn put_all(&self, items: Vec<(Vec<usize>, Item)>, report: &mut SinkReport) -> Result<(), SinkError> {
        let mut groups = Vec::new();
        for chunk in items.chunks(BATCH_WRITE_MAX) {
            let indexes: Vec<usize> = chunk.iter().flat_map(|(ix, _)| ix.iter().copied()).collect();
            let requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|(_, item)| {
                    let put = PutRequest::builder()
                        .set_item(Some(item.clone()))
                        .build()
                        .map_err(|source| SinkError::Request { sink: self.name(), source })?;
                    Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect::<Result<_, SinkError>>()?;
            groups.push((chunk, indexes, requests));
        }
        let writes = groups.into_iter().map(|(chunk, indexes, requests)| async move {
            match self.put_group(requests).await {
                Ok(()) => Isolated { written: indexes.len(), ..Isolated::default() },
                Err(GroupError::Failed(reason)) => Isolated {
                    failed: indexes.into_iter().map(|i| (i, reason.clone())).collect(),
                    ..Isolated::default()
                },
                // One item DynamoDB refuses (a key of the wrong type, a number out of its range)
                // must not fail its 24 neighbours until they reach the DLQ: write the group's
                // items one by one, and only the refused ones are unwritable, with its message.
                Err(GroupError::Invalid(reason)) => {
                    tracing::info!(table = %self.table_name, %reason, "a group was refused; writing its items one by one");
                    self.put_one_by_one(chunk).await
                }
            }
        });
        for done in futures_bounded(self.concurrency.max(1), writes).await {
            report.written += done.written;
            report.failed.extend(done.failed.into_iter().map(|(index, reason)| Failed { index, reason }));
            report.unwritable.extend(done.unwritable.into_iter().map(|(index, reason)| Unwritable { index, reason }));
        }
        Ok(())
    }

    /// Each item of a refused group with its own `PutItem`, at most `concurrency` at once.
    async fn put_one_by_one(&self, chunk: &[(Vec<usize>, Item)]) -> Isolated {
        let puts = chunk.iter().map(|(indexes, item)| async move {
            let put = self.client.put_item().table_name(&self.table_name).set_item(Some(item.clone())).send().await;
            (indexes, put)
        });
        let mut done = Isolated::default();
        for (indexes, put) in futures_bounded(self.concurrency.max(1), puts).await {
            match put {
                Ok(_) => done.written += indexes.len(),
                Err(e) if is_validation(e.as_service_error().and_then(|s| s.meta().code())) => {
                    let reason = format!("DynamoDB refused the item: {}", crate::aws::describe(&e));
                    done.unwritable.extend(indexes.iter().map(|i| (*i, reason.clone())));
                }
                Err(e) => {
                    let reason = format!("PutItem: {}", crate::aws::describe(&e));
                    done.failed.extend(indexes.iter().map(|i| (*i, reason.clone())));
                }
            }
        }
        done
    }

    /// One `BatchWriteItem` group, its `UnprocessedItems` retried with backoff. A group DynamoDB
    /// refuses as invalid ([`GroupError::Invalid`]) is refused whole: no item of it was written.
    async fn put_group(&self, mut pending: Vec<WriteRequest>) -> Result<(), GroupError> {
        let table = &self.table_name;
        for attempt in 0..=self.backoff.attempts {
            let out = match self.client.batch_write_item().request_items(table, pending.clone()).send().await {
                Ok(out) => out,
                Err(e) => {
                    let reason = format!("BatchWriteItem: {}", crate::aws::describe(&e));
                    if is_validation(e.as_service_error().and_then(|s| s.meta().code())) {
                        return Err(GroupError::Invalid(reason));
                    }
                    return Err(GroupError::Failed(reason));
                }
            };
            pending = out.unprocessed_items().and_then(|u| u.get(table)).cloned().unwrap_or_default();
            if pending.is_empty() {
                return Ok(());
            }
            if attempt < self.backoff.attempts {
                tokio::time::sleep(self.backoff.delay(attempt)).await;
            }
        }
        Err(GroupError::Failed(format!(
            "{} items still unprocessed after {} retries",
            pending.len(),
            self.backoff.attempts
        )))
    }

    /// `put-if-absent`: one conditional `PutItem` per record, `concurrency` at once. `Ok(true)`
    /// written, `Ok(false)` already present (a redelivery), `Err` failed for now.
    async fn put_if_absent(&self, item: Item) -> Result<bool, String> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table_name)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#k)")
            .expression_attribute_names("#k", &self.config.key[0]);
        let result = self.put_retried(put).await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(format!("PutItem: {}", crate::aws::describe(&e))),
        }
    }

    /// One conditional `PutItem`, sent again with backoff while it fails for now (throttled,
    /// timed out, unavailable, the connection lost). The SDK's own retries stop once its retry
    /// quota is spent, and a redelivered batch drains that quota: every put of it ends in a
    /// conditional failure, which refills nothing, while each fault costs. A put whose earlier
    /// attempt was applied meets its own item on the retry and counts as already there.
    async fn put_retried(&self, put: PutItemFluentBuilder) -> Result<PutItemOutput, SdkError<PutItemError, HttpResponse>> {
        let mut attempt = 0;
        loop {
            match put.clone().send().await {
                Err(e) if attempt < self.backoff.attempts && is_transient(&e) => {
                    tokio::time::sleep(self.backoff.delay(attempt)).await;
                    attempt += 1;
                }
                done => return done,
            }
        }
    }

    /// `put` with `order_by`: one `PutItem` on condition that the stored item is not newer
    /// (`attribute_not_exists(#k) OR attribute_not_exists(#o) OR #o <= :o`, [`rules::replaces`]).
    /// `Ok(true)` written, `Ok(false)` the stored item is newer (a redelivered older record).
    async fn put_if_not_older(&self, item: Item, field: &str, value: AttributeValue) -> Result<bool, Refusal> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table_name)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#k) OR attribute_not_exists(#o) OR #o <= :o")
            .expression_attribute_names("#k", &self.config.key[0])
            .expression_attribute_names("#o", field)
            .expression_attribute_values(":o", value);
        let result = self.put_retried(put).await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) if is_validation(e.as_service_error().and_then(|s| s.meta().code())) => {
                Err(Refusal::Invalid(format!("DynamoDB refused the item: {}", crate::aws::describe(&e))))
            }
            Err(e) => Err(Refusal::Failed(format!("PutItem: {}", crate::aws::describe(&e)))),
        }
    }

    /// `aggregate`: one transaction per group and chunk of up to 99 records: a marker per
    /// record, put only if absent, and one `ADD` of the summed deltas on the group's item.
    /// Markers that already exist (redeliveries) are dropped and the rest retried; conflicts with
    /// a concurrent writer and throttling are retried with backoff.
    async fn aggregate_group(&self, group: AttributeValue, mut members: Vec<Member>) -> GroupResult {
        let key = &self.config.key[0];
        let mut result = GroupResult::default();
        let expires = self.marker_ttl.map(|ttl| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            (now + ttl).as_secs().to_string()
        });
        let mut attempt = 0;
        while !members.is_empty() {
            let mut sums = vec![Decimal::ZERO; self.counter_names.len()];
            for (_, _, deltas) in &members {
                for (sum, d) in sums.iter_mut().zip(deltas) {
                    match sum.checked_add(*d) {
                        Some(total) => *sum = total,
                        None => {
                            result
                                .unwritable
                                .extend(members.iter().map(|(i, _, _)| (*i, "counter sum overflows".to_string())));
                            return result;
                        }
                    }
                }
            }
            let mut transaction = self.client.transact_write_items();
            for (_, id, _) in &members {
                let mut marker = Put::builder()
                    .table_name(&self.table_name)
                    .item(key, AttributeValue::S(marker(id)))
                    .condition_expression("attribute_not_exists(#k)")
                    .expression_attribute_names("#k", key);
                if let (Some(attr), Some(at)) = (&self.marker_ttl_attribute, &expires) {
                    marker = marker.item(attr, AttributeValue::N(at.clone()));
                }
                match marker.build() {
                    Ok(put) => transaction = transaction.transact_items(TransactWriteItem::builder().put(put).build()),
                    Err(e) => {
                        result.failed.extend(members.iter().map(|(i, _, _)| (*i, e.to_string())));
                        return result;
                    }
                }
            }
            let mut update = Update::builder().table_name(&self.table_name).key(key, group.clone());
            let mut set = Vec::new();
            for (i, (name, sum)) in self.counter_names.iter().zip(&sums).enumerate() {
                set.push(format!("#c{i} :d{i}"));
                update = update
                    .expression_attribute_names(format!("#c{i}"), name)
                    .expression_attribute_values(format!(":d{i}"), AttributeValue::N(sum.normalize().to_string()));
            }
            match update.update_expression(format!("ADD {}", set.join(", "))).build() {
                Ok(u) => transaction = transaction.transact_items(TransactWriteItem::builder().update(u).build()),
                Err(e) => {
                    result.failed.extend(members.iter().map(|(i, _, _)| (*i, e.to_string())));
                    return result;
                }
            }
            // A retry of a committed transaction (the connection dropped on the answer) is
            // recognised by DynamoDB and succeeds; the token covers every parameter, so a
            // redelivery that differs (a later `expires_at`) is a new transaction, not an
            // IdempotentParameterMismatch. Its markers exist: those records are not counted twice.
            let ids = members.iter().map(|(_, id, _)| id.as_str());
            let token = transaction_token(&group, ids, &sums, expires.as_deref());
            let outcome = transaction.client_request_token(token).send().await;
            let retry_reason = match outcome {
                Ok(_) => {
                    result.written.extend(members.iter().map(|(i, _, _)| *i));
                    return result;
                }
                Err(e) => {
                    let display = format!("TransactWriteItems: {}", crate::aws::describe(&e));
                    let cancelled = match e.as_service_error() {
                        Some(TransactWriteItemsError::TransactionCanceledException(c)) => Some(
                            c.cancellation_reasons()
                                .iter()
                                .map(|r| r.code().unwrap_or("None").to_string())
                                .collect::<Vec<_>>(),
                        ),
                        _ => None,
                    };
                    match cancelled {
                        Some(codes) => {
                            let seen: Vec<bool> = (0..members.len())
                                .map(|i| codes.get(i).map(String::as_str) == Some("ConditionalCheckFailed"))
                                .collect();
                            if seen.iter().any(|s| *s) {
                                // Redelivered records: counted before. Retry the rest at once.
                                let mut k = 0;
                                members.retain(|(i, _, _)| {
                                    let dup = seen[k];
                                    k += 1;
                                    if dup {
                                        result.unchanged.push(*i);
                                    }
                                    !dup
                                });
                                continue;
                            }
                            let transient = codes.iter().any(|c| {
                                matches!(
                                    c.as_str(),
                                    "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"
                                )
                            });
                            if !transient {
                                // e.g. a counter attribute that holds a string: no retry can help.
                                result.unwritable.extend(members.iter().map(|(i, _, _)| (*i, display.clone())));
                                return result;
                            }
                            display
                        }
                        None if is_validation(e.as_service_error().and_then(|s| s.meta().code())) => {
                            // DynamoDB refused the transaction itself (ValidationException): no
                            // retry can help. One record alone is unwritable with DynamoDB's
                            // message; several are tried one by one, so that the one refused does
                            // not fail its neighbours until they reach the DLQ.
                            if members.len() == 1 {
                                result.unwritable.extend(members.iter().map(|(i, _, _)| (*i, display.clone())));
                                return result;
                            }
                            let why = &display;
                            tracing::info!(table = %self.table_name, reason = %why, "a transaction was refused; writing its records one by one");
                            for member in std::mem::take(&mut members) {
                                let alone = Box::pin(self.aggregate_group(group.clone(), vec![member])).await;
                                result.absorb(alone);
                            }
                            return result;
                        }
                        None => {
                            let transient = e.as_service_error().is_some_and(|s| {
                                matches!(
                                    s,
                                    TransactWriteItemsError::TransactionInProgressException(_)
                                        | TransactWriteItemsError::ProvisionedThroughputExceededException(_)
                                        | TransactWriteItemsError::RequestLimitExceeded(_)
                                        | TransactWriteItemsError::InternalServerError(_)
                                )
                            }) || e.as_service_error().is_none();
                            if !transient {
                                result.failed.extend(members.iter().map(|(i, _, _)| (*i, display.clone())));
                                return result;
                            }
                            display
                        }
                    }
                }
            };
            if attempt >= self.backoff.attempts {
                result.failed.extend(members.iter().map(|(i, _, _)| (*i, retry_reason.clone())));
                return result;
            }
            tokio::time::sleep(self.backoff.delay(attempt)).await;
            attempt += 1;
        }
        result
    }

    async fn write_async(&self, delivery: &Delivery<'_>) -> Result<SinkReport, SinkError> {
        let mut report = SinkReport::default();
        let mut ok = Vec::with_capacity(delivery.emitted.len());
        for (index, e) in delivery.emitted.iter().enumerate() {
            match self.item(&e.record.body, delivery.chain) {
                Ok((map, mut item)) => {
                    if !matches!(self.config.mode, TableMode::Aggregate { .. }) && !delivery.chain.is_empty() {
                        // Traceability: the chain version that wrote the item.
                        item.insert(rules::CHAIN_ATTRIBUTE.into(), AttributeValue::S(delivery.chain.to_string()));
                    }
                    ok.push((index, (map, item)))
                }
                Err(reason) => report.unwritable.push(Unwritable { index, reason }),
            }
        }
        match &self.config.mode {
            TableMode::Put { order_by: Some(field) } => {
                let mut valid = Vec::with_capacity(ok.len());
                for (index, (map, item)) in ok {
                    match rules::order_value(&map, field) {
                        Ok(value) => {
                            let value = to_attribute(value);
                            valid.push((index, map, item, value));
                        }
                        Err(reason) => report.unwritable.push(Unwritable { index, reason }),
                    }
                }
                let refs: Vec<(usize, &Map<String, Value>)> = valid.iter().map(|(i, m, _, _)| (*i, m)).collect();
                let superseded = rules::superseded(&refs, &self.config.key, field);
                report.unchanged += superseded.len();
                let puts = valid.into_iter().filter(|(index, ..)| superseded.binary_search(index).is_err()).map(
                    |(index, _, item, value)| async move { (index, self.put_if_not_older(item, field, value).await) },
                );
                for done in futures_bounded(self.concurrency.max(1) * BATCH_WRITE_MAX, puts).await {
                    match done {
                        (_, Ok(true)) => report.written += 1,
                        (_, Ok(false)) => report.unchanged += 1,
                        (index, Err(Refusal::Invalid(reason))) => report.unwritable.push(Unwritable { index, reason }),
                        (index, Err(Refusal::Failed(reason))) => report.failed.push(Failed { index, reason }),
                    }
                }
            }
            TableMode::Put { order_by: None } => {
                // Later records win over earlier ones with the same key, as written in order.
                let mut slots: HashMap<Vec<String>, usize> = HashMap::new();
                let mut items: Vec<(Vec<usize>, Item)> = Vec::new();
                for (index, (map, item)) in ok {
                    let key: Vec<String> =
                        self.config.key.iter().map(|k| map.get(k).map(Value::to_string).unwrap_or_default()).collect();
                    match slots.get(&key) {
                        Some(&slot) => {
                            items[slot].0.push(index);
                            items[slot].1 = item;
                        }
                        None => {
                            slots.insert(key, items.len());
                            items.push((vec![index], item));
                        }
                    }
                }
                self.put_all(items, &mut report).await?;
            }
            TableMode::PutIfAbsent => {
                // The first record of a key in the batch wins, as in order (and as the local
                // twin does): later ones change nothing and send no request that could race it.
                let mut keys = std::collections::HashSet::new();
                let mut puts = Vec::new();
                for (index, (map, item)) in ok {
                    let key: Vec<String> =
                        self.config.key.iter().map(|k| map.get(k).map(Value::to_string).unwrap_or_default()).collect();
                    if keys.insert(key) {
                        puts.push(async move { (index, self.put_if_absent(item).await) });
                    } else {
                        report.unchanged += 1;
                    }
                }
                for done in futures_bounded(self.concurrency.max(1) * BATCH_WRITE_MAX, puts.into_iter()).await {
                    match done {
                        (_, Ok(true)) => report.written += 1,
                        (_, Ok(false)) => report.unchanged += 1,
                        (index, Err(reason)) => report.failed.push(Failed { index, reason }),
                    }
                }
            }
            TableMode::Aggregate { group_by, counters } => {
                // Group the records; a record id seen twice in one delivery is a duplicate.
                let mut groups: Vec<(AttributeValue, Vec<Member>)> = Vec::new();
                let mut slots: HashMap<String, usize> = HashMap::new();
                let mut ids = std::collections::HashSet::new();
                for (index, (map, _)) in ok {
                    match rules::deltas(&map, group_by, counters) {
                        Err(reason) => report.unwritable.push(Unwritable { index, reason }),
                        Ok((group, values)) => {
                            let id = delivery.emitted[index].record.id.clone();
                            if !ids.insert(id.clone()) {
                                report.unchanged += 1;
                                continue;
                            }
                            let slot = *slots.entry(group.to_string()).or_insert_with(|| {
                                groups.push((to_attribute(group), Vec::new()));
                                groups.len() - 1
                            });
                            groups[slot].1.push((index, id, values));
                        }
                    }
                }
                let mut work = Vec::new();
                for (group, members) in groups {
                    let mut members = members;
                    while !members.is_empty() {
                        let rest = members.split_off(members.len().min(TRANSACTION_MARKERS));
                        work.push((group.clone(), std::mem::replace(&mut members, rest)));
                    }
                }
                let results =
                    futures_bounded(self.concurrency.max(1), work.into_iter().map(|(g, m)| self.aggregate_group(g, m)))
                        .await;
                for r in results {
                    report.written += r.written.len();
                    report.unchanged += r.unchanged.len();
                    report
                        .unwritable
                        .extend(r.unwritable.into_iter().map(|(index, reason)| Unwritable { index, reason }));
                    report.failed.extend(r.failed.into_iter().map(|(index, reason)| Failed { index, reason }));
                }
            }
        }
        Ok(report)
    }
}

/// Markers per aggregate transaction (DynamoDB allows 100 items; one is the group's update).
pub const TRANSACTION_MARKERS: usize = 99;

/// One record of an aggregate group: its index in the delivery, its id, its counter deltas.
type Member = (usize, String, Vec<Decimal>);

/// What became of one group's records.
#[derive(Debug, Default)]
struct GroupResult {
    written: Vec<usize>,
    unchanged: Vec<usize>,
    unwritable: Vec<(usize, String)>,
    failed: Vec<(usize, String)>,
}

impl GroupResult {
    fn absorb(&mut self, other: GroupResult) {
        self.written.extend(other.written);
        self.unchanged.extend(other.unchanged);
        self.unwritable.extend(other.unwritable);
        self.failed.extend(other.failed);
    }
}

/// Runs futures with at most `limit` in flight, in order of completion.
/// Runs `futures` at most `limit` at a time, on the caller's task: the one concurrency pattern
/// of this sink's three modes.
async fn futures_bounded<F: std::future::Future>(limit: usize, futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    use futures_util::stream::StreamExt;
    futures_util::stream::iter(futures).buffer_unordered(limit).collect().await
}

impl Sink for DynamoTable {
    fn name(&self) -> String {
        format!("table:{}", self.config.name)
    }

    fn write<'a>(&'a mut self, delivery: &'a Delivery<'a>) -> SinkFuture<'a, SinkReport> {
        Box::pin(self.write_async(delivery))
    }
}

/// The key of a record's aggregate marker: `weir-seen#<record id>`, or, for an id too long for a
/// partition key (an object key of a kilobyte and its version), `weir-seen#sha256:<hex of the
/// id>` (no marker of the first form can have been written for such an id).
pub fn marker(id: &str) -> String {
    let plain = format!("{SEEN_PREFIX}{id}");
    if plain.len() <= rules::MAX_PARTITION_KEY_BYTES {
        plain
    } else {
        format!("{SEEN_PREFIX}sha256:{}", hex::encode(Sha256::digest(id.as_bytes())))
    }
}

/// Why one conditional write was not made.
enum Refusal {
    /// DynamoDB refused the item itself (ValidationException): unwritable, never retried.
    Invalid(String),
    /// Failed for now (throttled, unavailable): the record is retried with its input.
    Failed(String),
}

/// Why a `BatchWriteItem` group was not written.
enum GroupError {
    /// DynamoDB refused the request as invalid (`ValidationException`): some item of it can never
    /// be written as it is; no retry helps.
    Invalid(String),
    /// Anything else: retried with the inputs.
    Failed(String),
}

/// Where the records of one group ended.
#[derive(Default)]
struct Isolated {
    written: usize,
    failed: Vec<(usize, String)>,
    unwritable: Vec<(usize, String)>,
}

/// Whether a `PutItem` failed for now: not refused for what it is (its condition, its
/// content), nor unbuildable.
fn is_transient(e: &SdkError<PutItemError, HttpResponse>) -> bool {
    match e {
        SdkError::ConstructionFailure(_) => false,
        SdkError::ServiceError(s) => {
            !s.err().is_conditional_check_failed_exception() && !is_validation(s.err().meta().code())
        }
        _ => true,
    }
}

/// Whether an error code says the request itself is invalid (a retry sends the same).
fn is_validation(code: Option<&str>) -> bool {
    code == Some("ValidationException")
}

/// The idempotency token of one aggregate transaction: a digest of everything it writes (the
/// group, each record id in order, the counter deltas, the markers' expiry). DynamoDB refuses a
/// token reused with other parameters, so equal tokens must mean equal transactions.
fn transaction_token<'a>(
    group: &AttributeValue,
    ids: impl Iterator<Item = &'a str>,
    sums: &[Decimal],
    expires: Option<&str>,
) -> String {
    let mut token = Sha256::new();
    token.update(format!("{group:?}").as_bytes());
    token.update([0]);
    for id in ids {
        token.update(id.as_bytes());
        token.update([0]);
    }
    for sum in sums {
        token.update(sum.normalize().to_string().as_bytes());
        token.update([0]);
    }
    token.update(expires.unwrap_or_default().as_bytes());
    hex::encode(&token.finalize()[..18])
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
    fn item_sizes() {
        let item = HashMap::from([("pk".to_string(), AttributeValue::S("x".repeat(10)))]);
        assert_eq!(item_size(&item), 12);
    }
    #[test]
    fn a_transaction_token_covers_every_parameter() {
        let group = AttributeValue::S("u-1".into());
        let ids = || ["s3://in/a.csv#2", "s3://in/a.csv#3"].into_iter();
        let sums = [Decimal::ONE, Decimal::new(250, 2)];
        let token = transaction_token(&group, ids(), &sums, Some("1700000000"));
        assert_eq!(token, transaction_token(&group, ids(), &sums, Some("1700000000")), "a retry is recognised");
        assert_eq!(token.len(), 36, "DynamoDB allows at most 36 characters");
        // A redelivery minutes later has another expiry: another transaction.
        assert_ne!(token, transaction_token(&group, ids(), &sums, Some("1700000300")));
        assert_ne!(token, transaction_token(&group, ids().take(1), &sums, Some("1700000000")));
        assert_ne!(token, transaction_token(&group, ids(), &[Decimal::ONE, Decimal::ONE], Some("1700000000")));
        assert_ne!(token, transaction_token(&AttributeValue::S("u-2".into()), ids(), &sums, Some("1700000000")));
    }
}
