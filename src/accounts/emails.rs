//! Account e-mails: each a function returning subject, text and HTML.

use maud::html;

use crate::db::users::User;

pub struct AccountEmail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

fn greeting(user: &User) -> String {
    if user.full_name.is_empty() {
        "Hello,".to_string()
    } else {
        format!("Hello {},", user.full_name)
    }
}

/// The activation mail. It names nobody: the name was typed by whoever signed up, who may
/// not be the owner of the address, and must not speak first in the owner's inbox.
pub fn activation(link: &str) -> AccountEmail {
    let text = format!(
        "Hello,\n\nSomeone signed up for autosend with this e-mail address. \
         If it was you, open this link to activate your account:\n\n{link}\n\n\
         The link is valid for 3 days. If you did not sign up, ignore this e-mail: \
         no account is activated without the link.\n"
    );
    let html = html! {
        p { "Hello," }
        p { "Someone signed up for autosend with this e-mail address. If it was you, open this link to activate your account:" }
        p { a href=(link) { "Activate my account" } }
        p { "The link is valid for 3 days. If you did not sign up, ignore this e-mail: no account is activated without the link." }
    };
    AccountEmail {
        subject: "Activate your autosend account".into(),
        text,
        html: html.into_string(),
    }
}

/// To the owner of an address someone tried to sign up with again.
pub fn signup_attempt(user: &User, login: &str, reset: &str) -> AccountEmail {
    let (state, what_now) = if user.is_active {
        (
            "This address already has an autosend account, so nothing was changed.",
            format!(
                "If it was you, log in at {login}\nForgot your password? Choose a new one at {reset}"
            ),
        )
    } else {
        (
            "This address already has an autosend account, which is not active, so nothing was changed.",
            "If it was you, ask an administrator to activate your account.".to_string(),
        )
    };
    let text = format!(
        "Hello,\n\nSomeone (perhaps you) tried to sign up for autosend with this e-mail address. \
         {state}\n\n{what_now}\n\nIf it was not you, ignore this e-mail: your account stays as it is.\n"
    );
    let html = html! {
        p { "Hello," }
        p { "Someone (perhaps you) tried to sign up for autosend with this e-mail address. " (state) }
        @if user.is_active {
            p { "If it was you, " a href=(login) { "log in" } ". Forgot your password? " a href=(reset) { "Choose a new one" } "." }
        } @else {
            p { "If it was you, ask an administrator to activate your account." }
        }
        p { "If it was not you, ignore this e-mail: your account stays as it is." }
    };
    AccountEmail {
        subject: "Someone tried to sign up with your address".into(),
        text,
        html: html.into_string(),
    }
}

pub fn password_reset(user: &User, link: &str) -> AccountEmail {
    let text = format!(
        "{}\n\nSomeone (hopefully you) asked to reset the password of your autosend account.\n\
         Open this link to choose a new password:\n\n{link}\n\n\
         The link is valid for 24 hours and works once. If you did not ask, ignore this e-mail: \
         your password stays as it is.\n",
        greeting(user)
    );
    let html = html! {
        p { (greeting(user)) }
        p { "Someone (hopefully you) asked to reset the password of your autosend account." }
        p { a href=(link) { "Choose a new password" } }
        p { "The link is valid for 24 hours and works once. If you did not ask, ignore this e-mail: your password stays as it is." }
    };
    AccountEmail {
        subject: "Reset your autosend password".into(),
        text,
        html: html.into_string(),
    }
}
