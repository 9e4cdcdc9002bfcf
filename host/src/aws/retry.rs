//! Retrying the partial failures the SDK cannot see (`UnprocessedItems`, failed entries of a
//! batch call, cancelled transactions): exponential backoff with full jitter, and one loop that
//! sends entries in size-limited batches until each is sent, refused or out of attempts.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

/// Retry policy for partial failures (on top of the SDK's own retries of whole requests).
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Retries after the first try.
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

/// How one entry of a batch call fared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryResult {
    Sent,
    /// The service refused it for what it is (`SenderFault`): retrying cannot help.
    Refused(String),
    /// It failed this time.
    Failed(String),
}

/// A failed entry of a batch answer (`PublishBatch`, `SendMessageBatch`), as the service names it.
pub struct FailedEntry<'a> {
    /// The id the entry was sent with: its index, in decimal.
    pub id: &'a str,
    pub code: &'a str,
    pub message: Option<&'a str>,
    /// The entry itself is at fault: sending it again cannot help.
    pub sender_fault: bool,
}

impl<'a> From<&'a aws_sdk_sns::types::BatchResultErrorEntry> for FailedEntry<'a> {
    fn from(f: &'a aws_sdk_sns::types::BatchResultErrorEntry) -> Self {
        FailedEntry { id: f.id(), code: f.code(), message: f.message(), sender_fault: f.sender_fault() }
    }
}

impl<'a> From<&'a aws_sdk_sqs::types::BatchResultErrorEntry> for FailedEntry<'a> {
    fn from(f: &'a aws_sdk_sqs::types::BatchResultErrorEntry) -> Self {
        FailedEntry { id: f.id(), code: f.code(), message: f.message(), sender_fault: f.sender_fault() }
    }
}

/// Each entry's result from a batch call: `Err` (the whole request failed) fails every entry;
/// an answer lists the failed entries, and every other entry of the request was sent.
pub fn entry_results<'a>(
    request: &[usize],
    answer: Result<impl IntoIterator<Item = FailedEntry<'a>>, String>,
) -> Vec<(usize, EntryResult)> {
    let failed = match answer {
        Err(reason) => return request.iter().map(|i| (*i, EntryResult::Failed(reason.clone()))).collect(),
        Ok(failed) => failed,
    };
    let mut results: BTreeMap<usize, EntryResult> = request.iter().map(|i| (*i, EntryResult::Sent)).collect();
    for f in failed {
        let Some(slot) = f.id.parse::<usize>().ok().and_then(|i| results.get_mut(&i)) else { continue };
        let reason = format!("{}: {}", f.code, f.message.unwrap_or_default());
        *slot = if f.sender_fault { EntryResult::Refused(reason) } else { EntryResult::Failed(reason) };
    }
    results.into_iter().collect()
}

/// Limits of one batch call (SNS `PublishBatch`, SQS `SendMessageBatch`).
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub max_entries: usize,
    pub max_bytes: usize,
}

/// Where every entry ended: each index given is in exactly one list.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub sent: Vec<usize>,
    pub refused: Vec<(usize, String)>,
    /// Still failing after every retry, with the last reason.
    pub failed: Vec<(usize, String)>,
}

/// Packs entries of the given sizes, in order, into requests of at most `max_entries` entries
/// and `max_bytes` bytes. An entry larger than `max_bytes` on its own is left out: see
/// [`send_in_batches`], which refuses it.
pub fn pack(sizes: &[(usize, usize)], limits: BatchLimits) -> Vec<Vec<usize>> {
    let mut requests: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut bytes = 0;
    for &(index, size) in sizes {
        if size > limits.max_bytes {
            continue;
        }
        if current.len() == limits.max_entries || bytes + size > limits.max_bytes {
            requests.push(std::mem::take(&mut current));
            bytes = 0;
        }
        current.push(index);
        bytes += size;
    }
    if !current.is_empty() {
        requests.push(current);
    }
    requests
}

/// Sends the entries `sizes` names (index, bytes) in batches within `limits`, calling `send` once
/// per batch; entries that fail are sent again after a [`Backoff`] delay, up to its attempts.
/// An entry over `max_bytes` alone is refused without a call. Every index comes back in exactly
/// one list of the outcome.
pub async fn send_in_batches<F, Fut>(
    sizes: &[(usize, usize)],
    limits: BatchLimits,
    backoff: Backoff,
    mut send: F,
) -> BatchOutcome
where
    F: FnMut(Vec<usize>) -> Fut,
    Fut: Future<Output = Vec<(usize, EntryResult)>>,
{
    let mut outcome = BatchOutcome::default();
    let size: BTreeMap<usize, usize> = sizes.iter().copied().collect();
    let mut pending = Vec::with_capacity(sizes.len());
    for &(index, bytes) in sizes {
        if bytes > limits.max_bytes {
            outcome
                .refused
                .push((index, format!("{bytes} bytes, over the {} bytes a request may carry", limits.max_bytes)));
        } else {
            pending.push(index);
        }
    }
    let mut last_reason: BTreeMap<usize, String> = BTreeMap::new();
    for attempt in 0..=backoff.attempts {
        if pending.is_empty() {
            break;
        }
        if attempt > 0 {
            tokio::time::sleep(backoff.delay(attempt - 1)).await;
        }
        let batch: Vec<(usize, usize)> = pending.iter().map(|i| (*i, size[i])).collect();
        let mut retry = Vec::new();
        for request in pack(&batch, limits) {
            let mut answered: Vec<usize> = Vec::with_capacity(request.len());
            for (index, result) in send(request.clone()).await {
                answered.push(index);
                match result {
                    EntryResult::Sent => outcome.sent.push(index),
                    EntryResult::Refused(reason) => outcome.refused.push((index, reason)),
                    EntryResult::Failed(reason) => {
                        last_reason.insert(index, reason);
                        retry.push(index);
                    }
                }
            }
            // An entry the answer does not mention was not sent.
            for index in request.into_iter().filter(|i| !answered.contains(i)) {
                last_reason.insert(index, "not in the service's answer".into());
                retry.push(index);
            }
        }
        pending = retry;
    }
    outcome.failed = pending
        .into_iter()
        .map(|index| (index, last_reason.remove(&index).unwrap_or_else(|| "not sent".into())))
        .collect();
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: BatchLimits = BatchLimits { max_entries: 10, max_bytes: 262_144 };

    #[test]
    fn backoff_stays_under_its_cap() {
        let b = Backoff::default();
        for attempt in 0..20 {
            assert!(b.delay(attempt) <= b.max);
        }
        assert!(b.delay(0) <= Duration::from_millis(50));
    }

    #[test]
    fn packs_by_count_and_bytes() {
        let sizes: Vec<(usize, usize)> = (0..23).map(|i| (i, 10)).collect();
        let packed = pack(&sizes, BatchLimits { max_entries: 10, max_bytes: 1000 });
        assert_eq!(packed.iter().map(Vec::len).collect::<Vec<_>>(), vec![10, 10, 3]);
        let sizes = [(0, 100_000), (1, 100_000), (2, 100_000), (3, 300_000), (4, 162_144), (5, 1)];
        assert_eq!(pack(&sizes, LIMITS), vec![vec![0, 1], vec![2, 4], vec![5]]);
    }

    #[test]
    fn a_batch_answer_names_its_failed_entries_and_the_rest_were_sent() {
        let failed = |id, sender_fault| FailedEntry { id, code: "Oops", message: Some("no"), sender_fault };
        let results = entry_results(&[3, 4, 5], Ok(vec![failed("4", false), failed("5", true), failed("9", true)]));
        assert_eq!(
            results,
            [
                (3, EntryResult::Sent),
                (4, EntryResult::Failed("Oops: no".into())),
                (5, EntryResult::Refused("Oops: no".into()))
            ]
        );
        let none: Result<Vec<FailedEntry>, String> = Err("timeout".into());
        assert_eq!(entry_results(&[1], none), [(1, EntryResult::Failed("timeout".into()))]);
    }

    /// Failed entries are retried alone, refused and oversize ones are not, entries an answer
    /// leaves out count as failed, and every entry ends in exactly one list.
    #[test]
    fn every_entry_ends_sent_refused_or_failed() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let backoff = Backoff { attempts: 3, base: Duration::from_millis(1), max: Duration::from_millis(2) };
        let sizes: Vec<(usize, usize)> = (0..25).map(|i| (i, if i == 7 { 300_000 } else { 100 })).collect();
        let mut calls: Vec<Vec<usize>> = Vec::new();
        let mut tries = BTreeMap::<usize, u32>::new();
        let outcome = rt.block_on(send_in_batches(&sizes, LIMITS, backoff, |batch| {
            calls.push(batch.clone());
            let answers: Vec<(usize, EntryResult)> = batch
                .iter()
                .filter(|i| **i != 11) // never answered
                .map(|&i| {
                    let n = tries.entry(i).or_default();
                    *n += 1;
                    let result = match i {
                        3 => EntryResult::Refused("InvalidParameter".into()),
                        5 if *n < 3 => EntryResult::Failed("Throttled".into()),
                        9 => EntryResult::Failed("InternalError".into()),
                        _ => EntryResult::Sent,
                    };
                    (i, result)
                })
                .collect();
            async move { answers }
        }));
        assert!(calls.iter().all(|c| c.len() <= 10 && !c.contains(&7)));
        assert_eq!(outcome.refused.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![7, 3]);
        assert_eq!(
            outcome.failed,
            vec![(9, "InternalError".to_string()), (11, "not in the service's answer".to_string())]
        );
        assert_eq!(tries[&5], 3);
        assert_eq!(tries[&9], 4, "the first try and three retries");
        let mut all: Vec<usize> = outcome
            .sent
            .iter()
            .copied()
            .chain(outcome.refused.iter().map(|(i, _)| *i))
            .chain(outcome.failed.iter().map(|(i, _)| *i))
            .collect();
        all.sort();
        assert_eq!(all, (0..25).collect::<Vec<_>>());
    }
}
