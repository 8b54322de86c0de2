//! The landing page (anonymous) and the dashboard (logged in).

use maud::{Markup, html};

use crate::db::dashboard::Counters;
use crate::db::users::User;

pub fn landing() -> Markup {
    html! {
        section.hero {
            h1 { "autosend" }
            p.lead {
                "Keep your recipients, write messages and schedule mailings. "
                "autosend delivers them over SMTP with a per-recipient log, statistics and reports."
            }
            ul {
                li { "Scheduled, rate-limited delivery that sends each recipient a message once." }
                li { "A delivery log for every recipient, with retries for temporary failures." }
                li { "Statistics and period reports, cached and always fresh after a send." }
            }
            p {
                a.button href="/users/login" { "Log in" }
                " "
                a.button.secondary href="/users/signup" { "Create an account" }
            }
        }
    }
}

pub fn dashboard(user: &User, counters: &Counters, everyone: bool) -> Markup {
    let name = if user.full_name.is_empty() {
        &user.email
    } else {
        &user.full_name
    };
    html! {
        h1 { "Hello, " (name) }
        @if everyone { p.muted { "Figures cover every user's mailings." } }
        div.cards {
            div.card { p.figure #count-mailings { (counters.mailings) } p { "mailings" } }
            div.card { p.figure #count-running { (counters.running) } p { "running now" } }
            div.card { p.figure #count-recipients { (counters.recipients) } p { "distinct recipients" } }
        }
    }
}
