//! Account pages: login, sign-up, activation, password reset and change, profile.

use maud::{Markup, html};

use crate::accounts::{ProfileForm, SignupForm};
use crate::db::users::User;
use crate::domain::FieldErrors;
use crate::web::htmx::PageCtx;
use crate::web::views::layout::{Input, csrf_field, field, form_error};

fn card(title: &str, content: Markup) -> Markup {
    html! {
        section.narrow {
            h1 { (title) }
            (content)
        }
    }
}

pub fn login(ctx: &PageCtx, email: &str, next: Option<&str>, error: Option<&str>) -> Markup {
    let action = match next {
        Some(next) => format!(
            "/users/login?next={}",
            percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC)
        ),
        None => "/users/login".to_string(),
    };
    let none = FieldErrors::new();
    card(
        "Log in",
        html! {
            (form_error(error))
            form.stacked method="post" action=(action) {
                (csrf_field(ctx))
                (field(Input::new("email", "E-mail").kind("email").value(email).autocomplete("username").required(), &none))
                (field(Input::new("password", "Password").kind("password").autocomplete("current-password").required(), &none))
                div.actions { button type="submit" { "Log in" } }
            }
            p.muted {
                a href="/users/password-reset" { "Forgot your password?" }
                " · "
                a href="/users/signup" { "Create an account" }
            }
        },
    )
}

pub fn signup(ctx: &PageCtx, form: &SignupForm, errors: &FieldErrors) -> Markup {
    card(
        "Create an account",
        html! {
            form.stacked method="post" action="/users/signup" {
                (csrf_field(ctx))
                (field(Input::new("email", "E-mail").kind("email").value(&form.email).autocomplete("email").required(), errors))
                (field(Input::new("full_name", "Full name").value(&form.full_name).autocomplete("name").required(), errors))
                (field(Input::new("password", "Password").kind("password").autocomplete("new-password").required()
                    .hint("At least 8 characters, not only digits."), errors))
                (field(Input::new("password2", "Password again").kind("password").autocomplete("new-password").required(), errors))
                div.actions { button type="submit" { "Sign up" } }
            }
            p.muted { "Already have an account? " a href="/users/login" { "Log in" } }
        },
    )
}

pub fn signup_done(email: &str, sent: bool) -> Markup {
    card(
        "Check your e-mail",
        html! {
            @if sent {
                p { "We sent an activation link to " strong { (email) } ". Open it to activate your account." }
            } @else {
                p { "Your account was created, but the activation e-mail could not be sent right now. "
                    "Please ask an administrator to activate it." }
            }
        },
    )
}

/// A page that only says something (a link's outcome).
pub fn message(title: &str, text: &str, link: Option<(&str, &str)>) -> Markup {
    card(
        title,
        html! {
            p { (text) }
            @if let Some((label, href)) = link { p { a.button href=(href) { (label) } } }
        },
    )
}

pub fn reset_request(ctx: &PageCtx, email: &str, errors: &FieldErrors) -> Markup {
    card(
        "Reset your password",
        html! {
            p { "Enter the e-mail address of your account; we will send you a link to choose a new password." }
            form.stacked method="post" action="/users/password-reset" {
                (csrf_field(ctx))
                (field(Input::new("email", "E-mail").kind("email").value(email).autocomplete("email").required(), errors))
                div.actions { button type="submit" { "Send the link" } }
            }
        },
    )
}

pub fn reset_form(ctx: &PageCtx, token: &str, errors: &FieldErrors) -> Markup {
    card(
        "Choose a new password",
        html! {
            form.stacked method="post" action={ "/users/password-reset/" (token) } {
                (csrf_field(ctx))
                (field(Input::new("password", "New password").kind("password").autocomplete("new-password").required()
                    .hint("At least 8 characters, not only digits."), errors))
                (field(Input::new("password2", "New password again").kind("password").autocomplete("new-password").required(), errors))
                div.actions { button type="submit" { "Set the password" } }
            }
        },
    )
}

pub fn password_change(ctx: &PageCtx, must_change: bool, errors: &FieldErrors) -> Markup {
    card(
        "Change your password",
        html! {
            @if must_change {
                div.flash role="status" { "Please choose your own password before you continue." }
            }
            form.stacked method="post" action="/users/password-change" {
                (csrf_field(ctx))
                (field(Input::new("old_password", "Current password").kind("password").autocomplete("current-password").required(), errors))
                (field(Input::new("password", "New password").kind("password").autocomplete("new-password").required()
                    .hint("At least 8 characters, not only digits."), errors))
                (field(Input::new("password2", "New password again").kind("password").autocomplete("new-password").required(), errors))
                div.actions { button type="submit" { "Change the password" } }
            }
        },
    )
}

fn yes_no(flag: bool) -> &'static str {
    if flag { "yes" } else { "no" }
}

pub fn profile(user: &User, zone: &str) -> Markup {
    card(
        "Your profile",
        html! {
            dl.details {
                dt { "E-mail" } dd { (user.email) }
                dt { "Full name" } dd { (user.full_name) }
                dt { "Phone" } dd { (user.phone) }
                dt { "Country" } dd { (user.country) }
                dt { "Time zone" } dd { (zone) }
                dt { "Sees every user's mailings" } dd { (yes_no(user.view_all_mailings || user.is_superuser)) }
                dt { "May disable mailings" } dd { (yes_no(user.disable_mailing || user.is_superuser)) }
                @if user.is_superuser { dt { "Superuser" } dd { "yes" } }
            }
            p {
                a.button href="/users/profile/edit" { "Edit profile" }
                " "
                a.button.secondary href="/users/password-change" { "Change password" }
            }
        },
    )
}

pub fn profile_edit(
    ctx: &PageCtx,
    form: &ProfileForm,
    default_zone: &str,
    errors: &FieldErrors,
) -> Markup {
    let zone_hint =
        format!("An IANA name such as Europe/Berlin; empty uses the server's ({default_zone}).");
    card(
        "Edit your profile",
        html! {
            form.stacked method="post" action="/users/profile/edit" {
                (csrf_field(ctx))
                (field(Input::new("full_name", "Full name").value(&form.full_name).autocomplete("name").required(), errors))
                (field(Input::new("phone", "Phone").kind("tel").value(&form.phone).autocomplete("tel"), errors))
                (field(Input::new("country", "Country").value(&form.country).autocomplete("country-name"), errors))
                (field(Input::new("time_zone", "Time zone").value(&form.time_zone).hint(&zone_hint), errors))
                div.actions {
                    button type="submit" { "Save" }
                    a.button.secondary href="/users/profile" { "Cancel" }
                }
            }
        },
    )
}
