//! Remote mode: with `--url URL` (or `MCPGATEWAY_URL`) and `MCPGATEWAY_BEARER_TOKEN`,
//! `export`, `import` and `diff` drive a gateway through its REST API instead of opening a
//! database. The output is the same as in local mode: the reports come back as the same types.

use std::{path::Path, time::Duration};

use app::{
    jobs::{EntityResult, ImportPreview, JobCreated, JobResults, JobState, JobStatus},
    validation::Problems,
    wire::{ErrorBody, ErrorEnvelope, ImportOptions},
};
use futures_util::TryStreamExt;
use reqwest::{Client, RequestBuilder, Response, StatusCode, Url, multipart};
use serde::de::DeserializeOwned;
use tokio::io::AsyncWriteExt;

use crate::transfer::import::ImportReport;

/// The environment variable holding the API token for remote mode.
pub const TOKEN_VAR: &str = "MCPGATEWAY_BEARER_TOKEN";

/// A gateway's REST API, with the bearer token of `MCPGATEWAY_BEARER_TOKEN`.
pub struct Remote {
    base: Url,
    token: String,
    http: Client,
}

/// Why a remote call did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The gateway refused the request and named each problem (400 / 422).
    #[error("the gateway refused the request: {} problem(s)", .0.total)]
    Refused(Problems),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl Remote {
    /// The gateway at `url`; the token must be in `MCPGATEWAY_BEARER_TOKEN`
    /// (never a flag: a command line is visible to every user of the machine).
    pub fn from_env(url: &str) -> anyhow::Result<Remote> {
        Remote::new(url, std::env::var(TOKEN_VAR).ok())
    }

    fn new(url: &str, token: Option<String>) -> anyhow::Result<Remote> {
        let mut base =
            Url::parse(url).map_err(|e| anyhow::anyhow!("--url `{url}` is not a URL: {e}"))?;
        anyhow::ensure!(
            matches!(base.scheme(), "http" | "https"),
            "--url `{url}` must start with http:// or https://"
        );
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let token = token
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "remote mode needs an API token in {TOKEN_VAR} (create one with `mcpgateway token create` on the gateway)"
                )
            })?;
        let http = Client::builder()
            .user_agent(concat!("mcpgateway-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        Ok(Remote { base, token, http })
    }

    fn url(&self, path: &str) -> anyhow::Result<Url> {
        Ok(self.base.join(path.trim_start_matches('/'))?)
    }

    fn get(&self, path: &str) -> anyhow::Result<RequestBuilder> {
        Ok(self.http.get(self.url(path)?).bearer_auth(&self.token))
    }

    fn post(&self, path: &str) -> anyhow::Result<RequestBuilder> {
        Ok(self.http.post(self.url(path)?).bearer_auth(&self.token))
    }

    /// Sends a request; a non-2xx answer becomes the problems it names, or its message.
    async fn send(&self, request: RequestBuilder) -> Result<Response, RemoteError> {
        let response = request.send().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot reach the gateway at {}: {}",
                self.base,
                without_url(&e)
            )
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.bytes().await.unwrap_or_default();
        match serde_json::from_slice::<ErrorEnvelope>(&body) {
            Ok(ErrorEnvelope {
                error:
                    ErrorBody {
                        details: Some(details),
                        errors_total,
                        ..
                    },
            }) if !details.is_empty() => {
                let total = errors_total.unwrap_or(details.len() as u64);
                Err(RemoteError::Refused(Problems {
                    listed: details,
                    total,
                }))
            }
            Ok(e) => {
                Err(anyhow::anyhow!("the gateway answered {status}: {}", e.error.message).into())
            }
            Err(_) if status == StatusCode::UNAUTHORIZED => {
                Err(anyhow::anyhow!("the gateway answered 401: check {TOKEN_VAR}").into())
            }
            Err(_) => Err(anyhow::anyhow!("the gateway answered {status}").into()),
        }
    }

    async fn json<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T, RemoteError> {
        let response = self.send(request).await?;
        Ok(response
            .json()
            .await
            .map_err(|e| anyhow::anyhow!("the gateway's answer is not understood: {e}"))?)
    }

    /// `GET /admin/export?…`, streamed into `out`; the number of bytes written.
    pub async fn export(
        &self,
        query: &[(&str, String)],
        out: &mut (impl tokio::io::AsyncWrite + Unpin),
    ) -> Result<u64, RemoteError> {
        let mut response = self.send(self.get("admin/export")?.query(query)).await?;
        let mut written = 0;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| anyhow::anyhow!("the export was cut off: {}", without_url(&e)))?
        {
            out.write_all(&chunk).await.map_err(anyhow::Error::from)?;
            written += chunk.len() as u64;
        }
        out.flush().await.map_err(anyhow::Error::from)?;
        Ok(written)
    }

    /// `POST /admin/import`: the job the gateway queued for the file.
    /// `uploaded` is told the size of each piece of the file as it is sent (a progress bar).
    pub async fn submit(
        &self,
        file: &Path,
        options: &ImportOptions,
        uploaded: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<JobCreated, RemoteError> {
        let form = upload(file, options, uploaded).await?;
        self.json(self.post("admin/import")?.multipart(form)).await
    }

    /// `POST /admin/import/preview`: the dry run's plan, answered at once.
    pub async fn preview(
        &self,
        file: &Path,
        options: &ImportOptions,
    ) -> Result<ImportPreview, RemoteError> {
        let form = upload(file, options, |_| {}).await?;
        self.json(self.post("admin/import/preview")?.multipart(form))
            .await
    }

    /// Polls the job until it ends, telling `progress` (processed, total) on each change.
    pub async fn wait(
        &self,
        job: &JobCreated,
        progress: impl Fn(u64, u64),
    ) -> Result<JobStatus, RemoteError> {
        let path = format!("admin/import/status/{}", job.job_id);
        loop {
            let status: JobStatus = self.json(self.get(&path)?).await?;
            progress(status.progress.processed, status.progress.total);
            if status.status.is_final() {
                return Ok(status);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Remote {
    /// Every per-entity result of a finished job, read a page at a time.
    pub async fn results(&self, job: &JobCreated) -> Result<Vec<EntityResult>, RemoteError> {
        let mut results = Vec::new();
        loop {
            let path = format!(
                "admin/import/status/{}/results?offset={}&limit={}",
                job.job_id,
                results.len(),
                JobResults::MAX_LIMIT
            );
            let page: JobResults = self.json(self.get(&path)?).await?;
            let done = page.results.is_empty()
                || results.len() + page.results.len() >= page.total as usize;
            results.extend(page.results);
            if done {
                return Ok(results);
            }
        }
    }

    /// `POST /admin/verify`: the gateway probes its tools' upstreams with their credentials.
    pub async fn verify(
        &self,
        request: &app::verify::VerifyRequest,
    ) -> Result<app::verify::VerifyReport, RemoteError> {
        self.json(self.post("admin/verify")?.json(request)).await
    }
}

/// The multipart form: the file streamed from disk (or standard input), and the options.
async fn upload(
    file: &Path,
    options: &ImportOptions,
    uploaded: impl Fn(u64) + Send + Sync + 'static,
) -> anyhow::Result<multipart::Form> {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "stdin.json".into());
    let part = if file.as_os_str() == "-" {
        multipart::Part::bytes(super::validate::read_input(file)?.bytes().to_vec())
    } else {
        let opened = tokio::fs::File::open(file)
            .await
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
        let length = opened.metadata().await?.len();
        let sent = tokio_util::io::ReaderStream::with_capacity(opened, 64 * 1024)
            .inspect_ok(move |piece| uploaded(piece.len() as u64));
        multipart::Part::stream_with_length(reqwest::Body::wrap_stream(sent), length)
    };
    let mut form =
        multipart::Form::new().part("file", part.file_name(name).mime_str("application/json")?);
    for (field, value) in options.fields() {
        form = form.text(field, value);
    }
    Ok(form)
}

/// reqwest's errors repeat the URL; the base URL is already in the message.
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(&format!(" ({url})"), "");
    }
    match std::error::Error::source(e) {
        Some(source) => format!("{text}: {source}"),
        None => text,
    }
}

/// The report a finished job carries, in the type local mode prints.
pub fn report_of(status: JobStatus) -> Result<ImportReport, RemoteError> {
    match status.status {
        JobState::Completed => Ok(ImportReport {
            dry_run: status.dry_run,
            strategy: status.conflict_strategy,
            // Read a page at a time afterwards (`Remote::results`).
            results: Vec::new(),
            skipped_by_selection: status.skipped_by_selection as usize,
            warnings: status.warnings,
            rekeyed: status.rekeyed,
            gateways: status.gateways,
        }),
        JobState::Cancelled => {
            Err(anyhow::anyhow!("the import was cancelled: nothing was imported").into())
        }
        _ if !status.errors.is_empty() => Err(RemoteError::Refused(Problems {
            total: status.errors_total.max(status.errors.len() as u64),
            listed: status.errors,
        })),
        state => Err(anyhow::anyhow!("the import {}: nothing was imported", state.as_str()).into()),
    }
}

/// The dry run's report from a preview, in the type local mode prints.
pub fn report_of_preview(preview: ImportPreview) -> ImportReport {
    ImportReport {
        dry_run: true,
        strategy: preview.conflict_strategy,
        results: preview.results,
        skipped_by_selection: 0,
        warnings: preview.warnings,
        rekeyed: false,
        gateways: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_keeps_its_path_and_needs_http() {
        let remote = Remote::new("https://gw.example.com/prefix", Some("t".into())).unwrap();
        assert_eq!(
            remote.url("/admin/export").unwrap().as_str(),
            "https://gw.example.com/prefix/admin/export"
        );
        let refused = Remote::new("ftp://gw.example.com", Some("t".into()))
            .err()
            .unwrap();
        assert!(refused.to_string().contains("http:// or https://"));
        let no_token = Remote::new("http://gw", Some(" ".into())).err().unwrap();
        assert!(no_token.to_string().contains(TOKEN_VAR));
    }
}
