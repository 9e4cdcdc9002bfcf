//! `weir plan`: what a pipeline file needs from a deployment (its tables with their keys, its
//! topics, object outputs and dead-letter queue, and which objects its S3 input may name), as
//! the JSON document terraform's `pipelines` variable takes. See `weir_host::pipeline::plan`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use weir_host::pipeline::Pipeline;
use weir_host::pipeline::plan::Plan;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The pipeline file (weir.toml).
    file: PathBuf,
    /// Write the plan here instead of standard output (e.g. the terraform environment's
    /// `<pipeline>.plan.json`).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    // Plugins do not matter to a deployment's resources: they are published later.
    let pipeline = Pipeline::parse_deployed(&args.file, &text)?;
    let json = Plan::of(&pipeline).to_json();
    match &args.out {
        Some(out) => {
            std::fs::write(out, &json).with_context(|| format!("writing {}", out.display()))?;
            eprintln!("wrote the plan of pipeline {:?} to {}", pipeline.name, out.display());
        }
        None => print!("{json}"),
    }
    Ok(ExitCode::SUCCESS)
}
