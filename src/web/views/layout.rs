//! The base layout every page shares, and the form pieces every form uses.

use maud::{DOCTYPE, Markup, html};

use crate::domain::FieldErrors;
use crate::domain::TimeZone;
use crate::web::assets;
use crate::web::csrf;
use crate::web::htmx::PageCtx;

/// Navigation for logged-in users: (label, path). The current one is marked.
const NAV: &[(&str, &str)] = &[
    ("Dashboard", "/"),
    ("Recipients", "/clients/"),
    ("Messages", "/messages/"),
    ("Mailings", "/mailings/"),
    ("Stats", "/mailings/stats/"),
    ("Reports", "/mailings/reports/"),
];

fn nav_link(ctx: &PageCtx, label: &str, path: &str) -> Markup {
    let matches = |p: &str| {
        if p == "/" {
            ctx.path == "/"
        } else {
            ctx.path.starts_with(p)
        }
    };
    // "/mailings/reports/" also starts with "/mailings/": only the longest match is current.
    let current = matches(path) && !NAV.iter().any(|(_, p)| p.len() > path.len() && matches(p));
    html! {
        @if current { a href=(path) aria-current="page" { (label) } }
        @else { a href=(path) { (label) } }
    }
}

pub fn layout(ctx: &PageCtx, title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · autosend" }
                meta name="csrf-token" content=(ctx.csrf_token);
                // Without an icon link browsers fetch /favicon.ico on every page: a 404 each time.
                link rel="icon" type="image/svg+xml" href=(assets::url("favicon.svg"));
                link rel="stylesheet" href=(assets::url("app.css"));
                script src=(assets::url(assets::HTMX)) defer {}
                script src=(assets::url("app.js")) defer {}
            }
            body {
                header.site {
                    a.brand href="/" { "autosend" }
                    nav aria-label="Main" {
                        @if let Some(user) = &ctx.user {
                            @for (label, path) in NAV { (nav_link(ctx, label, path)) }
                            @if user.is_superuser {
                                (nav_link(ctx, "Users", "/admin/users"))
                                (nav_link(ctx, "Errors", "/admin/errors"))
                            }
                        }
                    }
                    div.user {
                        @if let Some(user) = &ctx.user {
                            a href="/users/profile" title="Your profile" { (user.email) }
                            form method="post" action="/users/logout" {
                                (csrf_field(ctx))
                                button.link type="submit" { "Log out" }
                            }
                        } @else {
                            a href="/users/login" { "Log in" }
                            a.button href="/users/signup" { "Sign up" }
                        }
                    }
                }
                main #main {
                    @if let Some(message) = &ctx.flash {
                        div.flash.success role="status" {
                            span { (message) }
                            button.flash-close type="button" aria-label="Dismiss" { "×" }
                        }
                    }
                    (content)
                }
                footer {
                    span.muted { "autosend " (env!("CARGO_PKG_VERSION")) }
                }
            }
        }
    }
}

/// The hidden CSRF field every state-changing form carries.
pub fn csrf_field(ctx: &PageCtx) -> Markup {
    html! { input type="hidden" name=(csrf::FORM_FIELD) value=(ctx.csrf_token); }
}

/// How an input is presented: its type and browser hints.
pub struct Input<'a> {
    pub name: &'a str,
    pub label: &'a str,
    pub kind: &'a str,
    pub value: &'a str,
    pub autocomplete: &'a str,
    pub required: bool,
    pub hint: Option<&'a str>,
}

impl<'a> Input<'a> {
    pub fn new(name: &'a str, label: &'a str) -> Self {
        Self {
            name,
            label,
            kind: "text",
            value: "",
            autocomplete: "off",
            required: false,
            hint: None,
        }
    }
    pub fn kind(mut self, kind: &'a str) -> Self {
        self.kind = kind;
        self
    }
    pub fn value(mut self, value: &'a str) -> Self {
        self.value = value;
        self
    }
    pub fn autocomplete(mut self, autocomplete: &'a str) -> Self {
        self.autocomplete = autocomplete;
        self
    }
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
    pub fn hint(mut self, hint: &'a str) -> Self {
        self.hint = Some(hint);
        self
    }
}

/// Longest value an input shows again when its form is re-rendered; no field takes more,
/// and a megabyte typed into one must not come back as a page of megabytes.
const ECHO_INPUT: usize = 4096;
/// The same for a text area (a message body takes 200 000 characters).
const ECHO_TEXTAREA: usize = 200_000;

/// `value` as a re-rendered form shows it: whole, or its first `max` characters.
fn echoed(value: &str, max: usize) -> &str {
    match value.char_indices().nth(max) {
        Some((end, _)) => &value[..end],
        None => value,
    }
}

/// A labelled input with its error message (and `aria-invalid`) when it has one.
pub fn field(input: Input<'_>, errors: &FieldErrors) -> Markup {
    let id = format!("f-{}", input.name);
    let error = errors.get(input.name);
    let described = format!("{id}-msg");
    html! {
        div.field {
            label for=(id) { (input.label) }
            input id=(id) name=(input.name) type=(input.kind) value=(echoed(input.value, ECHO_INPUT))
                autocomplete=(input.autocomplete) required[input.required]
                aria-invalid=[error.map(|_| "true")]
                aria-describedby=[(error.is_some() || input.hint.is_some()).then_some(described.as_str())];
            @if let Some(message) = error {
                p.field-error id=(described) { (message) }
            } @else if let Some(hint) = input.hint {
                p.hint id=(described) { (hint) }
            }
        }
    }
}

/// A form-wide message (a refused login, say).
pub fn form_error(message: Option<&str>) -> Markup {
    html! {
        @if let Some(message) = message {
            div.flash.error role="alert" { (message) }
        }
    }
}

/// Previous / next links that keep the rest of the query (`extra`, already encoded).
pub fn pager(path: &str, extra: &str, page: crate::domain::PageRequest, total: i64) -> Markup {
    let pages = page.pages(total);
    let href = |n: i64| {
        if extra.is_empty() {
            format!("{path}?page={n}")
        } else {
            format!("{path}?{extra}&page={n}")
        }
    };
    html! {
        nav.pagination aria-label="Pages" {
            @if page.page > 1 { a href=(href(page.page - 1)) rel="prev" { "← Previous" } }
            @else { span.disabled { "← Previous" } }
            @if total > crate::domain::COUNT_CAP {
                span { "Page " (page.page) " · " (crate::domain::count_label(total)) " in all" }
            } @else {
                span { "Page " (page.page.min(pages)) " of " (pages) " · " (total) " in all" }
            }
            @if page.page < pages { a href=(href(page.page + 1)) rel="next" { "Next →" } }
            @else { span.disabled { "Next →" } }
        }
    }
}

/// A timestamp (unix ms) as a readable date and time in `zone`.
pub fn datetime(ms: i64, zone: TimeZone) -> String {
    crate::domain::local_time::format_local(ms, zone).replacen('T', " ", 1)
}

/// A labelled multi-line input with its error message.
pub fn textarea(
    name: &str,
    label: &str,
    value: &str,
    rows: u32,
    hint: Option<&str>,
    errors: &FieldErrors,
) -> Markup {
    let id = format!("f-{name}");
    let described = format!("{id}-msg");
    let error = errors.get(name);
    html! {
        div.field {
            label for=(id) { (label) }
            textarea id=(id) name=(name) rows=(rows)
                aria-invalid=[error.map(|_| "true")]
                aria-describedby=[(error.is_some() || hint.is_some()).then_some(described.as_str())] { (echoed(value, ECHO_TEXTAREA)) }
            @if let Some(message) = error {
                p.field-error id=(described) { (message) }
            } @else if let Some(hint) = hint {
                p.hint id=(described) { (hint) }
            }
        }
    }
}

/// Where an htmx confirmation puts the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swap {
    /// A list row: removed in place (the answer is empty).
    Row,
    /// The whole page: the answer redirects (`HX-Redirect`).
    Page,
}

/// A control that acts only once the user confirms (SPEC §12): with JavaScript, htmx asks
/// `question` and POSTs to `action`; without it, the link opens `GET {action}`, a page that
/// shows what will happen and a button that POSTs. `class` is `danger` or empty.
pub fn confirm_button(
    action: &str,
    label: &str,
    question: &str,
    class: &str,
    swap: Swap,
) -> Markup {
    let (target, small) = match swap {
        Swap::Row => ("closest tr", true),
        Swap::Page => ("body", false),
    };
    html! {
        a class={ "button " (class) @if small { " small" } } href=(action) role="button"
            hx-post=(action) hx-confirm=(question) hx-target=(target) hx-swap="outerHTML" { (label) }
    }
}

/// A list row's delete control.
pub fn delete_button(action: &str, question: &str) -> Markup {
    confirm_button(action, "Delete", question, "danger", Swap::Row)
}

/// The confirmation page behind a [`confirm_button`] (used without JavaScript): what will
/// happen, a button that POSTs, and a way back. Without `button` the action is not possible
/// and the page only says why.
pub fn confirm_page(
    ctx: &PageCtx,
    title: &str,
    what: Markup,
    action: &str,
    button: Option<&str>,
    back: &str,
) -> Markup {
    html! {
        section.narrow.confirm {
            h1 { (title) }
            (what)
            div.actions {
                @if let Some(label) = button {
                    form.inline method="post" action=(action) {
                        (csrf_field(ctx))
                        button.danger type="submit" { (label) }
                    }
                }
                a.button.secondary href=(back) { "Cancel" }
            }
        }
    }
}

/// The hidden `version` field of an edit form: the save is refused (409) if the object
/// changed since this version was shown.
pub fn version_field(version: &str) -> Markup {
    html! {
        @if !version.is_empty() { input type="hidden" name="version" value=(version); }
    }
}

/// The top of an edit form refused because someone saved the object meanwhile (409): their
/// version, field by field, above the form that still holds the user's own input.
pub fn conflict_notice(saved: Option<&[(&str, String)]>) -> Markup {
    html! {
        @if let Some(saved) = saved {
            div.flash.error.conflict role="alert" {
                p { strong { "Someone else saved this while you were editing." }
                    " Nothing of yours was saved. Their version is below; your changes are still in the form. "
                    "Save again to replace their version with yours, or cancel to keep theirs." }
                dl.details.saved-version {
                    @for (label, value) in saved {
                        dt { (label) } dd.pre-line { (value) }
                    }
                }
            }
        }
    }
}

/// `q=…&sort=…` for links that keep the list's state.
pub fn query_string(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| {
            format!(
                "{k}={}",
                percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::{NAV, nav_link};
    use crate::web::htmx::PageCtx;

    fn current_entries(path: &str) -> Vec<&'static str> {
        let ctx = PageCtx {
            csrf_token: String::new(),
            fragment: false,
            path: path.to_string(),
            user: None,
            flash: None,
        };
        NAV.iter()
            .filter(|(label, p)| nav_link(&ctx, label, p).0.contains("aria-current"))
            .map(|(label, _)| *label)
            .collect()
    }

    #[test]
    fn one_navigation_entry_is_current() {
        assert_eq!(current_entries("/"), ["Dashboard"]);
        assert_eq!(current_entries("/clients/7/edit"), ["Recipients"]);
        assert_eq!(current_entries("/mailings/3/logs"), ["Mailings"]);
        assert_eq!(current_entries("/mailings/stats/"), ["Stats"]);
        assert_eq!(current_entries("/mailings/reports/"), ["Reports"]);
        assert!(current_entries("/users/profile").is_empty());
    }
}
