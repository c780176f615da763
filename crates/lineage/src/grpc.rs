//! The OTLP/gRPC receiver: the tonic server and its `TraceService`, which
//! takes each request as raw bytes so that `wire` reads only the fields
//! lineage keeps instead of decoding every attribute into owned messages first.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use prost::bytes::Buf;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{Body, BoxFuture, Bytes, StdError, http};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};

use crate::ingest::RejectReason;
use crate::server::{Shared, until_stopped};

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Serves OTLP/gRPC on `listener` until `stopped` turns true.
pub(crate) fn spawn(
    listener: TcpListener,
    shared: Arc<Shared>,
    max_payload_bytes: usize,
    stopped: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let service = RejectionCounting { inner: TraceService::new(shared.clone(), max_payload_bytes), shared };
    tokio::spawn(async move {
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let result = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, until_stopped(stopped))
            .await;
        if let Err(e) = result {
            tracing::error!("OTLP/gRPC server failed: {e}");
        }
    })
}

/// Serves `TraceService/Export`; anything else is `Unimplemented`.
#[derive(Clone)]
struct TraceService {
    shared: Arc<Shared>,
    max_decoding_message_size: usize,
}

impl TraceService {
    pub fn new(shared: Arc<Shared>, max_decoding_message_size: usize) -> TraceService {
        TraceService { shared, max_decoding_message_size }
    }
}

impl NamedService for TraceService {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl<B> tonic::codegen::Service<http::Request<B>> for TraceService
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != EXPORT_PATH {
            return Box::pin(async { Ok(Status::unimplemented("only TraceService/Export is served").into_http()) });
        }
        let export = Export(self.shared.clone());
        let limit = self.max_decoding_message_size;
        Box::pin(async move {
            let mut grpc = Grpc::new(RawRequestCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(limit);
            Ok(grpc.unary(export, request).await)
        })
    }
}

struct Export(Arc<Shared>);

impl UnaryService<Bytes> for Export {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<Response<ExportTraceServiceResponse>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let shared = self.0.clone();
        Box::pin(async move {
            match shared.ingest_protobuf(request.get_ref()) {
                Ok(outcome) => Ok(Response::new(outcome.response())),
                Err(error) => {
                    shared.reject(error.reason());
                    Err(Status::invalid_argument(error.to_string()))
                }
            }
        })
    }
}

/// Requests stay bytes; responses are encoded with prost.
struct RawRequestCodec;

impl Codec for RawRequestCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = Bytes;
    type Encoder = ResponseEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> ResponseEncoder {
        ResponseEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

struct ResponseEncoder;

impl Encoder for ResponseEncoder {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn encode(&mut self, item: ExportTraceServiceResponse, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst).map_err(|e| Status::internal(format!("encoding the export response: {e}")))
    }
}

struct RawDecoder;

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// Counts payloads that tonic refuses before the handler runs (too large,
/// unsupported compression); malformed protobuf is counted by the handler.
#[derive(Clone)]
struct RejectionCounting<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: NamedService> NamedService for RejectionCounting<S> {
    const NAME: &'static str = S::NAME;
}

type GrpcRequest = http::Request<tonic::body::Body>;
type GrpcResponse = http::Response<tonic::body::Body>;

impl<S> tonic::codegen::Service<GrpcRequest> for RejectionCounting<S>
where
    S: tonic::codegen::Service<GrpcRequest, Response = GrpcResponse, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = GrpcResponse;
    type Error = Infallible;
    type Future = futures::future::BoxFuture<'static, Result<GrpcResponse, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: GrpcRequest) -> Self::Future {
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let shared = self.shared.clone();
        Box::pin(async move {
            let response = inner.call(request).await?;
            Ok(inspect_grpc_response(&shared, response))
        })
    }
}

fn inspect_grpc_response(shared: &Shared, response: GrpcResponse) -> GrpcResponse {
    let Some(status) = tonic::Status::from_header_map(response.headers()) else {
        return response;
    };
    match status.code() {
        tonic::Code::Ok => response,
        tonic::Code::ResourceExhausted => {
            shared.reject(RejectReason::TooLarge);
            response
        }
        // tonic reports an oversized message as OutOfRange; gRPC clients
        // expect ResourceExhausted for that.
        tonic::Code::OutOfRange if status.message().contains("too large") => {
            shared.reject(RejectReason::TooLarge);
            tonic::Status::resource_exhausted(format!("OTLP payload too large: {}", status.message())).into_http()
        }
        tonic::Code::Unimplemented if status.message().contains("compress") => {
            shared.reject(RejectReason::UnsupportedEncoding);
            response
        }
        _ => response,
    }
}
