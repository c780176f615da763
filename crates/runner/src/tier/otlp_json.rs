//! OTLP JSON as Jaeger's API and the collector's file exporter write it,
//! read as far as the checks need.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use serde_json::Value;

use stitch_flow::BUSINESS_KEY;
use stitch_model::stage::tier::KeptSpan;

/// Every span in an OTLP JSON document (`{"resourceSpans": [...]}`), at any depth.
pub fn otlp_json_spans(value: &Value) -> Vec<KeptSpan> {
    let mut spans = Vec::new();
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            Value::Object(object) if object.contains_key("resourceSpans") => {
                for resource_spans in object["resourceSpans"].as_array().into_iter().flatten() {
                    let service = attribute(&resource_spans["resource"]["attributes"], "service.name")
                        .unwrap_or_else(|| "unknown".to_owned());
                    let scopes = resource_spans["scopeSpans"].as_array().into_iter().flatten();
                    for span in scopes.flat_map(|scope| scope["spans"].as_array().into_iter().flatten()) {
                        let id = |key: &str| span[key].as_str().filter(|id| !id.is_empty()).map(normalise_id);
                        let Some(trace_id) = id("traceId") else { continue };
                        spans.push(KeptSpan {
                            trace_id,
                            span_id: id("spanId").unwrap_or_default(),
                            parent_span_id: id("parentSpanId"),
                            service: service.clone(),
                            order_id: attribute(&span["attributes"], BUSINESS_KEY),
                            error: matches!(&span["status"]["code"], Value::Number(code) if code.as_u64() == Some(2))
                                || span["status"]["code"].as_str() == Some("STATUS_CODE_ERROR"),
                        });
                    }
                }
            }
            Value::Object(object) => pending.extend(object.values()),
            Value::Array(items) => pending.extend(items),
            _ => {}
        }
    }
    spans
}

/// Trace and span ids as lineage prints them: lowercase hex. OTLP JSON has
/// hex; a base64 id (protobuf's JSON mapping) is converted.
fn normalise_id(id: &str) -> String {
    if id.chars().all(|c| c.is_ascii_hexdigit()) {
        return id.to_ascii_lowercase();
    }
    // Padding is optional in what exporters write.
    STANDARD_NO_PAD
        .decode(id.trim_end_matches('='))
        .map_or_else(|_| id.to_owned(), |bytes| bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn attribute(attributes: &Value, key: &str) -> Option<String> {
    attributes.as_array()?.iter().find(|attribute| attribute["key"] == key).and_then(|attribute| {
        let value = &attribute["value"];
        value["stringValue"].as_str().map(str::to_owned).or_else(|| value.as_str().map(str::to_owned))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_spans_from_otlp_json_with_hex_or_base64_ids() {
        let document = json!({"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "consumer"}}]},
            "scopeSpans": [{"spans": [
                {"traceId": "0AF7651916CD43DD8448EB211C80319C", "spanId": "b7ad6b7169203331",
                 "parentSpanId": "", "status": {"code": 2},
                 "attributes": [{"key": "order.id", "value": {"stringValue": "ord-1"}}]},
                {"traceId": "CvdlGRbNQ92ESOshHIAxnA==", "spanId": "t61rcWkgMzE=", "status": {}}
            ]}]
        }]});
        let spans = otlp_json_spans(&document);
        assert_eq!(spans.len(), 2);
        assert!(spans.iter().all(|span| span.trace_id == "0af7651916cd43dd8448eb211c80319c"));
        let first = spans.iter().find(|span| span.order_id.is_some()).expect("the span with an order");
        assert_eq!(first.service, "consumer");
        assert_eq!(first.parent_span_id, None);
        assert!(first.error);
        let second = spans.iter().find(|span| span.order_id.is_none()).expect("the span without an order");
        assert_eq!(second.span_id, "b7ad6b7169203331");
        assert!(!second.error);
    }
}
