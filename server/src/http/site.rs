//! The UI's static bundle (`/pkg/mcpgateway.js`, its WASM and CSS, and `public/`).
//!
//! A release binary carries the bundle it was built with, so `mcpgateway serve` works
//! from any directory. The site folder on disk (`LEPTOS_SITE_ROOT`, default
//! `target/site`) wins when it holds a bundle: a checkout serves what it just built.
//! Debug builds read the embedded folder from disk at run time (rust-embed's default).

use std::path::{Path, PathBuf};

use axum::{
    Router,
    http::{StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use tower_http::services::ServeDir;

use super::AppState;

/// The bundle as `./scripts/dev.sh site` left it when the binary was built.
#[derive(rust_embed::Embed)]
#[folder = "../target/site"]
#[allow_missing = true]
struct Embedded;

/// Where the bundle comes from.
#[derive(Debug, PartialEq, Eq)]
pub enum Site {
    Disk(PathBuf),
    Embedded,
    /// No bundle anywhere: pages render but never hydrate.
    Missing(PathBuf),
}

impl Site {
    /// The folder when it holds `{pkg_dir}/{output_name}_bg.wasm`, else the embedded copy.
    pub fn find(root: &Path, pkg_dir: &str, output_name: &str) -> Site {
        let wasm = format!("{pkg_dir}/{output_name}_bg.wasm");
        if root.join(&wasm).is_file() {
            Site::Disk(root.to_owned())
        } else if Embedded::get(&wasm).is_some() {
            Site::Embedded
        } else {
            Site::Missing(root.to_owned())
        }
    }

    /// Serves the bundle as `router`'s fallback, and says at start where it comes from.
    pub fn serve(self, router: Router<AppState>) -> Router<AppState> {
        match self {
            Site::Disk(root) => {
                tracing::info!(site.root = %root.display(), "UI bundle served from {}", root.display());
                router.fallback_service(ServeDir::new(root))
            }
            Site::Embedded => {
                tracing::info!("UI bundle served from the copy built into this binary");
                router.fallback(embedded)
            }
            Site::Missing(root) => {
                tracing::error!(
                    site.root = %root.display(),
                    "no UI bundle in {} nor in this binary: pages will not hydrate; build it with \
                     `./scripts/dev.sh site` or point LEPTOS_SITE_ROOT at a built site",
                    root.display()
                );
                router.fallback_service(ServeDir::new(root))
            }
        }
    }
}

async fn embedded(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let Some(file) = Embedded::get(path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mime = file.metadata.mimetype().to_owned();
    ([(header::CONTENT_TYPE, mime)], file.data).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_without_the_bundle_is_passed_over() {
        let empty = tempfile::tempdir().unwrap();
        let site = Site::find(empty.path(), "pkg", "mcpgateway");
        // The embedded copy exists only where the bundle was built before this crate.
        let built = Embedded::get("pkg/mcpgateway_bg.wasm").is_some();
        assert_eq!(
            site,
            if built {
                Site::Embedded
            } else {
                Site::Missing(empty.path().to_owned())
            }
        );
        std::fs::create_dir_all(empty.path().join("pkg")).unwrap();
        std::fs::write(empty.path().join("pkg/mcpgateway_bg.wasm"), b"\0asm").unwrap();
        assert_eq!(
            Site::find(empty.path(), "pkg", "mcpgateway"),
            Site::Disk(empty.path().to_owned())
        );
    }
}
