//! Request spans: method, matched route (never the raw path with ids), status, latency.

use axum::{
    extract::{MatchedPath, Request},
    http::Response,
};
use std::time::Duration;
use tower_http::{
    classify::{ServerErrorsAsFailures, SharedClassifier},
    trace::TraceLayer,
};
use tracing::Span;

type Layer = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    fn(&Request) -> Span,
    (),
    fn(&Response<axum::body::Body>, Duration, &Span),
>;

pub fn layer() -> Layer {
    TraceLayer::new_for_http()
        .make_span_with(make_span as fn(&Request) -> Span)
        .on_request(())
        .on_response(on_response as fn(&Response<axum::body::Body>, Duration, &Span))
}

fn make_span(request: &Request) -> Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "<fallback>".to_owned());
    tracing::info_span!(
        "http.request",
        http.method = %request.method(),
        http.route = %route,
        http.status = tracing::field::Empty,
        http.latency_ms = tracing::field::Empty,
    )
}

fn on_response(response: &Response<axum::body::Body>, latency: Duration, span: &Span) {
    span.record("http.status", response.status().as_u16());
    span.record("http.latency_ms", latency.as_millis() as u64);
    tracing::info!(
        http.status = response.status().as_u16(),
        http.latency_ms = latency.as_millis() as u64,
        "{}",
        response.status()
    );
}
