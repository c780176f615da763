//! The flow's command line as a value, for whoever starts its services (the
//! harness): the flags are written here, next to the parser that reads them,
//! and `cli`'s tests parse what this writes.

use std::net::SocketAddr;

use crate::Role;

/// One service of the flow and what it must be told to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launch {
    Gateway { listen: SocketAddr, worker_url: String },
    Worker { listen: SocketAddr, kafka: String },
    Consumer { listen: SocketAddr, kafka: String, group: String },
}

impl Launch {
    /// The role: the first argument, and the service's `service.name`.
    pub fn role(&self) -> Role {
        match self {
            Launch::Gateway { .. } => Role::Gateway,
            Launch::Worker { .. } => Role::Worker,
            Launch::Consumer { .. } => Role::Consumer,
        }
    }

    /// Where the service answers HTTP (`GET /healthz` among the rest).
    pub fn listen(&self) -> SocketAddr {
        match self {
            Launch::Gateway { listen, .. } | Launch::Worker { listen, .. } | Launch::Consumer { listen, .. } => *listen,
        }
    }

    /// The service's arguments, its spans exported to `otlp_endpoint`.
    pub fn args(&self, otlp_endpoint: &str) -> Vec<String> {
        let mut args = vec![self.role().name().to_owned(), "--listen".to_owned(), self.listen().to_string()];
        match self {
            Launch::Gateway { worker_url, .. } => args.extend(["--worker-url".to_owned(), worker_url.clone()]),
            Launch::Worker { kafka, .. } => args.extend(["--kafka".to_owned(), kafka.clone()]),
            Launch::Consumer { kafka, group, .. } => {
                args.extend(["--kafka".to_owned(), kafka.clone(), "--group".to_owned(), group.clone()])
            }
        }
        args.extend(["--otlp-endpoint".to_owned(), otlp_endpoint.to_owned()]);
        args
    }
}
