//! `otlp-replay`: replays the flow's spans to an OTLP/HTTP receiver as fast
//! as it takes them, then prints what was sent as one JSON object.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use stitch_otlp_replay::{Template, replay};

#[derive(Parser)]
#[command(about = "Replays pre-encoded OTLP/protobuf export requests, fresh trace ids in each, to an OTLP/HTTP URL")]
struct Args {
    /// The receiver's traces URL, e.g. http://127.0.0.1:4318/v1/traces.
    #[arg(long)]
    url: String,
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Keep-alive connections kept busy at once.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Traces of the flow's 6 spans per request.
    #[arg(long, default_value_t = 85)]
    traces_per_request: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !(args.seconds.is_finite() && args.seconds > 0.0) {
        anyhow::bail!("--seconds {}: expected a positive number", args.seconds);
    }
    let template = Arc::new(Template::new(args.traces_per_request)?);
    let sent = replay(template, &args.url, args.connections, Duration::from_secs_f64(args.seconds))?;
    println!("{}", serde_json::to_string(&sent)?);
    Ok(())
}
