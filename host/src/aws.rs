//! Production I/O: AWS clients and the sinks and object store a `weir.toml` names.
//!
//! The same pipeline file drives the local run and the AWS run. Names in it are logical
//! (`orders`, `big-orders`, `orders-rejects`); [`Bindings`] maps them to the deployed resources
//! (a table name, a topic ARN, a queue URL, a bucket). Unbound, a name stands for itself: a
//! topic name is looked up among the account's topics, a queue name with `GetQueueUrl`.
//!
//! Retries: the SDK retries whole requests (standard mode, or adaptive with client-side rate
//! limiting; `max_attempts` each); the sinks retry what the SDK cannot see, the partial
//! failures inside a successful answer (`UnprocessedItems`, failed batch entries, cancelled
//! transactions), with exponential backoff and full jitter. What still fails is reported per
//! record, so the caller fails just those inputs.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::pipeline::config::Pipeline;
use crate::sink::dynamodb::DynamoTable;
use crate::sink::s3::S3Objects as S3Sink;
use crate::sink::sns::SnsTopic;
use crate::sink::sqs::{Offload, SqsDeadLetters};
use crate::sink::{DeadLetterSink, Sink};
use crate::source::objects::{ObjectFilter, Objects, S3Objects};

/// An AWS SDK error in one line: `Code: message` for an error the service answered, else the
/// chain of causes (a timeout, a dropped connection, ...).
pub fn describe<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e.as_service_error() {
        Some(service) => {
            format!("{}: {}", service.code().unwrap_or("ServiceError"), service.message().unwrap_or("(no message)"))
        }
        None => aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
    }
}

/// Something about the AWS setup is wrong.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("binding {0:?}: expected KIND.NAME=RESOURCE with KIND one of table, topic, queue, bucket")]
    Binding(String),
    #[error("{0}")]
    Missing(String),
    #[error("{what}: {message}")]
    Lookup { what: String, message: String },
}

/// How to reach AWS.
#[derive(Debug, Clone)]
pub struct AwsOptions {
    /// One endpoint for every service (a local emulator); S3 is then addressed path-style.
    pub endpoint_url: Option<String>,
    /// A separate endpoint for DynamoDB (e.g. dynalite beside moto), over `endpoint_url`.
    pub dynamodb_endpoint_url: Option<String>,
    /// Overrides the region from the environment and profile.
    pub region: Option<String>,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// Adaptive retry mode (client-side rate limiting under throttling) instead of standard.
    pub adaptive: bool,
}

impl Default for AwsOptions {
    fn default() -> Self {
        AwsOptions { endpoint_url: None, dynamodb_endpoint_url: None, region: None, max_attempts: 5, adaptive: false }
    }
}

/// Clients for every service weir uses, built once.
#[derive(Clone)]
pub struct Aws {
    pub config: SdkConfig,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// The runtime the synchronous sinks block on.
    pub runtime: tokio::runtime::Handle,
}

impl Aws {
    /// Loads credentials and region the standard way (environment, profile, container or
    /// instance role) and builds the clients. Must run inside `runtime`.
    pub async fn load(options: &AwsOptions, runtime: tokio::runtime::Handle) -> Aws {
        let retry = if options.adaptive { RetryConfig::adaptive() } else { RetryConfig::standard() }
            .with_max_attempts(options.max_attempts.max(1));
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).retry_config(retry);
        if let Some(url) = &options.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(region) = &options.region {
            loader = loader.region(Region::new(region.clone()));
        }
        let config = loader.load().await;
        let mut aws = Aws::from_config(config, options.endpoint_url.is_some(), runtime);
        if let Some(url) = &options.dynamodb_endpoint_url {
            let conf = aws_sdk_dynamodb::config::Builder::from(&aws.config).endpoint_url(url).build();
            aws.dynamodb = aws_sdk_dynamodb::Client::from_conf(conf);
        }
        aws
    }

    /// Clients from a loaded config; `path_style` for S3 emulators.
    pub fn from_config(config: SdkConfig, path_style: bool, runtime: tokio::runtime::Handle) -> Aws {
        let s3 = aws_sdk_s3::config::Builder::from(&config).force_path_style(path_style).build();
        Aws {
            s3: aws_sdk_s3::Client::from_conf(s3),
            sqs: aws_sdk_sqs::Client::new(&config),
            sns: aws_sdk_sns::Client::new(&config),
            dynamodb: aws_sdk_dynamodb::Client::new(&config),
            config,
            runtime,
        }
    }

    /// The object store for S3 events, with the pipeline's prefix/suffix filter. Objects under
    /// the pipeline's own output prefix are never read, so a pipeline cannot trigger itself.
    pub fn objects(&self, pipeline: &Pipeline, bindings: &Bindings) -> Objects {
        let mut filter = ObjectFilter {
            prefix: pipeline.source.prefix.clone(),
            suffixes: pipeline.source.suffixes.clone(),
            exclude: Vec::new(),
        };
        if let Some(o) = &pipeline.objects {
            filter.exclude.push((bindings.bucket(&o.bucket).to_string(), o.prefix.clone()));
        }
        Objects { store: Arc::new(S3Objects { client: self.s3.clone(), runtime: self.runtime.clone() }), filter }
    }

    /// A topic ARN for a name or ARN.
    pub async fn topic_arn(&self, topic: &str) -> Result<String, AwsError> {
        if topic.starts_with("arn:") {
            return Ok(topic.to_string());
        }
        let mut pages = self.sns.list_topics().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::Lookup {
                what: format!("topic {topic:?}"),
                message: format!("ListTopics: {}", describe(&e)),
            })?;
            if let Some(arn) =
                page.topics().iter().filter_map(|t| t.topic_arn()).find(|arn| arn.rsplit(':').next() == Some(topic))
            {
                return Ok(arn.to_string());
            }
        }
        Err(AwsError::Lookup {
            what: format!("topic {topic:?}"),
            message: "no such topic in this account and region".into(),
        })
    }

    /// A queue URL for a name or URL.
    pub async fn queue_url(&self, queue: &str) -> Result<String, AwsError> {
        if queue.starts_with("https://") || queue.starts_with("http://") {
            return Ok(queue.to_string());
        }
        let out = self.sqs.get_queue_url().queue_name(queue).send().await.map_err(|e| AwsError::Lookup {
            what: format!("queue {queue:?}"),
            message: format!("GetQueueUrl: {}", describe(&e)),
        })?;
        out.queue_url().map(String::from).ok_or_else(|| AwsError::Lookup {
            what: format!("queue {queue:?}"),
            message: "no URL in the answer".into(),
        })
    }

    /// The pipeline's sinks and dead-letter sink, on AWS. Must run inside the runtime, but the
    /// sinks it returns block on it: use them from a blocking thread.
    pub async fn sinks(
        &self,
        pipeline: &Pipeline,
        bindings: &Bindings,
    ) -> Result<(Vec<Box<dyn Sink>>, Box<dyn DeadLetterSink>), AwsError> {
        let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
        for t in &pipeline.tables {
            let table =
                DynamoTable::new(self.dynamodb.clone(), self.runtime.clone(), bindings.table(&t.name), t.clone());
            sinks.push(Box::new(table));
        }
        if let Some(n) = &pipeline.notify {
            let arn = self.topic_arn(bindings.topic(&n.topic)).await?;
            sinks.push(Box::new(SnsTopic::new(self.sns.clone(), self.runtime.clone(), arn, &pipeline.name, n.clone())));
        }
        if let Some(o) = &pipeline.objects {
            sinks.push(Box::new(S3Sink::new(
                self.s3.clone(),
                self.runtime.clone(),
                bindings.bucket(&o.bucket),
                o.clone(),
            )));
        }
        let Some(d) = &pipeline.dead_letter else {
            return Err(AwsError::Missing(format!(
                "{}: dead_letter: a pipeline run on AWS needs a dead-letter queue ([dead_letter] queue = \"...\")",
                pipeline.file.display()
            )));
        };
        let url = self.queue_url(bindings.queue(&d.queue)).await?;
        let offload = d.offload_bucket.as_ref().map(|b| Offload {
            client: self.s3.clone(),
            bucket: bindings.bucket(b).to_string(),
            prefix: d.offload_prefix.clone(),
        });
        Ok((sinks, Box::new(SqsDeadLetters::new(self.sqs.clone(), self.runtime.clone(), url, offload))))
    }
}

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
    pub fn parse<'a>(pairs: impl IntoIterator<Item = &'a str>) -> Result<Bindings, AwsError> {
        let mut b = Bindings::default();
        for pair in pairs {
            let (lhs, resource) = pair.split_once('=').ok_or_else(|| AwsError::Binding(pair.into()))?;
            let (kind, name) = lhs.split_once('.').ok_or_else(|| AwsError::Binding(pair.into()))?;
            if name.is_empty() || resource.is_empty() {
                return Err(AwsError::Binding(pair.into()));
            }
            b.bind(kind, name, resource).ok_or_else(|| AwsError::Binding(pair.into()))?;
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
            assert!(matches!(Bindings::parse([bad]), Err(AwsError::Binding(_))), "{bad}");
        }
    }
}
