//! Bindings: the logical names of a `weir.toml` (`orders`, `big-orders`, `orders-rejects`)
//! mapped to deployed resources (a table name, a topic ARN, a queue URL, a bucket). Unbound, a
//! name stands for itself: a topic name is looked up among the account's topics, a queue name
//! with `GetQueueUrl` (see [`super::build`]).

use std::collections::BTreeMap;

/// A `--bind` argument that is not `KIND.NAME=RESOURCE`.
#[derive(Debug, thiserror::Error)]
#[error("binding {0:?}: expected KIND.NAME=RESOURCE with KIND one of table, topic, queue, bucket")]
pub struct BindingError(pub String);

/// Logical names in `weir.toml` -> deployed resources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bindings {
    tables: BTreeMap<String, String>,
    topics: BTreeMap<String, String>,
    queues: BTreeMap<String, String>,
    buckets: BTreeMap<String, String>,
}

impl Bindings {
    /// Parses `KIND.NAME=RESOURCE` pairs (`table.orders=prod-orders`).
    pub fn parse<'a>(pairs: impl IntoIterator<Item = &'a str>) -> Result<Bindings, BindingError> {
        let mut b = Bindings::default();
        for pair in pairs {
            let (lhs, resource) = pair.split_once('=').ok_or_else(|| BindingError(pair.into()))?;
            let (kind, name) = lhs.split_once('.').ok_or_else(|| BindingError(pair.into()))?;
            if name.is_empty() || resource.is_empty() {
                return Err(BindingError(pair.into()));
            }
            b.bind(kind, name, resource).ok_or_else(|| BindingError(pair.into()))?;
        }
        Ok(b)
    }

    /// Binds one name; `None` for an unknown kind.
    pub fn bind(&mut self, kind: &str, name: &str, resource: &str) -> Option<()> {
        let map = match kind {
            "table" => &mut self.tables,
            "topic" => &mut self.topics,
            "queue" => &mut self.queues,
            "bucket" => &mut self.buckets,
            _ => return None,
        };
        map.insert(name.to_string(), resource.to_string());
        Some(())
    }

    pub fn table<'a>(&'a self, name: &'a str) -> &'a str {
        self.tables.get(name).map(String::as_str).unwrap_or(name)
    }
    pub fn topic<'a>(&'a self, name: &'a str) -> &'a str {
        self.topics.get(name).map(String::as_str).unwrap_or(name)
    }
    pub fn queue<'a>(&'a self, name: &'a str) -> &'a str {
        self.queues.get(name).map(String::as_str).unwrap_or(name)
    }
    pub fn bucket<'a>(&'a self, name: &'a str) -> &'a str {
        self.buckets.get(name).map(String::as_str).unwrap_or(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_parse_and_default_to_the_name() {
        let b = Bindings::parse(["table.orders=prod-orders", "queue.rejects=https://sqs/q"]).unwrap();
        assert_eq!(b.table("orders"), "prod-orders");
        assert_eq!(b.table("other"), "other");
        assert_eq!(b.queue("rejects"), "https://sqs/q");
        for bad in ["orders=x", "lake.orders=x", "table.=x", "table.orders="] {
            assert!(matches!(Bindings::parse([bad]), Err(BindingError(_))), "{bad}");
        }
    }
}
