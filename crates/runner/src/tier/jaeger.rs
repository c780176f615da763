//! Jaeger's query API, as the tier's checks read it back.

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use super::{KeptSpan, otlp_json_spans};

/// One trace from Jaeger's API, or `None` when Jaeger does not have it.
pub fn jaeger_trace(base: &str, trace_id: &str) -> Result<Option<Vec<KeptSpan>>> {
    let (status, body) = crate::process::http_get_status(&format!("{base}/api/v3/traces/{trace_id}"))?;
    match status {
        404 => Ok(None),
        200 => {
            let value: Value = serde_json::from_str(&body).context("Jaeger answered something that is not JSON")?;
            let spans = otlp_json_spans(&value);
            Ok((!spans.is_empty()).then_some(spans))
        }
        other => bail!("Jaeger answered {other} for trace {trace_id}: {}", body.chars().take(300).collect::<String>()),
    }
}
