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

pub fn activation(user: &User, link: &str) -> AccountEmail {
    let text = format!(
        "{}\n\nWelcome to autosend. Open this link to activate your account:\n\n{link}\n\n\
         The link is valid for 3 days. If you did not sign up, ignore this e-mail.\n",
        greeting(user)
    );
    let html = html! {
        p { (greeting(user)) }
        p { "Welcome to autosend. Open this link to activate your account:" }
        p { a href=(link) { "Activate my account" } }
        p { "The link is valid for 3 days. If you did not sign up, ignore this e-mail." }
    };
    AccountEmail {
        subject: "Activate your autosend account".into(),
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
