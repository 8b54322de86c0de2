//! HTTP validation caching for pages whose content follows a data version (SPEC §9): a strong
//! `ETag`, `Last-Modified`, `304 Not Modified` for `If-None-Match` / `If-Modified-Since`,
//! `Cache-Control: private, no-cache` (the browser revalidates every time, so a figure is never
//! stale after a send; SPEC §9) and `Vary: Cookie, HX-Request` (the page differs per user, and
//! per [`crate::web::htmx::VARY`] as every htmx-aware answer does).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use poem::http::{HeaderValue, StatusCode, header};
use poem::web::headers::{self, HeaderMapExt};
use poem::{Request, Response};
use sha2::{Digest, Sha256};

use crate::db::users::User;
use crate::db::versions::DataVersion;
use crate::web::htmx::PageCtx;

pub const CACHE_CONTROL: &str = "private, no-cache";
pub const VARY: &str = "Cookie, HX-Request";

/// What identifies one rendering of a page: the data version it shows and everything else
/// that changes its bytes (viewer, parameters, fragment or page).
#[derive(Debug, Clone)]
pub struct Validator {
    etag: String,
    last_modified: SystemTime,
}

impl Validator {
    /// `version` and `updated_at_ms` come from the data version; `variant` names everything
    /// else the response depends on.
    pub fn new(version: i64, updated_at_ms: i64, variant: &str) -> Self {
        let digest = Sha256::digest(format!("{version}\0{variant}").as_bytes());
        let etag = format!("\"{}\"", &hex::encode(digest)[..32]);
        // HTTP dates have whole seconds; round down so If-Modified-Since compares exactly.
        let secs = u64::try_from(updated_at_ms.max(0) / 1000).unwrap_or(0);
        Self {
            etag,
            last_modified: UNIX_EPOCH + Duration::from_secs(secs),
        }
    }

    pub fn etag(&self) -> &str {
        &self.etag
    }

    /// Whether the client's copy is current. `If-None-Match` wins over `If-Modified-Since`
    /// (RFC 9110 §13.2.2).
    pub fn is_fresh(&self, req: &Request) -> bool {
        if let Some(tags) = req.header(header::IF_NONE_MATCH) {
            return tags
                .split(',')
                .map(str::trim)
                .any(|t| t == "*" || t == self.etag || t.strip_prefix("W/") == Some(&self.etag));
        }
        match req.headers().typed_get::<headers::IfModifiedSince>() {
            Some(since) => !since.is_modified(self.last_modified),
            None => false,
        }
    }

    /// Adds the validators and caching headers to a response.
    pub fn apply(&self, resp: &mut Response) {
        let headers = resp.headers_mut();
        if let Ok(etag) = HeaderValue::from_str(&self.etag) {
            headers.insert(header::ETAG, etag);
        }
        headers.typed_insert(headers::LastModified::from(self.last_modified));
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(CACHE_CONTROL),
        );
        headers.insert(header::VARY, HeaderValue::from_static(VARY));
    }

    /// `304 Not Modified` with the validators and no body.
    pub fn not_modified(&self) -> Response {
        let mut resp = Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .finish();
        self.apply(&mut resp);
        resp
    }
}

/// The validator of a page that shows `version`'s data to this viewer: the variant holds
/// everything else its bytes depend on — the page and its parameters, fragment or full page,
/// and what the layout shows of the viewer (name, zone, permissions, auth version).
pub fn for_page(
    ctx: &PageCtx,
    user: &User,
    version: &DataVersion,
    page: &str,
    params: &str,
) -> Validator {
    let variant = format!(
        "{page}\0{params}\0{}\0{}\0{}\0{}\0{}\0{:?}\0{}{}\0{}",
        ctx.fragment,
        user.id,
        user.auth_version,
        user.email,
        user.full_name,
        user.time_zone,
        u8::from(user.view_all_mailings),
        u8::from(user.is_superuser),
        version.token(),
    );
    Validator::new(version.version, version.updated_at, &variant)
}

/// `304 Not Modified` when the client's copy is current — never while a flash message is
/// pending, since that message must be shown (and is consumed by this request).
pub fn not_modified(req: &Request, ctx: &PageCtx, validator: &Validator) -> Option<Response> {
    (ctx.flash.is_none() && validator.is_fresh(req)).then(|| validator.not_modified())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_follow_version_and_variant() {
        let a = Validator::new(1, 1_000, "user:1");
        assert_eq!(a.etag(), Validator::new(1, 5_000, "user:1").etag());
        assert_ne!(a.etag(), Validator::new(2, 1_000, "user:1").etag());
        assert_ne!(a.etag(), Validator::new(1, 1_000, "user:2").etag());
        assert!(a.etag().starts_with('"') && a.etag().ends_with('"'));
    }

    #[test]
    fn freshness() {
        let v = Validator::new(3, 1_700_000_000_123, "x");
        let req = |name: &str, value: &str| Request::builder().header(name, value).finish();
        assert!(v.is_fresh(&req("if-none-match", v.etag())));
        assert!(v.is_fresh(&req("if-none-match", &format!("\"nope\", {}", v.etag()))));
        assert!(!v.is_fresh(&req("if-none-match", "\"nope\"")));
        assert!(v.is_fresh(&req("if-modified-since", "Tue, 14 Nov 2023 22:13:20 GMT")));
        assert!(!v.is_fresh(&req("if-modified-since", "Tue, 14 Nov 2023 22:13:19 GMT")));
        // A stale ETag with a fresh date is stale: If-None-Match decides.
        let both = Request::builder()
            .header("if-none-match", "\"old\"")
            .header("if-modified-since", "Tue, 14 Nov 2023 22:13:20 GMT")
            .finish();
        assert!(!v.is_fresh(&both));
        assert!(!v.is_fresh(&Request::builder().finish()));
    }
}
