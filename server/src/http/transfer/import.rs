//! Import over REST: the file (multipart field `file`, a JSON body, or ContextForge's
//! `{"import_data": …}` wrapper) and its options ([`ImportOptions`]) are read, spooled
//! and handed to the job service, which checks the file completely before queuing it.

use std::time::Duration;

use app::{
    jobs::{ImportPreview, JobCreated},
    transfer::wrapper::{MAX_OPTION_BYTES, MAX_OPTIONS, option_too_large, parse_wrapper, too_many},
    validation::{Code, FieldError},
    wire::{EntitySelection, ImportOptions, invalid},
};
use axum::{
    Extension, Json,
    extract::{FromRequest, Multipart, Request, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures_util::TryStreamExt;
use secrecy::SecretString;
use serde_json::{Map, Value};

use crate::{
    auth::Principal,
    crypto::Cipher,
    error::{Error, Result},
    http::AppState,
    transfer::{
        input::Input,
        jobs::{JobRequest, SubmitError},
        spool::Spool,
    },
};

/// Start an import job: the file is checked completely, stored, and run in the background.
#[utoipa::path(post, path = "/admin/import", tag = "import",
    request_body(content = ref("#/components/schemas/ImportOptions"), description = "multipart/form-data with `file` (the export file) and the options: `conflict_strategy`, `dry_run`, `include`, `selected_entities` (JSON), `source_secret`, `rekey_secret`; or a JSON body: the export file itself, or ContextForge's `{import_data, conflict_strategy, dry_run, rekey_secret, selected_entities}`",
        content_type = "multipart/form-data"),
    responses(
        (status = 202, description = "Queued; follow `status_url`", body = ref("#/components/schemas/JobCreated")),
        (status = 400, description = "A bad option, named", body = ref("#/components/schemas/ErrorEnvelope")),
        (status = 413, description = "Larger than MCPGATEWAY_MAX_UPLOAD_MB", body = ref("#/components/schemas/ErrorEnvelope")),
        (status = 415, description = "Neither multipart/form-data nor JSON", body = ref("#/components/schemas/ErrorEnvelope")),
        (status = 422, description = "Every problem of the file, each with its JSON Pointer; nothing queued", body = ref("#/components/schemas/ErrorEnvelope")),
    ))]
pub async fn start_import(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    request: Request,
) -> Result<Response> {
    let upload = read_upload(&state, request).await?;
    let created: JobCreated = state
        .jobs
        .submit(upload, &who.email)
        .await
        .map_err(refused)?;
    let location = HeaderValue::from_str(&created.status_url).map_err(anyhow::Error::from)?;
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(created),
    )
        .into_response())
}

/// What an import would do (the import run and rolled back): counts, conflicts,
/// dependencies it would create, per-entity results.
#[utoipa::path(post, path = "/admin/import/preview", tag = "import",
    request_body(content = ref("#/components/schemas/ImportOptions"), content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "The plan", body = ref("#/components/schemas/ImportPreview")),
        (status = 422, description = "Every problem of the file, each with its JSON Pointer", body = ref("#/components/schemas/ErrorEnvelope")),
    ))]
pub async fn preview_import(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<ImportPreview>> {
    let upload = read_upload(&state, request).await?;
    Ok(Json(state.jobs.preview(upload).await.map_err(refused)?))
}

fn refused(e: SubmitError) -> Error {
    match e {
        SubmitError::Invalid(problems) => Error::InvalidFile(problems),
        SubmitError::Database(e) => Error::from(e),
    }
}

/// The file and options of an import request, from multipart form data or JSON.
async fn read_upload(state: &AppState, request: Request) -> Result<JobRequest> {
    // Options may come as query parameters too (`?dry_run=true`): read before the body.
    let query = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(request.uri())
        .map_err(|e| Error::BadRequest(e.body_text()))?
        .0;
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let limit = state.settings.max_upload_mb;
    let mut form = if content_type.starts_with("multipart/form-data") {
        let multipart = Multipart::from_request(request, state)
            .await
            .map_err(|e| Error::BadRequest(e.body_text()))?;
        read_multipart(multipart, limit).await?
    } else if content_type.starts_with("application/json") {
        read_json(spool_body(request, limit).await?).await?
    } else {
        return Err(Error::UnsupportedMediaType(format!(
            "send the file as multipart/form-data (field `file`) or as application/json, not `{}`",
            if content_type.is_empty() {
                "no content type"
            } else {
                &content_type
            }
        )));
    };
    for (name, value) in query {
        match name.as_str() {
            "file" => form
                .errors
                .push(invalid("/file", "send the file in the body, not the query")),
            _ => form.set(&name, value),
        }
    }
    form.finish(&state.cipher)
}

/// The largest upload, in bytes (the limit `routes` is given too).
fn upload_limit(limit_mb: u64) -> u64 {
    limit_mb.saturating_mul(1 << 20)
}

/// Appends a piece of an upload to its spool, refusing it past the limit (413).
async fn spool_piece(spool: &mut Spool, piece: &[u8], limit_mb: u64) -> Result<()> {
    if spool.len() + piece.len() as u64 > upload_limit(limit_mb) {
        return Err(Error::PayloadTooLarge(limit_mb));
    }
    spool.write(piece).await.map_err(spool_failed)
}

fn spool_failed(e: std::io::Error) -> Error {
    Error::Internal(anyhow::Error::new(e).context("cannot spool the upload"))
}

/// A JSON body, streamed into a spool file as it arrives and mapped.
async fn spool_body(request: Request, limit_mb: u64) -> Result<Input> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > upload_limit(limit_mb)) {
        return Err(Error::PayloadTooLarge(limit_mb));
    }
    let mut body = request.into_body().into_data_stream();
    let mut spool = Spool::new().map_err(spool_failed)?;
    while let Some(piece) = body
        .try_next()
        .await
        .map_err(|e| Error::BadRequest(format!("the request body cannot be read: {e}")))?
    {
        spool_piece(&mut spool, &piece, limit_mb).await?;
    }
    spool.finish().await.map_err(spool_failed)
}

/// An import request as read, before its options are checked.
#[derive(Default)]
struct Form {
    input: Option<Input>,
    file_name: Option<String>,
    /// Each option once, as given (strings; `selected_entities` as JSON).
    options: Map<String, Value>,
    errors: Vec<FieldError>,
}

/// An option given twice with different values (never echoed: it may be a secret).
fn twice(name: &str) -> FieldError {
    FieldError {
        pointer: format!("/{name}"),
        code: Code::Conflicting,
        message: format!(
            "`{name}` is given twice with different values (form field, JSON member or query parameter): give it once"
        ),
    }
}

impl Form {
    /// One option as text, from a form field, a JSON member or a query parameter.
    fn set(&mut self, name: &str, value: String) {
        if name != "selected_entities" {
            return self.set_value(name, Value::String(value));
        }
        match serde_json::from_str(&value) {
            Ok(v) => self.set_value(name, v),
            Err(e) => self
                .errors
                .push(invalid(format!("/{name}"), format!("not JSON: {e}"))),
        }
    }

    /// The same option given twice must say the same thing (a silent choice of one could
    /// turn a dry run into a real import).
    fn set_value(&mut self, name: &str, value: Value) {
        match self.options.get(name) {
            Some(old) if *old != value => self.errors.push(twice(name)),
            Some(_) => {}
            None => {
                self.options.insert(name.to_owned(), value);
            }
        }
    }

    /// The job to run, or every problem of the request at once (400).
    fn finish(self, cipher: &Cipher) -> Result<JobRequest> {
        let mut errors = self.errors;
        let options = ImportOptions::parse(self.options).unwrap_or_else(|e| {
            errors.extend(e);
            ImportOptions::default()
        });
        check_rekey(options.rekey_secret.as_deref(), cipher, &mut errors);
        if self.input.is_none() {
            errors.push(invalid("/file", "no file: send it in the field `file`"));
        }
        if !errors.is_empty() {
            return Err(Error::Parameters(errors));
        }
        Ok(JobRequest {
            input: self.input.unwrap_or_else(|| Input::from(Vec::new())),
            file_name: self.file_name,
            strategy: options.conflict_strategy,
            dry_run: options.dry_run.0,
            include: options.include.filter(|s| !s.trim().is_empty()),
            selected: options.selected_entities.map(EntitySelection::into_picked),
            source_secret: options
                .source_secret
                .filter(|s| !s.is_empty())
                .map(SecretString::from),
            allow_missing_links: options.allow_missing_links.0,
        })
    }
}

/// `rekey_secret` (ContextForge's name) must be this gateway's own secret: the
/// credentials are re-encrypted with the key the gateway decrypts with.
fn check_rekey(rekey: Option<&str>, cipher: &Cipher, errors: &mut Vec<FieldError>) {
    let Some(rekey) = rekey.filter(|s| !s.is_empty()) else {
        return;
    };
    if Cipher::new(&SecretString::from(rekey.to_owned())).fingerprint() != cipher.fingerprint() {
        errors.push(invalid(
            "/rekey_secret",
            "must be this gateway's AUTH_ENCRYPTION_SECRET (credentials are re-encrypted with the key the gateway decrypts with); send the exporter's secret as source_secret",
        ));
    }
}

/// An option field's text, read up to [`MAX_OPTION_BYTES`]; past that the rest of the
/// field is read and dropped, and only its size is kept (`Err`).
async fn option_text(
    field: &mut axum::extract::multipart::Field<'_>,
) -> std::result::Result<std::result::Result<String, usize>, axum::extract::multipart::MultipartError>
{
    let mut text = Vec::new();
    let mut size = 0;
    while let Some(piece) = field.chunk().await? {
        size += piece.len();
        if size <= MAX_OPTION_BYTES {
            text.extend_from_slice(&piece);
        }
    }
    if size > MAX_OPTION_BYTES {
        return Ok(Err(size));
    }
    Ok(Ok(String::from_utf8_lossy(&text).into_owned()))
}

async fn read_multipart(mut multipart: Multipart, limit: u64) -> Result<Form> {
    let too_large = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Error::PayloadTooLarge(limit)
        } else {
            Error::BadRequest(format!(
                "the multipart body cannot be read: {}",
                e.body_text()
            ))
        }
    };
    let mut form = Form::default();
    let mut options = 0;
    while let Some(mut field) = multipart.next_field().await.map_err(too_large)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name != "file" {
            options += 1;
            if options > MAX_OPTIONS {
                form.errors.push(too_many());
                return Err(Error::Parameters(form.errors));
            }
        }
        if name == "file" {
            form.file_name = field.file_name().map(str::to_owned);
            let mut spool = Spool::new().map_err(spool_failed)?;
            while let Some(piece) = field.chunk().await.map_err(too_large)? {
                spool_piece(&mut spool, &piece, limit).await?;
            }
            form.input = Some(spool.finish().await.map_err(spool_failed)?);
        } else {
            match option_text(&mut field).await.map_err(too_large)? {
                Ok(value) => form.set(&name, value),
                Err(size) => form.errors.push(option_too_large(&name, size)),
            }
        }
    }
    Ok(form)
}

/// A JSON body: ContextForge's `{"import_data": {...}, …options}`, or the file itself.
/// The file is the part of the spool that `import_data` spans: nothing is copied.
async fn read_json(body: Input) -> Result<Form> {
    let mut form = Form::default();
    let Some(wrapped) = scan(&body, |b| parse_wrapper(b.bytes())).await? else {
        form.input = Some(body);
        return Ok(form);
    };
    form.input = Some(body.slice(wrapped.data));
    form.errors.extend(wrapped.refused);
    for (name, value) in wrapped.options {
        match value {
            Value::Null => {}
            Value::String(s) => form.set(&name, s),
            Value::Bool(b) => form.set(&name, b.to_string()),
            other if name == "selected_entities" => form.set_value(&name, other),
            _ => form
                .errors
                .push(invalid(format!("/{name}"), "must be a string or a boolean")),
        }
    }
    Ok(form)
}

/// Runs `parse` over `body` on a blocking thread while the body's pages are let go every
/// few milliseconds, so a scan of a large body keeps little of it resident (a dropped page
/// the parser still needs is read again from the file: the bytes never change).
async fn scan<T: Send + 'static>(
    body: &Input,
    parse: impl FnOnce(&Input) -> T + Send + 'static,
) -> Result<T> {
    let task = {
        let body = body.clone();
        tokio::task::spawn_blocking(move || parse(&body))
    };
    tokio::pin!(task);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let done = loop {
        tokio::select! {
            done = &mut task => break done,
            _ = tick.tick() => body.release_before(body.len()),
        }
    };
    body.release_before(body.len());
    done.map_err(|e| Error::Internal(anyhow::Error::new(e).context("scanning the upload")))
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, Bytes};

    use super::*;

    fn mapped(body: &[u8]) -> Input {
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, body).unwrap();
        Input::map(&file).unwrap()
    }

    #[tokio::test]
    async fn a_wrapper_hands_over_the_exact_bytes_of_import_data() {
        let data = r#"{ "entities" : {"tools": [{"name": "a\"b", "url": "https://x"}]}, "k": [1, 2.5e3] }"#;
        let body = format!(
            "{{\"conflict_strategy\": \"skip\",\n \"import_data\"  :\t{data} ,\"dry_run\": true, \"rekey_secret\": null}}"
        );
        for input in [mapped(body.as_bytes()), Input::from(body.as_bytes())] {
            let form = read_json(input.clone()).await.unwrap();
            let file = form.input.expect("the file");
            assert_eq!(file.bytes(), data.as_bytes());
            let start = body.find(data).unwrap();
            assert_eq!(
                file.bytes().as_ptr() as usize - input.bytes().as_ptr() as usize,
                start,
                "a slice of the body, not a copy"
            );
            assert_eq!(form.options["conflict_strategy"], "skip");
            assert_eq!(form.options["dry_run"], "true");
            assert!(form.errors.is_empty(), "{:?}", form.errors);
        }
    }

    #[tokio::test]
    async fn a_body_that_is_not_a_wrapper_is_the_file_itself() {
        for body in [
            &br#"{"version": "2025-03-26", "entities": {"tools": []}}"#[..],
            br#"[{"import_data": {}}]"#,
            br#"{"import_data": {}, "broken": "#,
            b"",
        ] {
            let form = read_json(mapped(body)).await.unwrap();
            assert_eq!(form.input.unwrap().bytes(), body);
            assert!(form.errors.is_empty());
        }
    }

    #[tokio::test]
    async fn a_json_body_is_counted_against_the_limit_as_it_streams() {
        let pieces = || {
            futures_util::stream::iter(
                (0..3).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 512 * 1024]))),
            )
        };
        let request = |body| Request::builder().body(body).unwrap();
        // No Content-Length: refused once the second MiB starts.
        let refused = spool_body(request(Body::from_stream(pieces())), 1).await;
        assert!(matches!(refused, Err(Error::PayloadTooLarge(1))));
        let taken = spool_body(request(Body::from_stream(pieces())), 2).await;
        assert_eq!(taken.unwrap().len(), 3 * 512 * 1024);
        // A declared length above the limit is refused before the body is read.
        let declared = Request::builder()
            .header(header::CONTENT_LENGTH, (2u64 << 20).to_string())
            .body(Body::empty())
            .unwrap();
        assert!(matches!(
            spool_body(declared, 1).await,
            Err(Error::PayloadTooLarge(1))
        ));
    }

    #[tokio::test]
    async fn wrapper_options_too_large_are_named_not_kept() {
        let big = format!("\"{}\"", "x".repeat(MAX_OPTION_BYTES));
        let body = format!(r#"{{"import_data": {{}}, "include": {big}, "dry_run": true}}"#);
        let form = read_json(mapped(body.as_bytes())).await.unwrap();
        assert_eq!(
            form.errors,
            [option_too_large("include", MAX_OPTION_BYTES + 2)]
        );
        assert_eq!(form.errors[0].code, Code::TooLarge);
        assert_eq!(form.options["dry_run"], "true");
        assert!(!form.options.contains_key("include"));
    }

    #[tokio::test]
    async fn wrapper_options_of_the_wrong_type_are_field_errors() {
        let body = br#"{"import_data": {}, "dry_run": 3, "colour": "red", "selected_entities": {"tools": ["a"]}}"#;
        let form = read_json(mapped(body)).await.unwrap();
        assert_eq!(
            form.options["selected_entities"],
            serde_json::json!({"tools": ["a"]})
        );
        assert_eq!(form.input.as_ref().unwrap().bytes(), b"{}");
        let cipher = Cipher::new(&SecretString::from(
            "a-secret-of-this-gateway-0123456789".to_owned(),
        ));
        let Err(Error::Parameters(errors)) = form.finish(&cipher) else {
            panic!("refused");
        };
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers, ["/dry_run", "/colour"]);
    }
}
