//! What the edge keeps of a request for the report it may have to write after the handler
//! consumed the request: the method, URI, headers and peer (cheap clones: header values
//! and the URI share the received bytes) and the form body the CSRF layer captured. Every
//! string, masked or not, is built from them only when a report or the DEBUG page is due.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use poem::Request;
use poem::http::{HeaderMap, Method, Uri, header};

use crate::reporting::{NotFound, RawRequest, mask};
use crate::state::AppState;
use crate::telemetry::RequestContext;
use crate::web::client;

/// The urlencoded body of a state-changing request, kept by the CSRF middleware (which reads
/// it anyway) for the error report the edge may have to write after the handler consumed it.
#[derive(Clone, Default)]
pub struct FormCapture(Arc<Mutex<Option<bytes::Bytes>>>);

impl FormCapture {
    pub(super) fn keep(&self, body: bytes::Bytes) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(body);
        }
    }

    fn fields(&self) -> Vec<(String, String)> {
        self.0
            .lock()
            .ok()
            .and_then(|slot| slot.as_deref().map(RawRequest::parse_form))
            .unwrap_or_default()
    }
}

/// What is kept of a request before it is handed on: no string is built here.
pub(super) struct RequestSnapshot {
    pub(super) method: Method,
    uri: Uri,
    headers: HeaderMap,
    peer: Option<IpAddr>,
    form: FormCapture,
}

impl RequestSnapshot {
    pub(super) fn of(req: &Request, form: FormCapture) -> Self {
        Self {
            method: req.method().clone(),
            uri: req.original_uri().clone(),
            headers: req.headers().clone(),
            peer: req.remote_addr().as_socket_addr().map(|a| a.ip()),
            form,
        }
    }

    pub(super) fn path(&self) -> &str {
        self.uri.path()
    }
    fn header(&self, name: header::HeaderName) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }

    fn host(&self) -> String {
        self.header(header::HOST).unwrap_or_default()
    }

    /// The URL as the client asked for it: `BASE_URL`'s scheme, the `Host`, path and query.
    fn full_url(&self, state: &AppState) -> String {
        let uri = self.uri.to_string();
        let path_and_query = if uri.starts_with('/') {
            uri
        } else {
            // An absolute-form request target already names scheme and host.
            return uri;
        };
        format!(
            "{}://{}{path_and_query}",
            state.settings.base_url.scheme(),
            self.host()
        )
    }

    /// The client: the peer, or what `X-Forwarded-For` says when the peer is a trusted proxy.
    fn client_ip(&self, state: &AppState) -> Option<IpAddr> {
        self.peer
            .map(|peer| client::client_addr(peer, &self.headers, &state.settings))
    }

    /// Method, URL and headers, masked, for the DEBUG page.
    pub(super) fn describe(&self, state: &AppState) -> Vec<(String, String)> {
        let settings = &state.settings;
        let secrets = settings.secret_values();
        let mut rows = vec![
            ("Method".to_string(), self.method.to_string()),
            (
                "URL".to_string(),
                mask::scrub(&self.uri.to_string(), &secrets),
            ),
        ];
        for (name, value) in &self.headers {
            let value = String::from_utf8_lossy(value.as_bytes());
            let shown = mask::masked_value(name.as_str(), &value, &settings.sensitive_fields);
            rows.push((name.to_string(), mask::scrub(&shown, &secrets)));
        }
        rows
    }

    /// The unmasked request for a report (the report masks it when it is built).
    pub(super) fn raw(&self, state: &AppState, ctx: &RequestContext, route: &str) -> RawRequest {
        let user = ctx.user();
        RawRequest {
            method: self.method.to_string(),
            url: self.full_url(state),
            route: route.to_string(),
            form: self.form.fields(),
            headers: self
                .headers
                .iter()
                .map(|(name, value)| {
                    (
                        name.to_string(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            user: (user != "-").then_some(user),
            peer: self.peer,
            request_id: ctx.request_id.clone(),
        }
    }

    pub(super) fn not_found(&self, state: &AppState, ctx: &RequestContext) -> NotFound {
        NotFound {
            status: 404,
            path: self.path().to_string(),
            url: self.full_url(state),
            host: self.host(),
            referer: self.header(header::REFERER),
            user_agent: self.header(header::USER_AGENT),
            client_ip: self.client_ip(state),
            request_id: ctx.request_id.clone(),
        }
    }
}
