//! The refusals (400/401/404/413/415/422) in-process: the router `http::app` builds,
//! driven by `tower::ServiceExt::oneshot` with no socket, beside the loopback stories
//! of entities_rest.rs and transfer_rest.rs. Each asserts the status and the error
//! envelope `{"error": {"code", "message", "details"?}}`.

use axum::{
    Router,
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use serde_json::{Value, json};
use server::{auth, http, store::Store};
use tower::ServiceExt;

use crate::common::{
    ADMIN_EMAIL, SECRET, TestDb, harness::entity_counts, on_each_backend, state_for,
};

/// The gateway's router on a fresh database (uploads limited to 1 MB), and an admin token.
struct InProcess {
    router: Router,
    token: String,
    store: Store,
    _db: TestDb,
}

impl InProcess {
    async fn new(db: TestDb) -> InProcess {
        let state = state_for(&db, |s| s.max_upload_mb = 1).await;
        let store = state.store.clone();
        let (_, token) = auth::create_api_token(&store, ADMIN_EMAIL, "in-process", None)
            .await
            .expect("token");
        InProcess {
            router: http::app(state),
            token,
            store,
            _db: db,
        }
    }

    /// A request to `path` with the admin token.
    fn request(&self, method: Method, path: &str) -> axum::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
    }

    /// The router's answer: status and JSON body (`null` when the body is not JSON).
    async fn send(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.request(Method::GET, path).body(Body::empty()).unwrap())
            .await
    }

    async fn post(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<Body>,
    ) -> (StatusCode, Value) {
        let request = self
            .request(Method::POST, path)
            .header(header::CONTENT_TYPE, content_type)
            .body(body.into())
            .unwrap();
        self.send(request).await
    }
}

/// The envelope of a refusal: this `code` and a message saying what is wrong.
fn assert_refusal(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "a message: {body}");
    assert!(!message.contains(SECRET), "{body}");
}

/// The JSON Pointers of the envelope's `details`.
fn pointers(body: &Value) -> Vec<&str> {
    body["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .map(|d| d["pointer"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_request_without_valid_credentials_is_refused_401_even_on_an_unknown_path() {
    let app = InProcess::new(TestDb::sqlite()).await;
    for path in ["/tools", "/admin/export", "/no-such-path"] {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let (status, body) = app.send(request).await;
        assert_refusal(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let request = Request::get("/tools")
        .header(header::AUTHORIZATION, "Bearer not-a-token")
        .body(Body::empty())
        .unwrap();
    let (status, body) = app.send(request).await;
    assert_refusal(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn an_unknown_entity_or_job_answers_404() {
    let app = InProcess::new(TestDb::sqlite()).await;
    let unknown = uuid::Uuid::new_v4();
    for path in [
        format!("/tools/{unknown}"),
        format!("/servers/{unknown}"),
        format!("/admin/import/status/{unknown}"),
        "/admin/import/status/not-a-uuid".to_owned(),
    ] {
        let (status, body) = app.get(&path).await;
        assert_refusal(status, &body, StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test]
async fn bad_query_parameters_answer_400_naming_each_one() {
    let app = InProcess::new(TestDb::sqlite()).await;
    let (status, body) = app.get("/admin/audit?since=yesterday").await;
    assert_refusal(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(pointers(&body), ["/since"]);
}

#[tokio::test]
async fn an_upload_over_the_limit_answers_413_naming_the_limit() {
    let app = InProcess::new(TestDb::sqlite()).await;
    for content_type in ["application/json", "multipart/form-data; boundary=x"] {
        let (status, body) = app
            .post("/admin/import", content_type, vec![b' '; 2 << 20])
            .await;
        assert_refusal(
            status,
            &body,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("1 MB"), "{content_type}: {body}");
    }
    let (status, body) = app.get("/admin/import/jobs").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["jobs"], json!([]), "nothing was queued");
}

#[tokio::test]
async fn a_body_neither_json_nor_a_form_answers_415() {
    let app = InProcess::new(TestDb::sqlite()).await;
    let (status, body) = app.post("/admin/import", "text/plain", "hello").await;
    assert_refusal(
        status,
        &body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
}

#[tokio::test]
async fn an_invalid_entity_answers_422_with_every_field_named_and_writes_nothing() {
    on_each_backend(|db| async move {
        let app = InProcess::new(db).await;
        let bad_tool = json!({"url": "ftp://files.example.com", "request_type": "FETCH", "tags": ["ok", "x"], "input_schema": {"type": "array"}});
        let (status, body) = app
            .post("/tools", "application/json", bad_tool.to_string())
            .await;
        assert_refusal(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let found = pointers(&body);
        for expected in ["/request_type", "/name", "/url", "/input_schema/type", "/tags/1"] {
            assert!(found.contains(&expected), "{expected} in {found:?}");
        }
        let (status, body) = app
            .post("/tools", "application/json", "{\"name\": ")
            .await;
        assert_refusal(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(entity_counts(&app.store).await, [0; 6], "no row written");
    })
    .await;
}
