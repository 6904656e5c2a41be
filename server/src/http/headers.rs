//! Security headers on every response: a Content-Security-Policy whose script nonce is
//! the one Leptos writes into the page's hydration scripts, no framing, no MIME sniffing,
//! no referrer to other origins, and `no-store` on everything but the static bundle
//! (pages, API answers and exports carry the caller's data).

use axum::{
    extract::Request,
    http::{
        HeaderValue,
        header::{
            CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
            X_FRAME_OPTIONS,
        },
    },
    middleware::Next,
    response::Response,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use leptos::{nonce::Nonce, prelude::*};
use rand::RngCore;

/// This request's CSP nonce (a request extension, read by the UI's render context).
#[derive(Clone)]
pub struct CspNonce(String);

impl CspNonce {
    fn new() -> CspNonce {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        CspNonce(URL_SAFE_NO_PAD.encode(bytes))
    }
}

/// Hands this request's nonce to Leptos (called in the UI's render context, after
/// leptos_axum has provided the request parts and a nonce of its own, which this replaces).
pub fn provide_request_nonce() {
    let nonce = use_context::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<CspNonce>().cloned());
    if let Some(CspNonce(nonce)) = nonce {
        provide_context(Nonce::from_value(nonce));
    }
}

fn policy(nonce: &CspNonce) -> HeaderValue {
    // 'wasm-unsafe-eval' lets the page instantiate its WebAssembly, nothing more; style
    // attributes (progress bars) are allowed, style sheets only from here.
    let policy = format!(
        "default-src 'self'; script-src 'self' 'nonce-{}' 'wasm-unsafe-eval'; \
         style-src 'self'; style-src-attr 'unsafe-inline'; img-src 'self' data:; \
         connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'",
        nonce.0
    );
    HeaderValue::from_str(&policy).expect("base64url and ASCII")
}

/// The static bundle and icons: the same for everyone, cacheable.
fn is_static(path: &str) -> bool {
    path.starts_with("/pkg/") || path == "/favicon.svg" || path == "/favicon.ico"
}

pub async fn security_headers(mut request: Request, next: Next) -> Response {
    let nonce = CspNonce::new();
    let cacheable = is_static(request.uri().path());
    request.extensions_mut().insert(nonce.clone());
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, policy(&nonce));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Not `no-referrer`: that would also blank the `Origin` of our own form posts, which
    // the CSRF check reads.
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !cacheable {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
