//! `bootstrap`: the weir Lambda function (see the crate docs of `weir_lambda`).
//!
//! Cold start: JSON logs, the environment read once, the AWS clients built once, the
//! deployment's bindings document read once (`WEIR_BINDINGS_KEY`), the plugin
//! chain loaded from the manifest (precompiled cache in `WEIR_CACHE_DIR`) before the first
//! event, so the init phase pays for it. Then every event goes to the same host.

use std::sync::{Arc, Mutex};

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use tracing_subscriber::EnvFilter;
use weir_host::aws::{Aws, AwsOptions};
use weir_host::pipeline::deployment::Deployment;
use weir_lambda::{Emf, Host, Settings, function_handler};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_current_span(false)
        .with_ansi(false)
        .without_time() // Lambda stamps every line
        .with_target(false)
        .init();

    let settings = Settings::from_env()?;
    // The standard SDK variables configure the clients (region, credentials); an explicit
    // AWS_ENDPOINT_URL (a local emulator) also switches S3 to path-style addressing.
    let options = AwsOptions { endpoint_url: std::env::var("AWS_ENDPOINT_URL").ok(), ..AwsOptions::default() };
    let aws = Aws::load(&options, tokio::runtime::Handle::current()).await;
    // Where each sink lives: the document terraform wrote for this pipeline (read once; a
    // changed document comes with a new function configuration, so new instances).
    let deployment = Deployment::read(&aws.s3, &settings.plugins_bucket, &settings.bindings_key).await?;
    let emf = Emf::stdout(&settings.pipeline);
    let host = Host::new(settings, deployment, aws, emf)?;
    let host = Arc::new(Mutex::new(host));
    {
        let host = host.clone();
        tokio::task::spawn_blocking(move || host.lock().unwrap_or_else(|p| p.into_inner()).refresh()).await?;
    }
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| function_handler(host.clone(), event))).await
}
