//! Property tests over every form field and query parameter of every route in
//! `autosend::web::route_table()` (SPEC §11): whatever arrives — arbitrary Unicode, huge
//! values, CR/LF, NUL, SQL and HTML metacharacters, malformed dates and ids, missing and
//! repeated fields, wrong content types, invalid UTF-8 — the answer is 2xx, 3xx or 4xx,
//! never 5xx, and a 4xx leaves every table's row count as it was (no partial write).
//!
//! One app per property (a tokio runtime inside the proptest runner); every request is
//! made by a logged-in user, with a valid CSRF header, so it reaches the handler.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use poem::http::Method;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::world::{OTHER, OWNER, Objects, ROOT, World, objects};

/// The fields each route reads (query parameters for GET, form fields for POST), from
/// SPEC §6 and the handlers. Every row of the route table must be here or in [`SKIPPED`]
/// (checked), so a new route cannot escape by being forgotten.
const FIELDS: &[(&str, &str, &[&str])] = &[
    ("GET", "/", &[]),
    ("GET", "/healthz", &[]),
    ("GET", "/metrics", &[]),
    ("GET", "/assets/*path", &["v"]),
    ("GET", "/users/login", &["next"]),
    ("POST", "/users/login", &["email", "password", "next"]),
    ("GET", "/users/signup", &[]),
    (
        "POST",
        "/users/signup",
        &["email", "password", "password2", "full_name"],
    ),
    ("GET", "/users/activate/:token", &[]),
    ("GET", "/users/password-reset", &[]),
    ("POST", "/users/password-reset", &["email"]),
    ("GET", "/users/password-reset/:token", &[]),
    (
        "POST",
        "/users/password-reset/:token",
        &["password", "password2"],
    ),
    ("GET", "/users/password-change", &[]),
    (
        "POST",
        "/users/password-change",
        &["old_password", "password", "password2"],
    ),
    ("GET", "/users/profile", &[]),
    ("GET", "/users/profile/edit", &[]),
    (
        "POST",
        "/users/profile/edit",
        &["full_name", "phone", "country", "time_zone"],
    ),
    ("GET", "/clients/", &["q", "sort", "page"]),
    ("POST", "/clients/", &["email", "full_name", "comment"]),
    ("GET", "/clients/new", &[]),
    ("GET", "/clients/import", &[]),
    ("POST", "/clients/import", &["file"]),
    ("GET", "/clients/export.csv", &["q", "sort"]),
    ("GET", "/clients/:id", &[]),
    ("GET", "/clients/:id/edit", &[]),
    (
        "POST",
        "/clients/:id/edit",
        &["email", "full_name", "comment", "version"],
    ),
    ("GET", "/clients/:id/delete", &[]),
    ("POST", "/clients/:id/delete", &[]),
    ("GET", "/messages/", &["q", "page"]),
    ("POST", "/messages/", &["subject", "body", "body_html"]),
    ("GET", "/messages/new", &[]),
    ("GET", "/messages/:id", &[]),
    ("GET", "/messages/:id/edit", &[]),
    (
        "POST",
        "/messages/:id/edit",
        &["subject", "body", "body_html", "version"],
    ),
    ("GET", "/messages/:id/delete", &[]),
    ("POST", "/messages/:id/delete", &[]),
    ("GET", "/mailings/stats/", &["sort", "dir", "page"]),
    (
        "GET",
        "/mailings/reports/",
        &["from", "to", "user", "format", "rows"],
    ),
    (
        "GET",
        "/mailings/reports/export.csv",
        &["from", "to", "user", "rows"],
    ),
    ("GET", "/mailings/", &["status", "page"]),
    ("POST", "/mailings/", MAILING_FIELDS),
    ("GET", "/mailings/new", MAILING_FIELDS),
    ("GET", "/mailings/:id", &[]),
    ("GET", "/mailings/:id/edit", MAILING_FIELDS),
    ("POST", "/mailings/:id/edit", MAILING_FIELDS),
    ("GET", "/mailings/:id/delete", &[]),
    ("POST", "/mailings/:id/delete", &[]),
    ("GET", "/mailings/:id/restore", &[]),
    ("POST", "/mailings/:id/restore", &[]),
    ("GET", "/mailings/:id/send", &[]),
    ("POST", "/mailings/:id/send", &["dry_run"]),
    ("GET", "/mailings/:id/disable", &[]),
    ("POST", "/mailings/:id/disable", &[]),
    ("GET", "/mailings/:id/progress", &[]),
    ("GET", "/mailings/:id/logs", &["status", "page"]),
    ("GET", "/admin/users", &["q", "page"]),
    (
        "POST",
        "/admin/users/:id",
        &["is_active", "view_all_mailings", "disable_mailing"],
    ),
    ("GET", "/admin/errors", &["page"]),
    ("POST", "/admin/errors/:id/resolve", &[]),
    ("GET", "/admin/error-test", &[]),
    ("GET", "/u/:token", &[]),
    ("POST", "/u/:token", &["List-Unsubscribe"]),
];

/// The mailing form, and the picker's reload of it on the GET pages.
const MAILING_FIELDS: &[&str] = &[
    "message_id",
    "recipient_ids",
    "start_at",
    "end_at",
    "period",
    "recipient_q",
    "all_matching",
    "picker",
    "version",
];

/// Routes left out, and why.
const SKIPPED: &[(&str, &str)] = &[
    // It ends the session every case runs in; it reads no input.
    ("POST", "/users/logout"),
    // Its whole point is to fail with a 500 (reporting end to end, tests/api/reporting.rs).
    ("POST", "/admin/error-test"),
];

/// A valid form per POST route (placeholders filled when sent); the third property breaks one
/// field of it at a time, so the requests get past the first check and meet the writes.
/// Routes not listed take no fields.
const VALID: &[(&str, &[(&str, &str)])] = &[
    (
        "/users/login",
        &[
            ("email", "nobody@example.com"),
            ("password", "not the password"),
        ],
    ),
    (
        "/users/signup",
        &[
            ("email", "new.{unique}@example.com"),
            ("password", "a long enough password"),
            ("password2", "a long enough password"),
            ("full_name", "New User"),
        ],
    ),
    ("/users/password-reset", &[("email", "owner@example.com")]),
    (
        "/users/password-reset/:token",
        &[
            ("password", "a long enough password"),
            ("password2", "a long enough password"),
        ],
    ),
    (
        "/users/password-change",
        &[
            ("old_password", "wrong old password"),
            ("password", "a long enough password"),
            ("password2", "a long enough password"),
        ],
    ),
    (
        "/users/profile/edit",
        &[
            ("full_name", "Root User"),
            ("phone", "+1 555 0100"),
            ("country", "Iceland"),
            ("time_zone", "UTC"),
        ],
    ),
    (
        "/clients/",
        &[
            ("email", "r.{unique}@example.com"),
            ("full_name", "Valid Name"),
            ("comment", ""),
        ],
    ),
    (
        "/clients/import",
        &[(
            "file",
            "email,full_name,comment\na.{unique}@example.com,Ann Valid,\nb.{unique}@example.com,Bob Valid,hi\n",
        )],
    ),
    (
        "/clients/:id/edit",
        &[
            ("email", "e.{unique}@example.com"),
            ("full_name", "Valid Name"),
            ("comment", "edited"),
        ],
    ),
    (
        "/messages/",
        &[
            ("subject", "Subject"),
            ("body", "Body {{full_name}}"),
            ("body_html", ""),
        ],
    ),
    (
        "/messages/:id/edit",
        &[
            ("subject", "Subject"),
            ("body", "Body {{email}}"),
            ("body_html", "<p>x</p>"),
        ],
    ),
    ("/mailings/", VALID_MAILING),
    ("/mailings/:id/edit", VALID_MAILING),
    ("/mailings/:id/send", &[("dry_run", "1")]),
    (
        "/admin/users/:id",
        &[("is_active", "on"), ("view_all_mailings", "on")],
    ),
];

const VALID_MAILING: &[(&str, &str)] = &[
    ("message_id", "{message}"),
    ("recipient_ids", "{recipient}"),
    ("start_at", "2031-01-01T09:00"),
    ("end_at", "2031-02-01T09:00"),
    ("period", "weekly"),
];

/// How one field of a valid form is broken.
#[derive(Debug, Clone)]
enum Mutation {
    Replace(String),
    Drop,
    Repeat(String),
    Stranger(String),
}

fn mutated_case(routes: &Routes) -> BoxedStrategy<Case> {
    for (path, _) in VALID {
        assert!(
            routes.iter().any(|(_, p, _)| p == path),
            "VALID has {path}, which is no longer a fuzzed POST route"
        );
    }
    let forms: Vec<&'static [(&'static str, &'static str)]> = routes
        .iter()
        .map(|(_, path, _)| {
            VALID
                .iter()
                .find(|(p, _)| p == path)
                .map_or(&[][..], |(_, form)| *form)
        })
        .collect();
    let mutation = prop_oneof![
        5 => value().prop_map(Mutation::Replace),
        1 => Just(Mutation::Drop),
        2 => value().prop_map(Mutation::Repeat),
        1 => value().prop_map(Mutation::Stranger),
    ];
    (
        0..forms.len(),
        any::<proptest::sample::Index>(),
        mutation,
        prop_oneof![
            3 => Just("{real}".to_string()),
            1 => path_param(),
        ],
        prop_oneof![4 => Just(Body::Urlencoded), 1 => Just(Body::Multipart)],
    )
        .prop_map(move |(route, which, mutation, param, body)| {
            let mut fields: Vec<(String, String)> = forms[route]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            match (fields.is_empty(), mutation) {
                (_, Mutation::Stranger(v)) | (true, Mutation::Replace(v) | Mutation::Repeat(v)) => {
                    fields.push(("x".into(), v))
                }
                (true, Mutation::Drop) => {}
                (false, Mutation::Replace(v)) => {
                    let at = which.index(fields.len());
                    fields[at].1 = v;
                }
                (false, Mutation::Drop) => {
                    fields.remove(which.index(fields.len()));
                }
                (false, Mutation::Repeat(v)) => {
                    let name = fields[which.index(fields.len())].0.clone();
                    fields.push((name, v));
                }
            }
            Case {
                route,
                param,
                fields,
                body,
                query: Query::Encoded,
                as_owner: false,
            }
        })
        .boxed()
}

/// Values that have broken web apps before.
const NASTY: &[&str] = &[
    "",
    " ",
    "\0",
    "a\0b",
    "\r\n",
    "x@example.com\r\nBcc: victim@example.com",
    "Subject\nBcc: a@b.c",
    "' OR 1=1 --",
    "'; DROP TABLE users; --",
    "\" OR \"\"=\"",
    "%",
    "_",
    "\\",
    "%00",
    "%FF",
    "<script>alert(1)</script>",
    "\"><img src=x onerror=alert(1)>",
    "{{full_name}}{{",
    "{{#each}}",
    "0",
    "-1",
    "1.5",
    "1e3",
    " 7 ",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "99999999999999999999",
    "NaN",
    "on",
    "off",
    "true",
    "once",
    "daily",
    "weekly",
    "monthly",
    "yearly",
    "ONCE",
    "2030-01-01T09:00",
    "2030-01-01",
    "2026-13-01T09:00",
    "2026-02-30T25:61",
    "0000-00-00T00:00",
    "9999-12-31T23:59",
    "-0001-01-01T00:00",
    "2026-03-29T02:30",
    "2026-10-25T02:30",
    "+275760-09-13",
    "yesterday",
    "2026-01-01/2026-12-31",
    "Europe/Paris",
    "America/New_York",
    "Mars/Olympus",
    "../../etc/passwd",
    "UTC",
    "valid@example.com",
    "owner@example.com",
    "OWNER@EXAMPLE.COM",
    "a@b",
    "a@@b",
    "<a@b.c>",
    "\"quoted\"@example.com",
    "üñí@exämple.com",
    "a very long password indeed",
    "short",
    "email,full_name,comment\nbob@example.com,Bob Bobson,hi\n",
    "email,full_name,comment\n\"unterminated,x,y\n",
    "email;full_name\n\u{feff}x@y.z;X\n",
    "\u{feff}",
    "\u{202e}gnp.exe",
    "\u{fffd}",
    "\u{1f600}",
    "mailings",
    "days",
    "csv",
    "asc",
    "sent",
    "error",
    "name",
    "-created",
];

/// Placeholders filled with the world's current objects when the request is made.
const REAL: &[&str] = &["{recipient}", "{message}", "{mailing}", "{user}", "{owner}"];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::collection::vec(any::<char>(), 0..40)
            .prop_map(|chars| chars.into_iter().collect::<String>()),
        4 => proptest::sample::select(NASTY).prop_map(str::to_string),
        2 => proptest::sample::select(REAL).prop_map(str::to_string),
        1 => (
            proptest::sample::select(&['x', 'é', '<', '\'', '\0', '\n', '😀'][..]),
            proptest::sample::select(&[256usize, 3_000, 70_000][..]),
        )
            .prop_map(|(c, n)| c.to_string().repeat(n)),
    ]
}

/// A path parameter: the real object or token most of the time, else junk.
fn path_param() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("{real}".to_string()),
        2 => proptest::sample::select(NASTY).prop_map(str::to_string),
        1 => proptest::collection::vec(any::<char>(), 1..20)
            .prop_map(|chars| chars.into_iter().collect::<String>()),
    ]
}

/// How a POST body is sent.
#[derive(Debug, Clone, Copy)]
enum Body {
    Urlencoded,
    Multipart,
    Json,
    TextPlain,
    NoContentType,
    /// `application/x-www-form-urlencoded` whose bytes are not UTF-8, raw and escaped.
    InvalidUtf8,
    /// A multipart content type with a body that is not multipart.
    BrokenMultipart,
}

/// How a query string is sent.
#[derive(Debug, Clone, Copy)]
enum Query {
    Encoded,
    /// Encoded, then broken escapes and stray separators appended.
    Mangled,
}

#[derive(Clone)]
struct Case {
    route: usize,
    param: String,
    fields: Vec<(String, String)>,
    body: Body,
    query: Query,
    as_owner: bool,
}

/// Short enough to read in a failure message: long values show their length.
impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let short = |s: &str| match s.chars().count() > 80 {
            true => format!(
                "{:?}… ({} chars)",
                s.chars().take(40).collect::<String>(),
                s.chars().count()
            ),
            false => format!("{s:?}"),
        };
        let fields: Vec<String> = self
            .fields
            .iter()
            .map(|(k, v)| format!("{}={}", short(k), short(v)))
            .collect();
        f.debug_struct("Case")
            .field("route", &self.route)
            .field("param", &short(&self.param))
            .field("fields", &fields)
            .field("body", &self.body)
            .field("query", &self.query)
            .field("as_owner", &self.as_owner)
            .finish()
    }
}

/// The routes that are fuzzed: the table, minus [`SKIPPED`], each with its fields.
fn fuzzed_routes() -> Vec<(Method, &'static str, &'static [&'static str])> {
    let table = autosend::web::route_table();
    let mut routes = Vec::new();
    for (path, method) in &table {
        let skipped = SKIPPED
            .iter()
            .any(|(m, p)| *m == method.as_str() && p == path);
        let fields = FIELDS
            .iter()
            .find(|(m, p, _)| *m == method.as_str() && p == path)
            .map(|(_, _, fields)| *fields);
        match (skipped, fields) {
            (true, None) => {}
            (false, Some(fields)) => routes.push((method.clone(), *path, fields)),
            (true, Some(_)) => panic!("{method} {path} is both fuzzed and skipped"),
            (false, None) => panic!("{method} {path}: list its fields in bad_input::FIELDS"),
        }
    }
    for (method, path, _) in FIELDS {
        assert!(
            table
                .iter()
                .any(|(p, m)| p == path && m.as_str() == *method),
            "{method} {path} is in FIELDS but no longer a route"
        );
    }
    routes
}

fn case(routes: &Routes) -> BoxedStrategy<Case> {
    let routes: Vec<&'static [&'static str]> = routes.iter().map(|(_, _, f)| *f).collect();
    (0..routes.len())
        .prop_flat_map(move |route| {
            let known: Vec<String> = routes[route]
                .iter()
                .map(|f| f.to_string())
                .chain(["csrf_token", "x", "email[]", ""].map(str::to_string))
                .collect();
            // Each known field 0–2 times (missing, once, repeated), plus strangers.
            let name = proptest::sample::select(known);
            let fields = proptest::collection::vec((name, value()), 0..10);
            (
                Just(route),
                path_param(),
                fields,
                prop_oneof![
                    6 => Just(Body::Urlencoded),
                    2 => Just(Body::Multipart),
                    1 => Just(Body::Json),
                    1 => Just(Body::TextPlain),
                    1 => Just(Body::NoContentType),
                    1 => Just(Body::InvalidUtf8),
                    1 => Just(Body::BrokenMultipart),
                ],
                prop_oneof![3 => Just(Query::Encoded), 1 => Just(Query::Mangled)],
                any::<bool>(),
            )
                .prop_map(|(route, param, fields, body, query, as_owner)| Case {
                    route,
                    param,
                    fields,
                    body,
                    query,
                    as_owner,
                })
        })
        .boxed()
}

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The app, two logged-in browsers with their CSRF tokens, and the objects the
/// placeholders name (replaced when a case deletes them).
struct Harness {
    world: World,
    root: (reqwest::Client, String),
    owner: (reqwest::Client, String),
    objects: Mutex<Objects>,
}

impl Harness {
    async fn new() -> Self {
        let world = World::build().await;
        let browser = |email: &'static str| {
            let world = &world;
            async move {
                let browser = world.browser(email).await;
                let token = world.app.csrf_token_as(&browser).await;
                (browser, token)
            }
        };
        let root = browser(ROOT).await;
        let owner = browser(OWNER).await;
        let objects = Mutex::new(Objects {
            recipient: world.recipient,
            message: world.message,
            mailing: world.mailing,
            spare_message: world.message,
        });
        Self {
            world,
            root,
            owner,
            objects,
        }
    }

    fn fill(&self, s: &str) -> String {
        if !s.contains('{') {
            return s.to_string();
        }
        let o = *self.objects.lock().unwrap();
        let unique = uuid::Uuid::new_v4().simple().to_string();
        s.replace("{unique}", &unique[..12])
            .replace("{recipient}", &o.recipient.to_string())
            .replace("{message}", &o.message.to_string())
            .replace("{mailing}", &o.mailing.to_string())
            .replace("{user}", &self.world.users[OTHER].to_string())
            .replace("{owner}", &self.world.users[OWNER].to_string())
    }

    /// The path with its parameter: the real one for `{real}`, else the junk, escaped.
    fn path(&self, pattern: &str, param: &str) -> String {
        let real = self.world.path(pattern);
        let real = match pattern.starts_with("/clients/")
            || pattern.starts_with("/messages/")
            || pattern.starts_with("/mailings/")
        {
            true => {
                let o = *self.objects.lock().unwrap();
                let id = if pattern.starts_with("/clients/") {
                    o.recipient
                } else if pattern.starts_with("/messages/") {
                    o.message
                } else {
                    o.mailing
                };
                pattern.replace(":id", &id.to_string())
            }
            false => real,
        };
        if param == "{real}" || !(pattern.contains(':') || pattern.contains('*')) {
            return real;
        }
        let junk = encode(param);
        pattern
            .replace(":id", &junk)
            .replace(":token", &junk)
            .replace("*path", &junk)
    }

    /// New objects when a case deleted one (so later cases still meet real ones).
    async fn replenish(&self) {
        let db = &self.world.app.state.db;
        let o = *self.objects.lock().unwrap();
        let gone = autosend::db::recipients::get(db, o.recipient)
            .await
            .unwrap()
            .is_none()
            || autosend::db::messages::get(db, o.message)
                .await
                .unwrap()
                .is_none()
            || autosend::db::mailings::get(db, o.mailing)
                .await
                .unwrap()
                .is_none();
        if gone {
            let tag = format!("re{}", uuid::Uuid::new_v4().simple());
            let fresh = objects(&self.world.app, self.world.users[OWNER], &tag).await;
            *self.objects.lock().unwrap() = fresh;
        }
    }

    /// The answer, or the error of a request the server cut short: a handler that answers
    /// before reading a large body (a refused login, say) lets the server close the
    /// connection while the client is still sending, which the client sees as a broken pipe.
    async fn request(
        &self,
        method: &Method,
        pattern: &str,
        case: &Case,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let (browser, token) = if case.as_owner {
            &self.owner
        } else {
            &self.root
        };
        let fields: Vec<(String, String)> = case
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), self.fill(v)))
            .collect();
        let mut url = self.world.app.url(&self.path(pattern, &case.param));
        let query = || {
            let mut q = fields
                .iter()
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect::<Vec<_>>()
                .join("&");
            if let Query::Mangled = case.query {
                q.push_str("&%&%FF=%zz&&=&q=%C3%28&page=%");
            }
            q
        };
        if *method == Method::GET {
            // A URL has a length limit before it reaches us (the client refuses to build
            // one over 64 KiB); long values are cut to fit.
            let q: String = query().chars().take(12_000).collect();
            if !q.is_empty() {
                url = format!("{url}?{q}");
            }
            return browser.get(url).send().await;
        }
        let request = browser
            .request(method.clone(), url)
            .header("X-CSRF-Token", token.as_str());
        let request = match case.body {
            Body::Urlencoded => request.form(&fields),
            Body::Multipart => {
                let mut form = reqwest::multipart::Form::new();
                for (k, v) in &fields {
                    form = match k.as_str() {
                        "file" => form.part(
                            k.clone(),
                            reqwest::multipart::Part::bytes(v.clone().into_bytes())
                                .file_name("upload.csv"),
                        ),
                        _ => form.text(k.clone(), v.clone()),
                    };
                }
                request.multipart(form)
            }
            Body::Json => {
                let map: serde_json::Map<String, serde_json::Value> = fields
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                    .collect();
                request
                    .header("Content-Type", "application/json")
                    .body(serde_json::Value::Object(map).to_string())
            }
            Body::TextPlain => request
                .header("Content-Type", "text/plain; charset=utf-8")
                .body(query()),
            Body::NoContentType => request.body(query()),
            Body::InvalidUtf8 => {
                let mut bytes = query().into_bytes();
                bytes.extend_from_slice(b"&email=\xff\xfe\xc3\x28&full_name=%FF%C3%28&body=\x80");
                request
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(bytes)
            }
            Body::BrokenMultipart => request
                .header("Content-Type", "multipart/form-data; boundary=XyZ")
                .body(format!(
                    "--XyZ\r\nContent-Disposition: form-data\r\n\r\n{}",
                    query()
                )),
        };
        request.send().await
    }
}

/// Runs one property: `cases` requests drawn by [`case`], each checked for "never 5xx,
/// no partial write on a 4xx".
type Routes = [(Method, &'static str, &'static [&'static str])];

fn fuzz(
    name: &str,
    only: fn(&Method) -> bool,
    strategy: fn(&Routes) -> BoxedStrategy<Case>,
    cases: u32,
) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let harness = runtime.block_on(Harness::new());
    let routes: Vec<_> = fuzzed_routes()
        .into_iter()
        .filter(|(method, _, _)| only(method))
        .collect();
    let tried = AtomicUsize::new(0);
    let cut = AtomicUsize::new(0);
    // Answers by class (2xx, 3xx, 4xx), to see that inputs reach the handlers.
    let classes = [
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    ];
    let config = Config {
        cases,
        // Shrinking replays requests; a few hundred are plenty to find the smallest input.
        max_shrink_iters: 300,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy(&routes), |case| {
        let (method, pattern, _) = &routes[case.route];
        runtime.block_on(async {
            tried.fetch_add(1, Ordering::Relaxed);
            let before = harness.world.counts().await;
            let resp = match harness.request(method, pattern, &case).await {
                Ok(resp) => resp,
                Err(err) => {
                    // Cut short while uploading: no answer to judge, but nothing may be
                    // written either.
                    prop_assert!(
                        err.is_request() && !err.is_timeout(),
                        "{method} {pattern}: {err}"
                    );
                    let after = harness.world.counts().await;
                    prop_assert_eq!(
                        &before,
                        &after,
                        "{} {} was cut short but wrote rows",
                        method,
                        pattern
                    );
                    cut.fetch_add(1, Ordering::Relaxed);
                    harness.replenish().await;
                    return Ok(());
                }
            };
            let status = resp.status();
            if let Some(class) = classes.get(usize::from(status.as_u16() / 100).wrapping_sub(2)) {
                class.fetch_add(1, Ordering::Relaxed);
            }
            let body = resp.text().await.unwrap_or_default();
            prop_assert!(
                !status.is_server_error(),
                "{method} {pattern} answered {status}: {}",
                body.chars().take(300).collect::<String>()
            );
            if status.is_client_error() {
                let after = harness.world.counts().await;
                prop_assert_eq!(
                    &before,
                    &after,
                    "{} {} answered {} but wrote rows",
                    method,
                    pattern,
                    status
                );
            }
            harness.replenish().await;
            Ok::<(), TestCaseError>(())
        })
    });
    let [ok, redirect, refused] = classes.map(|c| c.load(Ordering::Relaxed));
    println!(
        "bad input ({name}): {} inputs tried over {} routes: {ok} 2xx, {redirect} 3xx, \
         {refused} 4xx, {} closed while the body was sent",
        tried.load(Ordering::Relaxed),
        cut.load(Ordering::Relaxed),
        routes.len()
    );
    if let Err(err) = result {
        panic!("{err}");
    }
}

#[test]
fn no_query_string_makes_a_page_fail() {
    fuzz("GET query parameters", |m| *m == Method::GET, case, 256);
}

#[test]
fn no_form_makes_a_state_changing_route_fail_or_write_half() {
    fuzz("POST forms and bodies", |m| *m != Method::GET, case, 256);
}

#[test]
fn one_bad_field_in_a_valid_form_is_refused_whole_or_accepted_whole() {
    fuzz(
        "valid forms with one field broken",
        |m| *m != Method::GET,
        mutated_case,
        256,
    );
}

/// Found by the properties above: a NUL in a search (FTS5 read it as the end of its query;
/// PostgreSQL refuses it in any text) failed the page with a 500.
#[tokio::test]
async fn a_nul_in_any_search_is_no_500() {
    let world = World::build().await;
    let root = world.browser(ROOT).await;
    for path in [
        "/clients/?q=%00abc".to_string(),
        "/clients/?q=a%00".to_string(),
        "/clients/export.csv?q=%00abc".to_string(),
        "/messages/?q=%00abc".to_string(),
        "/admin/users?q=%00abc".to_string(),
        "/mailings/new?picker=1&recipient_q=%00abc".to_string(),
        format!(
            "/mailings/{}/edit?picker=1&recipient_q=%00abc",
            world.mailing
        ),
    ] {
        let resp = world.app.get_page_as(&root, &path).await;
        assert_eq!(resp.status, 200, "GET {path}");
    }
    let owner = world.browser(OWNER).await;
    for path in [
        "/mailings/".to_string(),
        format!("/mailings/{}/edit", world.mailing),
    ] {
        let resp = crate::world::post(&world, &owner, &path, &[("recipient_q", "\0¡¡")]).await;
        assert_eq!(resp.status(), 422, "POST {path}");
    }
}
