//! Decoding OTLP payloads and turning OTLP spans into what the store keeps.

use std::borrow::Cow;
use std::fmt;
use std::io::Read;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;

use crate::model::{SpanId, TraceId, kind, span_id_from_bytes, status_code, trace_id_from_bytes};

/// Why a whole payload was refused. Used as the `reason` label of
/// `lineage_rejected_payloads_total` and as the key of `Report::rejected`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// The body (or its decompressed form) exceeds `max_payload_bytes`.
    TooLarge,
    /// Not valid OTLP protobuf/JSON (includes invalid UTF-8 in strings).
    Malformed,
    /// OTLP/HTTP content type other than protobuf or JSON.
    UnsupportedContentType,
    /// Content encoding other than gzip or identity.
    UnsupportedEncoding,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::TooLarge => "too-large",
            RejectReason::Malformed => "malformed",
            RejectReason::UnsupportedContentType => "unsupported-content-type",
            RejectReason::UnsupportedEncoding => "unsupported-encoding",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reason label of spans refused one by one (`lineage_rejected_spans_total`).
pub const INVALID_ID: &str = "invalid-id";

/// Wire format of an OTLP/HTTP body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadFormat {
    Protobuf,
    Json,
}

impl PayloadFormat {
    /// Maps a `Content-Type` header to a format; parameters such as `charset` are ignored.
    pub fn from_content_type(content_type: Option<&str>) -> Result<PayloadFormat, PayloadError> {
        let Some(content_type) = content_type else {
            return Err(PayloadError::UnsupportedContentType("none".into()));
        };
        let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match mime.as_str() {
            "application/x-protobuf" | "application/protobuf" => Ok(PayloadFormat::Protobuf),
            "application/json" => Ok(PayloadFormat::Json),
            _ => Err(PayloadError::UnsupportedContentType(content_type.to_owned())),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            PayloadFormat::Protobuf => "application/x-protobuf",
            PayloadFormat::Json => "application/json",
        }
    }
}

/// A payload refused as a whole; the store is left untouched.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum PayloadError {
    #[error("payload of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: u64, limit: usize },
    #[error("payload exceeds the limit of {limit} bytes")]
    TooLargeStream { limit: usize },
    #[error("unsupported content type {0:?}: OTLP/HTTP accepts application/x-protobuf or application/json")]
    UnsupportedContentType(String),
    #[error("unsupported content encoding {0:?}: send gzip or uncompressed bodies")]
    UnsupportedEncoding(String),
    #[error("malformed gzip body: {0}")]
    BadGzip(String),
    #[error("malformed OTLP protobuf: {0}")]
    MalformedProtobuf(String),
    #[error("malformed OTLP JSON: {0}")]
    MalformedJson(String),
    #[error("could not read the request body: {0}")]
    Unreadable(String),
}

impl PayloadError {
    pub fn reason(&self) -> RejectReason {
        match self {
            PayloadError::TooLarge { .. } | PayloadError::TooLargeStream { .. } => RejectReason::TooLarge,
            PayloadError::UnsupportedContentType(_) => RejectReason::UnsupportedContentType,
            PayloadError::UnsupportedEncoding(_) => RejectReason::UnsupportedEncoding,
            PayloadError::BadGzip(_)
            | PayloadError::MalformedProtobuf(_)
            | PayloadError::MalformedJson(_)
            | PayloadError::Unreadable(_) => RejectReason::Malformed,
        }
    }

    /// The OTLP/HTTP status code for this error.
    pub fn http_status(&self) -> u16 {
        match self.reason() {
            RejectReason::TooLarge => 413,
            RejectReason::UnsupportedContentType | RejectReason::UnsupportedEncoding => 415,
            RejectReason::Malformed => 400,
        }
    }
}

/// Content encodings the receivers accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentEncoding {
    Identity,
    Gzip,
}

impl ContentEncoding {
    pub fn from_header(value: Option<&str>) -> Result<ContentEncoding, PayloadError> {
        match value.map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(ContentEncoding::Identity),
            Some(v) if v.is_empty() || v == "identity" => Ok(ContentEncoding::Identity),
            Some(v) if v == "gzip" || v == "x-gzip" => Ok(ContentEncoding::Gzip),
            Some(v) => Err(PayloadError::UnsupportedEncoding(v)),
        }
    }
}

/// Decodes an OTLP/HTTP body, enforcing `limit` on the compressed and the
/// decompressed size. Never panics, whatever the bytes.
pub fn decode_payload(
    body: &[u8],
    format: PayloadFormat,
    encoding: ContentEncoding,
    limit: usize,
) -> Result<ExportTraceServiceRequest, PayloadError> {
    decode_request(&inflate(body, encoding, limit)?, format)
}

/// The uncompressed body, enforcing `limit` on the compressed and the decompressed size.
pub fn inflate(body: &[u8], encoding: ContentEncoding, limit: usize) -> Result<Cow<'_, [u8]>, PayloadError> {
    if body.len() > limit {
        return Err(PayloadError::TooLarge { size: body.len() as u64, limit });
    }
    match encoding {
        ContentEncoding::Identity => Ok(Cow::Borrowed(body)),
        ContentEncoding::Gzip => {
            let mut inflated = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
            flate2::read::MultiGzDecoder::new(body)
                .take(limit as u64 + 1)
                .read_to_end(&mut inflated)
                .map_err(|e| PayloadError::BadGzip(e.to_string()))?;
            if inflated.len() > limit {
                return Err(PayloadError::TooLargeStream { limit });
            }
            Ok(Cow::Owned(inflated))
        }
    }
}

/// Decodes an uncompressed OTLP trace export request.
pub fn decode_request(body: &[u8], format: PayloadFormat) -> Result<ExportTraceServiceRequest, PayloadError> {
    match format {
        PayloadFormat::Protobuf => {
            ExportTraceServiceRequest::decode(body).map_err(|e| PayloadError::MalformedProtobuf(e.to_string()))
        }
        PayloadFormat::Json => serde_json::from_slice(body).map_err(|e| PayloadError::MalformedJson(e.to_string())),
    }
}

/// Encodes the export response in the format of the request.
pub fn encode_response(response: &ExportTraceServiceResponse, format: PayloadFormat) -> Vec<u8> {
    match format {
        PayloadFormat::Protobuf => response.encode_to_vec(),
        PayloadFormat::Json => match &response.partial_success {
            Some(partial) => serde_json::to_vec(&JsonResponse {
                partial_success: JsonPartialSuccess {
                    rejected_spans: partial.rejected_spans.to_string(),
                    error_message: &partial.error_message,
                },
            })
            .expect("two strings serialize"),
            None => b"{}".to_vec(),
        },
    }
}

/// The OTLP/JSON response to a partly refused export, its fields in the
/// order the spec lists them whatever `serde_json`'s features (a map's key
/// order depends on them).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonResponse<'a> {
    partial_success: JsonPartialSuccess<'a>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonPartialSuccess<'a> {
    /// An int64, which OTLP/JSON writes as a string.
    rejected_spans: String,
    error_message: &'a str,
}

/// What one export request did to the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    /// Spans stored (first copies).
    pub accepted: u64,
    /// Spans refused one by one (empty, malformed or all-zero ids).
    pub rejected: u64,
    /// Spans already held (same trace id and span id); the first copy is kept.
    pub duplicates: u64,
    /// Accepted spans whose trace had already settled.
    pub late: u64,
}

impl IngestOutcome {
    /// The OTLP response: `partial_success` is set only when spans were refused.
    pub fn response(&self) -> ExportTraceServiceResponse {
        ExportTraceServiceResponse {
            partial_success: (self.rejected > 0).then(|| ExportTracePartialSuccess {
                rejected_spans: self.rejected as i64,
                error_message: self.error_message(),
            }),
        }
    }

    pub fn error_message(&self) -> String {
        if self.rejected == 0 {
            return String::new();
        }
        format!(
            "{} span(s) rejected ({INVALID_ID}): trace id must be 16 bytes and span id 8 bytes, \
             not all zero; parent span id empty or 8 bytes",
            self.rejected
        )
    }
}

/// One valid span borrowed from a decoded request, ready to be stored.
#[derive(Debug)]
pub(crate) struct IncomingSpan<'a> {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_id: SpanId,
    pub service: &'a str,
    pub name: &'a str,
    pub start: u64,
    pub end: u64,
    pub key: Option<Cow<'a, str>>,
    pub kind: u8,
    pub status: u8,
    pub messaging: bool,
    pub links: Vec<(TraceId, SpanId)>,
}

#[derive(Debug, Default)]
pub(crate) struct Prepared<'a> {
    pub spans: Vec<IncomingSpan<'a>>,
    pub rejected: u64,
}

pub(crate) const UNKNOWN_SERVICE: &str = "unknown_service";

/// Reads only what the store needs from a protobuf export request (see
/// `wire`); invalid ids reject the span only, malformed bytes the request.
pub(crate) fn prepare_protobuf<'a>(body: &'a [u8], business_key: &str) -> Result<Prepared<'a>, PayloadError> {
    crate::wire::prepare_protobuf(body, business_key).map_err(|e| PayloadError::MalformedProtobuf(e.0))
}

/// Extracts what the store needs from every span; invalid ids reject the span only.
pub(crate) fn prepare<'a>(request: &'a ExportTraceServiceRequest, business_key: &str) -> Prepared<'a> {
    let total: usize =
        request.resource_spans.iter().flat_map(|rs| rs.scope_spans.iter()).map(|ss| ss.spans.len()).sum();
    let mut prepared = Prepared { spans: Vec::with_capacity(total), rejected: 0 };
    for resource_spans in &request.resource_spans {
        let service = resource_spans
            .resource
            .as_ref()
            .and_then(|r| string_attribute(&r.attributes, "service.name"))
            .filter(|s| !s.is_empty())
            .unwrap_or(UNKNOWN_SERVICE);
        for span in resource_spans.scope_spans.iter().flat_map(|ss| ss.spans.iter()) {
            let (Some(trace_id), Some(span_id)) =
                (trace_id_from_bytes(&span.trace_id), span_id_from_bytes(&span.span_id))
            else {
                prepared.rejected += 1;
                continue;
            };
            let parent_id = match span.parent_span_id.len() {
                0 => 0,
                // An all-zero parent id is how some SDKs spell "no parent".
                8 => span_id_from_bytes(&span.parent_span_id).unwrap_or(0),
                _ => {
                    prepared.rejected += 1;
                    continue;
                }
            };
            let mut key = None;
            let mut messaging = false;
            for attribute in &span.attributes {
                if key.is_none() && attribute.key == business_key {
                    key = attribute.value.as_ref().and_then(key_value);
                }
                messaging |= attribute.key.starts_with("messaging.");
            }
            let links = span
                .links
                .iter()
                .filter_map(|link| Some((trace_id_from_bytes(&link.trace_id)?, span_id_from_bytes(&link.span_id)?)))
                .collect();
            prepared.spans.push(IncomingSpan {
                trace_id,
                span_id,
                parent_id,
                service,
                name: &span.name,
                start: span.start_time_unix_nano,
                end: span.end_time_unix_nano.max(span.start_time_unix_nano),
                key,
                kind: kind::from_otlp(span.kind),
                status: status_code::from_otlp(span.status.as_ref().map_or(0, |s| s.code)),
                messaging,
                links,
            });
        }
    }
    prepared
}

fn string_attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| match &kv.value {
        Some(AnyValue { value: Some(any_value::Value::StringValue(s)) }) => Some(s.as_str()),
        _ => None,
    })
}

fn key_value(value: &AnyValue) -> Option<Cow<'_, str>> {
    match value.value.as_ref()? {
        any_value::Value::StringValue(s) if !s.is_empty() => Some(Cow::Borrowed(s.as_str())),
        any_value::Value::IntValue(i) => Some(Cow::Owned(i.to_string())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_parsing() {
        assert_eq!(PayloadFormat::from_content_type(Some("application/json; charset=utf-8")), Ok(PayloadFormat::Json));
        assert_eq!(PayloadFormat::from_content_type(Some("Application/X-Protobuf")), Ok(PayloadFormat::Protobuf));
        assert!(PayloadFormat::from_content_type(Some("text/plain")).is_err());
        assert!(PayloadFormat::from_content_type(None).is_err());
    }

    #[test]
    fn gzip_bomb_is_bounded() {
        use std::io::Write;
        let zeros = vec![0u8; 1 << 20];
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&zeros).unwrap();
        let compressed = encoder.finish().unwrap();
        let err = decode_payload(&compressed, PayloadFormat::Protobuf, ContentEncoding::Gzip, 4096).unwrap_err();
        assert_eq!(err.reason(), RejectReason::TooLarge);
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for format in [PayloadFormat::Protobuf, PayloadFormat::Json] {
            let err = decode_payload(&[0xff, 0x01, 0x02], format, ContentEncoding::Identity, 1024).unwrap_err();
            assert_eq!(err.reason(), RejectReason::Malformed);
            assert_eq!(err.http_status(), 400);
        }
        let err = decode_payload(b"not gzip", PayloadFormat::Json, ContentEncoding::Gzip, 1024).unwrap_err();
        assert_eq!(err.reason(), RejectReason::Malformed);
    }
}
