//! The landing page.

use maud::{Markup, html};

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
        }
    }
}
