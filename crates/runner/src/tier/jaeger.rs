//! Jaeger's query API, as the tier's checks read it back.

use anyhow::{Result, bail};

use super::KeptSpan;
use super::otlp_json::jaeger_spans;

/// One trace from Jaeger's API, or `None` when Jaeger does not have it.
pub fn jaeger_trace(base: &str, trace_id: &str) -> Result<Option<Vec<KeptSpan>>> {
    let (status, body) = crate::process::http_get_status(&format!("{base}/api/v3/traces/{trace_id}"))?;
    match status {
        404 => Ok(None),
        200 => {
            let spans = jaeger_spans(&body)?;
            if spans.is_empty() {
                bail!("Jaeger answered trace {trace_id} with no span");
            }
            Ok(Some(spans))
        }
        other => bail!("Jaeger answered {other} for trace {trace_id}: {}", body.chars().take(300).collect::<String>()),
    }
}
