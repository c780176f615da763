//! OTLP protobuf read straight from the bytes: only the fields lineage keeps
//! are looked at, everything else is skipped by its length, and strings are
//! borrowed rather than copied. Decoding whole requests with every attribute
//! cost several times more than all of lineage's own work.
//!
//! Field numbers are those of `opentelemetry/proto/trace/v1/trace.proto`,
//! `common/v1/common.proto` and `collector/trace/v1/trace_service.proto`.
//! Repeated occurrences of a field follow protobuf's merge rules: the last
//! scalar wins, repeated fields and messages accumulate. Strings lineage looks
//! at (span names, attribute keys and string values) must be valid UTF-8;
//! fields it skips (events, scopes, nested values) are not inspected.

use std::borrow::Cow;

use crate::ingest::{IncomingSpan, Prepared, UNKNOWN_SERVICE};
use crate::model::{kind, span_id_from_bytes, status_code, trace_id_from_bytes};

/// Why the bytes are not an OTLP export request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WireError(pub String);

type Result<T> = std::result::Result<T, WireError>;

/// One field of a message as it sits on the wire.
#[derive(Clone, Copy)]
enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32,
}

/// Iterates over the fields of one message.
struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
    message: &'static str,
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8], message: &'static str) -> Fields<'a> {
        Fields { buf, pos: 0, message }
    }

    #[cold]
    fn error(&self, what: &str) -> WireError {
        WireError(format!("{what} in {} at byte {}", self.message, self.pos))
    }

    #[inline]
    fn varint(&mut self) -> Result<u64> {
        // Keys and short lengths fit in one byte.
        if let Some(&byte) = self.buf.get(self.pos)
            && byte < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(byte));
        }
        self.varint_slow()
    }

    #[cold]
    fn varint_slow(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(self.error("truncated varint"));
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(self.error("varint longer than 10 bytes"))
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.buf.len());
        let Some(end) = end else {
            return Err(self.error(&format!("field of {n} bytes runs past the end")));
        };
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    #[inline]
    fn next_field(&mut self) -> Result<Option<(u64, Value<'a>)>> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = key >> 3;
        if number == 0 {
            return Err(self.error("field number 0"));
        }
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => Value::Fixed64(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes"))),
            2 => {
                let len = self.varint()?;
                Value::Bytes(self.take(usize::try_from(len).map_err(|_| self.error("length overflow"))?)?)
            }
            5 => {
                self.take(4)?;
                Value::Fixed32
            }
            wire_type => return Err(self.error(&format!("unsupported wire type {wire_type} (field {number})"))),
        };
        Ok(Some((number, value)))
    }

    /// The next field as an iterator item, so that `while let` reads well.
    #[inline]
    fn next(&mut self) -> Option<Result<(u64, Value<'a>)>> {
        self.next_field().transpose()
    }
}

fn wrong_type(message: &str, field: &str) -> WireError {
    WireError(format!("{message}.{field} has the wrong wire type"))
}

fn bytes<'a>(value: Value<'a>, message: &str, field: &str) -> Result<&'a [u8]> {
    match value {
        Value::Bytes(b) => Ok(b),
        _ => Err(wrong_type(message, field)),
    }
}

fn varint(value: Value<'_>, message: &str, field: &str) -> Result<u64> {
    match value {
        Value::Varint(v) => Ok(v),
        _ => Err(wrong_type(message, field)),
    }
}

fn fixed64(value: Value<'_>, message: &str, field: &str) -> Result<u64> {
    match value {
        Value::Fixed64(v) => Ok(v),
        _ => Err(wrong_type(message, field)),
    }
}

fn utf8<'a>(bytes: &'a [u8], message: &str, field: &str) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|_| WireError(format!("{message}.{field} is not valid UTF-8")))
}

/// Extracts what the store needs from a protobuf `ExportTraceServiceRequest`;
/// invalid ids reject the span only, malformed bytes the whole request.
pub(crate) fn prepare_protobuf<'a>(body: &'a [u8], business_key: &str) -> Result<Prepared<'a>> {
    let mut prepared = Prepared::default();
    let mut request = Fields::new(body, "ExportTraceServiceRequest");
    while let Some(field) = request.next() {
        if let (1, value) = field? {
            resource_spans(bytes(value, "ExportTraceServiceRequest", "resource_spans")?, business_key, &mut prepared)?;
        }
    }
    Ok(prepared)
}

fn resource_spans<'a>(buf: &'a [u8], business_key: &str, prepared: &mut Prepared<'a>) -> Result<()> {
    // The resource may follow its spans on the wire: find the service first.
    let mut service = None;
    let mut fields = Fields::new(buf, "ResourceSpans");
    while let Some(field) = fields.next() {
        if let (1, value) = field? {
            let resource = bytes(value, "ResourceSpans", "resource")?;
            if service.is_none() {
                service = service_name(resource)?;
            }
        }
    }
    let service = service.filter(|s: &&str| !s.is_empty()).unwrap_or(UNKNOWN_SERVICE);
    let mut fields = Fields::new(buf, "ResourceSpans");
    while let Some(field) = fields.next() {
        if let (2, value) = field? {
            let mut scope = Fields::new(bytes(value, "ResourceSpans", "scope_spans")?, "ScopeSpans");
            while let Some(field) = scope.next() {
                if let (2, value) = field? {
                    span(bytes(value, "ScopeSpans", "spans")?, service, business_key, prepared)?;
                }
            }
        }
    }
    Ok(())
}

/// `service.name` of a resource: the first attribute with that key, if its value is a string.
fn service_name(resource: &[u8]) -> Result<Option<&str>> {
    let mut fields = Fields::new(resource, "Resource");
    while let Some(field) = fields.next() {
        if let (1, value) = field? {
            let (key, value) = key_value(bytes(value, "Resource", "attributes")?)?;
            if key == "service.name" {
                return match value {
                    Some(AnyValue::String(s)) => Ok(Some(s)),
                    _ => Ok(None),
                };
            }
        }
    }
    Ok(None)
}

/// The two kinds of attribute value lineage reads; others are skipped.
#[derive(Clone, Copy)]
enum AnyValue<'a> {
    String(&'a str),
    Int(i64),
    Other,
}

fn key_value(buf: &[u8]) -> Result<(&str, Option<AnyValue<'_>>)> {
    let mut key = "";
    let mut value = None;
    let mut fields = Fields::new(buf, "KeyValue");
    while let Some(field) = fields.next() {
        match field? {
            (1, v) => key = utf8(bytes(v, "KeyValue", "key")?, "KeyValue", "key")?,
            (2, v) => {
                let mut any = Fields::new(bytes(v, "KeyValue", "value")?, "AnyValue");
                // Merging an AnyValue keeps the previous variant unless this one sets another.
                let mut merged = value.unwrap_or(AnyValue::Other);
                while let Some(field) = any.next() {
                    merged = match field? {
                        (1, v) => {
                            AnyValue::String(utf8(bytes(v, "AnyValue", "string_value")?, "AnyValue", "string_value")?)
                        }
                        (3, v) => AnyValue::Int(varint(v, "AnyValue", "int_value")? as i64),
                        (2 | 4..=7, _) => AnyValue::Other,
                        _ => merged,
                    };
                }
                value = Some(merged);
            }
            _ => {}
        }
    }
    Ok((key, value))
}

fn span<'a>(buf: &'a [u8], service: &'a str, business_key: &str, prepared: &mut Prepared<'a>) -> Result<()> {
    const SPAN: &str = "Span";
    let (mut trace_id, mut span_id, mut parent_span_id): (&[u8], &[u8], &[u8]) = (&[], &[], &[]);
    let mut name = "";
    let (mut span_kind, mut start, mut end, mut status) = (0i32, 0u64, 0u64, 0i32);
    let mut key: Option<Cow<'a, str>> = None;
    let mut messaging = false;
    let mut links = Vec::new();
    let mut fields = Fields::new(buf, SPAN);
    while let Some(field) = fields.next() {
        match field? {
            (1, v) => trace_id = bytes(v, SPAN, "trace_id")?,
            (2, v) => span_id = bytes(v, SPAN, "span_id")?,
            (4, v) => parent_span_id = bytes(v, SPAN, "parent_span_id")?,
            (5, v) => name = utf8(bytes(v, SPAN, "name")?, SPAN, "name")?,
            (6, v) => span_kind = varint(v, SPAN, "kind")? as i32,
            (7, v) => start = fixed64(v, SPAN, "start_time_unix_nano")?,
            (8, v) => end = fixed64(v, SPAN, "end_time_unix_nano")?,
            (9, v) => {
                let (attribute, value) = key_value(bytes(v, SPAN, "attributes")?)?;
                if key.is_none() && attribute == business_key {
                    key = match value {
                        Some(AnyValue::String(s)) if !s.is_empty() => Some(Cow::Borrowed(s)),
                        Some(AnyValue::Int(i)) => Some(Cow::Owned(i.to_string())),
                        _ => None,
                    };
                }
                messaging |= attribute.starts_with("messaging.");
            }
            (13, v) => {
                let (mut link_trace, mut link_span): (&[u8], &[u8]) = (&[], &[]);
                let mut link = Fields::new(bytes(v, SPAN, "links")?, "Span.Link");
                while let Some(field) = link.next() {
                    match field? {
                        (1, v) => link_trace = bytes(v, "Span.Link", "trace_id")?,
                        (2, v) => link_span = bytes(v, "Span.Link", "span_id")?,
                        _ => {}
                    }
                }
                if let (Some(t), Some(s)) = (trace_id_from_bytes(link_trace), span_id_from_bytes(link_span)) {
                    links.push((t, s));
                }
            }
            (15, v) => {
                let mut fields = Fields::new(bytes(v, SPAN, "status")?, "Status");
                while let Some(field) = fields.next() {
                    if let (3, v) = field? {
                        status = varint(v, "Status", "code")? as i32;
                    }
                }
            }
            _ => {}
        }
    }
    let (Some(trace_id), Some(span_id)) = (trace_id_from_bytes(trace_id), span_id_from_bytes(span_id)) else {
        prepared.rejected += 1;
        return Ok(());
    };
    let parent_id = match parent_span_id.len() {
        0 => 0,
        // An all-zero parent id is how some SDKs spell "no parent".
        8 => span_id_from_bytes(parent_span_id).unwrap_or(0),
        _ => {
            prepared.rejected += 1;
            return Ok(());
        }
    };
    prepared.spans.push(IncomingSpan {
        trace_id,
        span_id,
        parent_id,
        service,
        name,
        start,
        end: end.max(start),
        key,
        kind: kind::from_otlp(span_kind),
        status: status_code::from_otlp(status),
        messaging,
        links,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_a_clear_error() {
        let err = prepare_protobuf(&[0x0a, 0x05, 0x01], "order.id").unwrap_err();
        assert!(err.0.contains("runs past the end in ExportTraceServiceRequest"), "{}", err.0);
        let err = prepare_protobuf(&[0x0b], "order.id").unwrap_err();
        assert!(err.0.contains("unsupported wire type 3"), "{}", err.0);
        let err = prepare_protobuf(&[0x08, 0x01], "order.id").unwrap_err();
        assert!(err.0.contains("resource_spans has the wrong wire type"), "{}", err.0);
        let err = prepare_protobuf(&[0x0a, 0x02, 0x12, 0x80], "order.id").unwrap_err();
        assert!(err.0.contains("in ResourceSpans"), "{}", err.0);
    }

    #[test]
    fn empty_request_is_valid() {
        let prepared = prepare_protobuf(&[], "order.id").unwrap();
        assert!(prepared.spans.is_empty());
    }
}
