//! The one middleware every API request passes through, in this order:
//! the request guard ([`guard`](crate::guard): NUL in the path or query,
//! oversized bodies), the request id ([`RequestId`]: a tracing span and the
//! `x-openstack-request-id` / `x-compute-request-id` headers) and the
//! request metrics ([`Telemetry::record_request`]).
//!
//! It is one hand-written tower layer, not three `middleware::from_fn`
//! layers, because of what a request in flight costs: each `from_fn` layer
//! boxes its own future, a clone of the inner service and the inner future,
//! per request. That is nothing for a request served in milliseconds, but
//! every agent keeps a long poll waiting at the controller all the time
//! (10,000 hosts, 10,000 polls): there the three layers cost several KiB per
//! agent. This layer's future holds the inner future inline, and boxes
//! only while it buffers a request body (a request with no body, such as
//! the long poll, or one whose body streams, skips that step).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, HttpBody};
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use crate::guard;
use crate::request_id::RequestId;
use crate::telemetry::Telemetry;

/// The layer: guard, request id and metrics for every request of the
/// router it wraps (see the module documentation).
#[derive(Clone, Default)]
pub struct RequestLayer {
    telemetry: Option<Arc<Telemetry>>,
}

impl RequestLayer {
    /// A layer recording request metrics into `telemetry` (none when
    /// `None`).
    pub fn new(telemetry: Option<Arc<Telemetry>>) -> Self {
        Self { telemetry }
    }
}

impl<S> Layer<S> for RequestLayer {
    type Service = RequestService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestService {
            inner,
            telemetry: self.telemetry.clone(),
        }
    }
}

/// The service [`RequestLayer`] wraps around each route.
#[derive(Clone)]
pub struct RequestService<S> {
    inner: S,
    telemetry: Option<Arc<Telemetry>>,
}

/// What is recorded into the metrics once the response is known.
struct Measurement {
    telemetry: Arc<Telemetry>,
    method: Method,
    route: Option<MatchedPath>,
    started: Instant,
}

/// A boxed future answering the response (the body-buffering stage).
type BoxedResponse = Pin<Box<dyn Future<Output = Response> + Send>>;

impl<S> Service<Request> for RequestService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = RequestFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let id = RequestId::generate();
        let span = tracing::info_span!(
            "request",
            request_id = %id.0,
            method = %request.method(),
            path = %request.uri().path()
        );
        let measurement = self.telemetry.clone().map(|telemetry| Measurement {
            telemetry,
            method: request.method().clone(),
            route: request.extensions().get::<MatchedPath>().cloned(),
            started: Instant::now(),
        });
        let header = HeaderValue::from_str(&id.0).ok();
        request.extensions_mut().insert(id);
        let stage = match guard::refusal(&request) {
            Some(refused) => Stage::Answered {
                response: Some(refused),
            },
            None if guard::streams_body(request.uri().path())
                || request.body().size_hint().exact() == Some(0) =>
            {
                Stage::Inner {
                    future: self.inner.call(request),
                }
            }
            None => {
                // `poll_ready` readied `self.inner`: that one serves the
                // request, a fresh clone the next one.
                let fresh = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, fresh);
                Stage::Buffering {
                    future: Box::pin(buffer_then_call(inner, request)),
                }
            }
        };
        RequestFuture {
            stage,
            span,
            header,
            measurement,
        }
    }
}

/// Reads the body of `request` (held to the size limit), then serves it.
async fn buffer_then_call<S>(mut inner: S, request: Request) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let style = guard::style_of(request.uri().path());
    let (parts, body) = request.into_parts();
    match guard::read_limited(body, guard::MAX_REQUEST_BODY_BYTES).await {
        Ok(bytes) => match inner
            .call(Request::from_parts(parts, Body::from(bytes)))
            .await
        {
            Ok(response) => response,
            Err(never) => match never {},
        },
        Err(error) => error.styled(style).into_response(),
    }
}

pin_project_lite::pin_project! {
    /// The future of [`RequestService`]: the inner future inline, plus the
    /// span, the request id header and the metrics to record.
    pub struct RequestFuture<F> {
        #[pin]
        stage: Stage<F>,
        span: tracing::Span,
        header: Option<HeaderValue>,
        measurement: Option<Measurement>,
    }
}

pin_project_lite::pin_project! {
    /// Where a request is.
    #[project = StageProjection]
    enum Stage<F> {
        /// The guard refused it: the answer is ready.
        Answered { response: Option<Response> },
        /// The route serves it.
        Inner { #[pin] future: F },
        /// Its body is being read, then the route serves it.
        Buffering { future: BoxedResponse },
    }
}

impl<F> Future for RequestFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let mut response = match this.stage.project() {
            StageProjection::Answered { response } => match response.take() {
                Some(response) => response,
                None => return Poll::Pending,
            },
            StageProjection::Inner { future } => match future.poll(cx) {
                Poll::Ready(Ok(response)) => response,
                Poll::Ready(Err(never)) => match never {},
                Poll::Pending => return Poll::Pending,
            },
            StageProjection::Buffering { future } => match future.as_mut().poll(cx) {
                Poll::Ready(response) => response,
                Poll::Pending => return Poll::Pending,
            },
        };
        if let Some(value) = this.header.take() {
            let headers = response.headers_mut();
            headers.insert("x-openstack-request-id", value.clone());
            headers.insert("x-compute-request-id", value);
        }
        if let Some(measurement) = this.measurement.take() {
            measurement.telemetry.record_request(
                &measurement.method,
                measurement.route.as_ref().map(MatchedPath::as_str),
                response.status().as_u16(),
                measurement.started.elapsed(),
            );
        }
        Poll::Ready(Ok(response))
    }
}
