//! Authentication at the door: every route but [`PUBLIC_PATHS`] needs a bearer token
//! (API, CLI) or a session cookie (UI), checked before routing. Writes made with a
//! cookie must come from our own origin (CSRF).

use app::model::SessionUser;
use axum::{
    Extension, Form, Json, Router,
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, Method, header},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::Deserialize;
use serde_json::json;
use std::net::{IpAddr, SocketAddr};

use super::{AppState, client, limit};
use crate::{
    auth::{self, AuthMethod, Principal},
    error::{Error, Result},
    hot::Seen,
    store::audit::NewAuditEntry,
};

/// The browser session cookie (HttpOnly, SameSite=Strict).
pub const SESSION_COOKIE: &str = "mcpgw_session";

/// Paths open to anyone; `/pkg/` is a prefix (the WASM, JS and CSS bundle).
pub const PUBLIC_PATHS: [&str; 9] = [
    "/openapi.json",
    "/docs",
    "/health",
    "/ready",
    "/login",
    "/auth/login",
    "/favicon.svg",
    "/favicon.ico",
    "/pkg/",
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/login", post(login))
        .route("/auth/logout", post(logout))
        .route("/auth/me", get(me))
}

fn is_public(path: &str) -> bool {
    PUBLIC_PATHS.iter().any(|p| {
        if p.ends_with('/') {
            path.starts_with(p)
        } else {
            path == *p
        }
    })
}

/// The middleware: resolves the caller, or answers 401 (a browser asking for a page
/// without any credential is sent to the login page instead).
pub async fn require_auth(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    if is_public(request.uri().path()) {
        return next.run(request).await;
    }
    let seen = state.hot.seen();
    request.extensions_mut().insert(seen);
    let principal = match authenticate(&state, seen, request.headers()).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let Some(principal) = principal else {
        let bare = !request.headers().contains_key(header::AUTHORIZATION);
        return if bare && wants_page(&request) {
            Redirect::to("/login").into_response()
        } else {
            Error::Unauthorized.into_response()
        };
    };
    if principal.servers.is_some() && crate::mcp::server_ref(request.uri().path()).is_none() {
        return Error::Forbidden(
            "this token reaches only the MCP endpoints of the servers it names",
        )
        .into_response();
    }
    if principal.via == AuthMethod::Session
        && !is_safe(request.method())
        && !same_origin(request.headers(), &state)
    {
        return Error::Forbidden(
            "cross-origin write refused: the Origin header must match this gateway",
        )
        .into_response();
    }
    request.extensions_mut().insert(SessionUser {
        email: principal.email.clone(),
    });
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// A bearer token when the request carries an `Authorization` header (and only then),
/// else the session cookie.
async fn authenticate(
    state: &AppState,
    seen: Seen,
    headers: &HeaderMap,
) -> Result<Option<Principal>> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        return match token {
            Some(t) if !t.is_empty() => {
                let found = state.hot.token(seen, t).await?;
                Ok(found.map(|grant| {
                    state.token_use.record(grant.token_id);
                    grant.principal
                }))
            }
            _ => Ok(None),
        };
    }
    match CookieJar::from_headers(headers).get(SESSION_COOKIE) {
        Some(cookie) => Ok(auth::principal_for_session(&state.store, cookie.value()).await?),
        None => Ok(None),
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn wants_page(request: &Request) -> bool {
    is_safe(request.method())
        && request
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"))
}

/// True when the `Origin` header names this gateway (its `Host`, or `public_origin`).
pub(crate) fn same_origin(headers: &HeaderMap, state: &AppState) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let ours = [format!("http://{host}"), format!("https://{host}")];
    ours.iter().any(|o| o == origin) || state.settings.public_origin.as_deref() == Some(origin)
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
}

/// The span's `user.email` is filled in only once the typed text is known to be an
/// account's email: a password typed into the email field must never reach the logs.
#[tracing::instrument(skip_all, fields(user.email = tracing::field::Empty))]
async fn login(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response> {
    if headers.contains_key(header::ORIGIN) && !same_origin(&headers, &state) {
        return Err(Error::Forbidden("cross-origin login refused"));
    }
    let client = client::client(
        peer.map(|p| p.0.0),
        &headers,
        &state.settings.trusted_proxies,
    );
    let attempt = check_rate(&state, client.ip, &form.email).await?;
    let ttl = chrono::Duration::hours(i64::from(state.settings.session_ttl_hours));
    let Some((principal, cookie)) =
        auth::login(&state.store, &form.email, &form.password, ttl).await?
    else {
        let account = account_label(&state, &form.email).await?;
        tracing::info!(user.account = %account, "sign-in refused for {account}");
        return Ok(Redirect::to("/login?error=invalid").into_response());
    };
    attempt.succeeded();
    let entry = NewAuditEntry {
        actor: &principal.email,
        action: "login",
        ..Default::default()
    };
    state.store.record_audit(entry).await?;
    tracing::Span::current().record("user.email", principal.email.as_str());
    tracing::info!("signed in {}", principal.email);
    let secure = client.https
        || state
            .settings
            .public_origin
            .as_deref()
            .is_some_and(|o| o.starts_with("https://"));
    let cookie = Cookie::build((SESSION_COOKIE, cookie))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .path("/")
        .max_age(time_duration(ttl));
    Ok((jar.add(cookie), Redirect::to("/ui")).into_response())
}

/// What the logs may say about the text typed as the email: the account's email when an
/// account has it, else "unknown user" (the text could be a password typed in the wrong
/// field, so it is never logged as it is).
async fn account_label(state: &AppState, typed: &str) -> Result<String> {
    let known = state.store.user_by_email(typed).await?;
    Ok(known.map_or_else(|| "unknown user".to_owned(), |user| user.email))
}

/// Refuses a sign-in over the per-address or per-account-and-address limit (before the
/// password is checked); the attempt returned counts as a failure unless it succeeds.
async fn check_rate<'a>(
    state: &'a AppState,
    ip: IpAddr,
    email: &str,
) -> Result<limit::Attempt<'a>> {
    let refusal = match state.login_limits.attempt(ip, email) {
        Ok(attempt) => return Ok(attempt),
        Err(refusal) => refusal,
    };
    // Whole seconds, rounded up: retrying after `Retry-After` never meets the limit again.
    let secs = refusal.retry_after.as_secs() + u64::from(refusal.retry_after.subsec_nanos() > 0);
    let per = match refusal.limit {
        limit::Limit::Address => "from this address",
        limit::Limit::AccountFromAddress => "for this account from this address",
    };
    let account = account_label(state, email).await?;
    tracing::warn!(
        client.ip = %ip,
        user.account = %account,
        limit.key = per,
        limit.retry_after_secs = secs,
        "sign-in refused: too many attempts"
    );
    Err(Error::TooManyRequests {
        message: format!("too many failed sign-in attempts {per}; try again in {secs} seconds"),
        retry_after_secs: secs.max(1),
    })
}

fn time_duration(d: chrono::Duration) -> cookie::time::Duration {
    cookie::time::Duration::seconds(d.num_seconds())
}

async fn logout(
    State(state): State<AppState>,
    jar: CookieJar,
    Extension(principal): Extension<Principal>,
) -> Result<Response> {
    if let Some(cookie) = jar.get(SESSION_COOKIE) {
        state
            .store
            .delete_session(&auth::token_hash(cookie.value()))
            .await?;
    }
    let entry = NewAuditEntry {
        actor: &principal.email,
        action: "logout",
        ..Default::default()
    };
    state.store.record_audit(entry).await?;
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/"));
    Ok((jar, Redirect::to("/login")).into_response())
}

async fn me(Extension(principal): Extension<Principal>) -> Json<serde_json::Value> {
    let via = match principal.via {
        AuthMethod::Bearer => "bearer",
        AuthMethod::Session => "session",
    };
    Json(json!({ "email": principal.email, "auth": via }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_listed_paths_are_public() {
        assert!(is_public("/health"));
        assert!(is_public("/pkg/mcpgateway.js"));
        assert!(!is_public("/pkg"));
        assert!(!is_public("/healthz"));
        assert!(!is_public("/admin/export"));
        assert!(!is_public("/ui"));
    }
}
