//! A span as the shape checks see it: the service that made it and its kind.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A span's kind, as OpenTelemetry names them; read in any case (lineage
/// writes `SERVER`), written in lower case.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase", ascii_case_insensitive)]
pub enum SpanKind {
    Server,
    Client,
    Internal,
    Producer,
    Consumer,
    Unspecified,
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

    /// The hop of one of the flow's services.
    pub fn of(role: stitch_flow::Role, kind: SpanKind) -> Hop {
        Hop::new(role.name(), kind)
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
        let kind = kind.parse().map_err(|_| format!("{kind:?} is not a span kind"))?;
        Ok(Hop { service: service.to_owned(), kind })
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
