//! OTLP JSON as Jaeger's API and the collector's file exporter write it,
//! read through `opentelemetry-proto`'s serde support into the spans the
//! checks need. A span without an id or a resource without a service is
//! an error, never a blank.

use anyhow::{Context as _, Result, bail};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::TracesData;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use serde::Deserialize;

use stitch_flow::BUSINESS_KEY;
use stitch_model::stage::tier::KeptSpan;

/// One line of the file exporter: `{"resourceSpans": [...]}`.
pub fn file_line_spans(line: &str) -> Result<Vec<KeptSpan>> {
    let data: TracesData = serde_json::from_str(line).context("not OTLP JSON traces")?;
    kept_spans(&data)
}

/// Jaeger's `GET /api/v3/traces/{id}`: `{"result": {"resourceSpans": [...]}}`.
pub fn jaeger_spans(body: &str) -> Result<Vec<KeptSpan>> {
    #[derive(Deserialize)]
    struct Answer {
        result: TracesData,
    }
    let answer: Answer =
        serde_json::from_str(body).context("Jaeger answered something that is not OTLP JSON traces")?;
    kept_spans(&answer.result)
}

/// Every span of `data`, with its service, ids, business key and error status.
pub fn kept_spans(data: &TracesData) -> Result<Vec<KeptSpan>> {
    let mut spans = Vec::new();
    for resource_spans in &data.resource_spans {
        let attributes = resource_spans.resource.as_ref().map_or(&[][..], |resource| &resource.attributes[..]);
        let service = string_attribute(attributes, "service.name").context("a resource without service.name")?;
        for span in resource_spans.scope_spans.iter().flat_map(|scope| &scope.spans) {
            let name = &span.name;
            if span.trace_id.is_empty() {
                bail!("{service}'s span {name:?} has no trace id");
            }
            if span.span_id.is_empty() {
                bail!("{service}'s span {name:?} has no span id");
            }
            spans.push(KeptSpan {
                trace_id: hex::encode(&span.trace_id),
                span_id: hex::encode(&span.span_id),
                parent_span_id: (!span.parent_span_id.is_empty()).then(|| hex::encode(&span.parent_span_id)),
                service: service.clone(),
                order_id: string_attribute(&span.attributes, BUSINESS_KEY),
                error: span.status.as_ref().is_some_and(|status| status.code == StatusCode::Error as i32),
            });
        }
    }
    Ok(spans)
}

fn string_attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|attribute| attribute.key == key).and_then(|attribute| match &attribute.value {
        Some(AnyValue { value: Some(any_value::Value::StringValue(value)) }) => Some(value.clone()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_file_exporters_line_and_jaegers_answer() {
        // Written by the pinned collector and Jaeger for the same trace.
        let kept = file_line_spans(include_str!("../../testdata/tier2-kept.jsonl").trim()).unwrap();
        let first = &kept[0];
        assert_eq!(first.trace_id, "00000000000000000000000000d610c9");
        assert_eq!((first.span_id.as_str(), first.parent_span_id.as_deref()), ("00000000000000a1", None));
        assert_eq!((first.service.as_str(), first.order_id.as_deref(), first.error), ("gateway", Some("ord-1"), true));
        let in_jaeger = jaeger_spans(include_str!("../../testdata/jaeger-trace.json")).unwrap();
        assert_eq!(in_jaeger, std::slice::from_ref(first));
    }

    #[test]
    fn parent_ids_and_statuses_are_read() {
        let line = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"worker"}}]},
            "scopeSpans":[{"spans":[{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331",
            "parentSpanId":"00f067aa0ba902b7","status":{"code":1}}]}]}]}"#;
        let spans = file_line_spans(line).unwrap();
        assert_eq!(spans[0].parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
        assert!(!spans[0].error);
        assert_eq!(spans[0].order_id, None);
    }

    #[test]
    fn a_span_without_ids_or_a_service_is_an_error() {
        let resource = r#"{"attributes":[{"key":"service.name","value":{"stringValue":"worker"}}]}"#;
        let line = |resource: &str, span: &str| {
            format!(r#"{{"resourceSpans":[{{"resource":{resource},"scopeSpans":[{{"spans":[{span}]}}]}}]}}"#)
        };
        let no_span_id = line(resource, r#"{"traceId":"0af7651916cd43dd8448eb211c80319c","name":"item"}"#);
        assert_eq!(file_line_spans(&no_span_id).unwrap_err().to_string(), "worker's span \"item\" has no span id");
        let no_trace_id = line(resource, r#"{"spanId":"b7ad6b7169203331","name":"item"}"#);
        assert_eq!(file_line_spans(&no_trace_id).unwrap_err().to_string(), "worker's span \"item\" has no trace id");
        let no_service = line("{}", r#"{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331"}"#);
        assert_eq!(file_line_spans(&no_service).unwrap_err().to_string(), "a resource without service.name");
        // Not hex (protobuf's own JSON mapping writes base64): an error, not another id.
        let base64 = line(resource, r#"{"traceId":"CvdlGRbNQ92ESOshHIAxnA==","spanId":"t61rcWkgMzE="}"#);
        assert!(file_line_spans(&base64).is_err());
    }
}
