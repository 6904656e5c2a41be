//! The browser implementation of [`super`]: gloo-net requests, streams, Blob downloads
//! and EventSource.

use gloo_net::http::{Request, Response};
use js_sys::{Reflect, Uint8Array};
use serde::{Serialize, de::DeserializeOwned};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, BlobPropertyBag, FormData, HtmlAnchorElement, Url};

use super::{ClientError, Download, Upload};
use crate::wire::ErrorEnvelope;

fn js_error(e: impl std::fmt::Debug) -> ClientError {
    ClientError::new(format!("the browser refused: {e:?}"))
}

/// The server's error envelope, or the status line.
async fn refusal(response: Response) -> ClientError {
    match response.json::<ErrorEnvelope>().await {
        Ok(ErrorEnvelope { error }) => ClientError {
            message: error.message,
            details: error.details.unwrap_or_default(),
        },
        Err(_) => ClientError::new(format!(
            "the gateway answered {} {}",
            response.status(),
            response.status_text()
        )),
    }
}

async fn answer<T: DeserializeOwned>(response: Response) -> Result<T, ClientError> {
    if !response.ok() {
        return Err(refusal(response).await);
    }
    response
        .json()
        .await
        .map_err(|e| ClientError::new(format!("unreadable answer: {e}")))
}

pub async fn post_json<B: Serialize, T: DeserializeOwned>(
    url: &str,
    body: &B,
) -> Result<T, ClientError> {
    let request = Request::post(url).json(body).map_err(js_error)?;
    answer(request.send().await.map_err(js_error)?).await
}

pub async fn get_json<T: DeserializeOwned>(url: &str) -> Result<T, ClientError> {
    answer(Request::get(url).send().await.map_err(js_error)?).await
}

pub async fn post_empty<T: DeserializeOwned>(url: &str) -> Result<T, ClientError> {
    answer(Request::post(url).send().await.map_err(js_error)?).await
}

pub async fn post_file<T: DeserializeOwned>(url: &str, upload: Upload) -> Result<T, ClientError> {
    let form = FormData::new().map_err(js_error)?;
    let blob = blob(&upload.bytes, "application/json")?;
    form.append_with_blob_and_filename("file", &blob, &upload.file_name)
        .map_err(js_error)?;
    for (name, value) in &upload.fields {
        form.append_with_str(name, value).map_err(js_error)?;
    }
    let request = Request::post(url).body(form).map_err(js_error)?;
    answer(request.send().await.map_err(js_error)?).await
}

/// GET (no body) or POST (JSON body) a file, telling `progress` the bytes received.
pub async fn download<B: Serialize>(
    url: &str,
    body: Option<&B>,
    progress: impl Fn(u64),
) -> Result<Download, ClientError> {
    let response = match body {
        None => Request::get(url).send().await,
        Some(b) => Request::post(url).json(b).map_err(js_error)?.send().await,
    }
    .map_err(js_error)?;
    if !response.ok() {
        return Err(refusal(response).await);
    }
    let file_name = response
        .headers()
        .get("content-disposition")
        .and_then(|d| {
            d.split("filename=\"")
                .nth(1)
                .map(|s| s.trim_end_matches('"').to_owned())
        })
        .unwrap_or_else(|| "export.json".into());
    let stream = response
        .body()
        .ok_or_else(|| ClientError::new("empty answer"))?;
    let reader: web_sys::ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
    let mut bytes = Vec::new();
    loop {
        let chunk = JsFuture::from(reader.read()).await.map_err(js_error)?;
        let done = Reflect::get(&chunk, &JsValue::from_str("done"))
            .map(|d| d.is_truthy())
            .unwrap_or(true);
        if done {
            break;
        }
        let value = Reflect::get(&chunk, &JsValue::from_str("value")).map_err(js_error)?;
        bytes.extend(Uint8Array::new(&value).to_vec());
        progress(bytes.len() as u64);
    }
    Ok(Download { file_name, bytes })
}

fn blob(bytes: &[u8], mime: &str) -> Result<Blob, ClientError> {
    let parts = js_sys::Array::of1(&Uint8Array::from(bytes));
    let options = BlobPropertyBag::new();
    options.set_type(mime);
    Blob::new_with_u8_array_sequence_and_options(&parts, &options).map_err(js_error)
}

/// The content of a file the user chose or dropped.
pub async fn read_file(file: web_sys::File) -> Result<Vec<u8>, ClientError> {
    gloo_file::futures::read_as_bytes(&gloo_file::File::from(file))
        .await
        .map_err(|e| ClientError::new(format!("the file cannot be read: {e}")))
}

/// Follows a job's Server-Sent Events, telling `on_status` each; the final status.
pub async fn follow_job(
    events_url: &str,
    on_status: impl Fn(crate::jobs::JobStatus),
) -> Result<crate::jobs::JobStatus, ClientError> {
    use futures_util::StreamExt;
    use gloo_net::eventsource::futures::EventSource;
    let mut source = EventSource::new(events_url).map_err(js_error)?;
    let progress = source.subscribe("progress").map_err(js_error)?;
    let done = source.subscribe("done").map_err(js_error)?;
    let mut events = futures_util::stream::select(progress, done);
    while let Some(Ok((kind, message))) = events.next().await {
        let data = message.data().as_string().unwrap_or_default();
        let Ok(status) = serde_json::from_str::<crate::jobs::JobStatus>(&data) else {
            continue;
        };
        on_status(status.clone());
        if kind == "done" {
            source.close();
            return Ok(status);
        }
    }
    source.close();
    Err(ClientError::new(
        "the progress stream ended early; reload to see the job's status",
    ))
}

/// Hands `bytes` to the browser as a downloaded file named `file_name`.
pub fn save(download: &Download) -> Result<(), ClientError> {
    let blob = blob(&download.bytes, "application/json")?;
    let url = Url::create_object_url_with_blob(&blob).map_err(js_error)?;
    let document = leptos::prelude::document();
    let anchor: HtmlAnchorElement = document
        .create_element("a")
        .map_err(js_error)?
        .unchecked_into();
    anchor.set_href(&url);
    anchor.set_download(&download.file_name);
    anchor.click();
    Url::revoke_object_url(&url).map_err(js_error)?;
    Ok(())
}
