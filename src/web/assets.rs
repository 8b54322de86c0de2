//! Static files embedded in the binary (htmx, stylesheet, script).
//!
//! Links carry the file's content hash (`?v=…`), so a URL names one exact content and may be
//! cached for a year; a request with an outdated or missing hash is served with revalidation.

use std::collections::HashMap;
use std::sync::OnceLock;

use poem::http::{StatusCode, header};
use poem::web::Path;
use poem::{Request, Response, handler};

#[derive(rust_embed::Embed)]
#[folder = "assets/"]
#[exclude = "*.md"]
struct Files;

/// The vendored htmx, pinned by its versioned file name.
pub const HTMX: &str = "vendor/htmx-2.0.11.min.js";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "public, max-age=0, must-revalidate";

/// Content hashes (hex sha256) by path, computed at compile time by rust-embed.
fn hashes() -> &'static HashMap<String, String> {
    static HASHES: OnceLock<HashMap<String, String>> = OnceLock::new();
    HASHES.get_or_init(|| {
        Files::iter()
            .filter_map(|path| {
                let file = Files::get(&path)?;
                Some((path.to_string(), hex::encode(file.metadata.sha256_hash())))
            })
            .collect()
    })
}

/// The URL of an asset, fingerprinted with its content hash.
pub fn url(path: &str) -> String {
    match hashes().get(path) {
        Some(hash) => format!("/assets/{path}?v={}", &hash[..12]),
        None => format!("/assets/{path}"),
    }
}

#[handler]
pub fn serve(Path(path): Path<String>, req: &Request) -> Response {
    let Some(file) = Files::get(&path) else {
        return Response::builder().status(StatusCode::NOT_FOUND).finish();
    };
    let hash = hex::encode(file.metadata.sha256_hash());
    let etag = format!("\"{}\"", &hash[..32]);
    let fingerprinted = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("v=")))
        .is_some_and(|v| hash.starts_with(v) && v.len() >= 8);
    let cache_control = if fingerprinted || path.starts_with("vendor/") {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    let builder = Response::builder()
        .header(header::CACHE_CONTROL, cache_control)
        .header(header::ETAG, etag.as_str());
    let not_modified = req
        .header(header::IF_NONE_MATCH)
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if not_modified {
        return builder.status(StatusCode::NOT_MODIFIED).finish();
    }
    builder
        .header(header::CONTENT_TYPE, file.metadata.mimetype())
        .body(file.data.into_owned())
}
