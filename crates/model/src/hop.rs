//! A span as the shape checks see it: the service that made it and its kind.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A span's kind, as OpenTelemetry names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpanKind {
    Server,
    Client,
    Internal,
    Producer,
    Consumer,
    Unspecified,
}

impl SpanKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Server => "server",
            SpanKind::Client => "client",
            SpanKind::Internal => "internal",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
            SpanKind::Unspecified => "unspecified",
        }
    }
}

impl fmt::Display for SpanKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SpanKind {
    type Err = String;

    /// Lineage's names, in any case (`SERVER`, `server`).
    fn from_str(text: &str) -> Result<SpanKind, String> {
        Ok(match text.to_ascii_lowercase().as_str() {
            "server" => SpanKind::Server,
            "client" => SpanKind::Client,
            "internal" => SpanKind::Internal,
            "producer" => SpanKind::Producer,
            "consumer" => SpanKind::Consumer,
            "unspecified" => SpanKind::Unspecified,
            other => return Err(format!("{other:?} is not a span kind")),
        })
    }
}

/// A service and a span kind: one hop of a request, `service:kind`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Hop {
    pub service: String,
    pub kind: SpanKind,
}

impl Hop {
    pub fn new(service: &str, kind: SpanKind) -> Hop {
        Hop { service: service.to_owned(), kind }
    }
}

impl fmt::Display for Hop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.service, self.kind)
    }
}

impl FromStr for Hop {
    type Err = String;

    /// `gateway:server`.
    fn from_str(text: &str) -> Result<Hop, String> {
        let (service, kind) = text.split_once(':').ok_or_else(|| format!("{text:?} is not `service:kind`"))?;
        if service.is_empty() {
            return Err(format!("{text:?} names no service"));
        }
        Ok(Hop { service: service.to_owned(), kind: kind.parse()? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hop_reads_and_writes_as_service_colon_kind() {
        let hop: Hop = "gateway:SERVER".parse().unwrap();
        assert_eq!(hop, Hop::new("gateway", SpanKind::Server));
        assert_eq!(hop.to_string(), "gateway:server");
        assert!("gateway".parse::<Hop>().is_err());
        assert!(":server".parse::<Hop>().is_err());
        assert!("gateway:sideways".parse::<Hop>().unwrap_err().contains("sideways"));
    }
}
