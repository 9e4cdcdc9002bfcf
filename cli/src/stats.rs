//! `weir stats`: aggregates read back from a run's embedded database.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

use anyhow::bail;
use rust_decimal::Decimal;
use weir_host::sink::table::sqlite::{Database, aggregate_tables, read_aggregates};

#[derive(clap::Args)]
pub struct Args {
    /// The run's output directory.
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// Only this aggregate table.
    #[arg(long)]
    table: Option<String>,
    /// Only this group key (e.g. one user).
    #[arg(long)]
    key: Option<String>,
    /// Groups to list per table, largest first by the first counter (0 = all).
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn dec(s: &str) -> f64 {
    f64::from_str(s).unwrap_or(0.0)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !args.out.join("weir.db").exists() {
        bail!(
            "{} has no weir.db; run a pipeline with a table sink first (weir run ... --out {})",
            args.out.display(),
            args.out.display()
        );
    }
    let db = Database::open(&args.out)?;
    let mut tables = aggregate_tables(&db)?;
    if let Some(t) = &args.table {
        if !tables.contains(t) {
            bail!("no aggregate table `{t}` (have: {})", tables.join(", "));
        }
        tables = vec![t.clone()];
    }
    let mut report = serde_json::Map::new();
    for table in &tables {
        let mut groups = read_aggregates(&db, table)?;
        if let Some(k) = &args.key {
            groups.retain(|g| &g.key == k);
        }
        let mut totals: BTreeMap<String, Decimal> = BTreeMap::new();
        for g in &groups {
            for (c, v) in &g.counters {
                *totals.entry(c.clone()).or_default() += Decimal::from_str_exact(v).unwrap_or_default();
            }
        }
        let first = groups.first().and_then(|g| g.counters.keys().next().cloned());
        if let Some(first) = &first {
            groups.sort_by(|a, b| {
                let va = a.counters.get(first).map(|v| dec(v)).unwrap_or(0.0);
                let vb = b.counters.get(first).map(|v| dec(v)).unwrap_or(0.0);
                vb.partial_cmp(&va).unwrap_or(std::cmp::Ordering::Equal).then_with(|| a.key.cmp(&b.key))
            });
        }
        let shown: Vec<_> =
            if args.top == 0 { groups.iter().collect() } else { groups.iter().take(args.top).collect() };
        if args.json {
            report.insert(
                table.clone(),
                serde_json::json!({
                    "groups": groups.len(),
                    "totals": totals.iter().map(|(k, v)| (k.clone(), v.normalize().to_string())).collect::<BTreeMap<_, _>>(),
                    "top": shown,
                }),
            );
            continue;
        }
        println!("{table}: {} groups", groups.len());
        let names: Vec<&String> = totals.keys().collect();
        print!("  {:<24}", "key");
        for n in &names {
            print!(" {n:>16}");
        }
        println!();
        for g in shown {
            print!("  {:<24}", g.key);
            for n in &names {
                print!(" {:>16}", g.counters.get(*n).map(String::as_str).unwrap_or("0"));
            }
            println!();
        }
        print!("  {:<24}", "TOTAL");
        for n in &names {
            print!(" {:>16}", totals[*n].normalize().to_string());
        }
        println!();
        if let Some(count) = names.iter().find(|n| n.as_str() == "orders" || n.as_str() == "count") {
            let c = dec(&totals[*count].to_string());
            for n in names.iter().filter(|n| *n != count) {
                if c > 0.0 {
                    println!("  average {n} per {count}: {:.2}", dec(&totals[*n].to_string()) / c);
                }
            }
        }
        println!();
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(ExitCode::SUCCESS)
}
