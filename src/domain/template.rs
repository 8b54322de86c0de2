//! Message placeholders: `{{full_name}}` and `{{email}}` (SPEC §6).

/// The placeholders users may write, as shown on the message form.
pub const PLACEHOLDERS: [&str; 2] = ["{{full_name}}", "{{email}}"];

/// Fills the placeholders of a plain-text template.
pub fn fill_text(template: &str, full_name: &str, email: &str) -> String {
    template
        .replace("{{full_name}}", full_name)
        .replace("{{email}}", email)
}

/// Fills the placeholders of an HTML template, escaping the values (a name is text, not markup).
pub fn fill_html(template: &str, full_name: &str, email: &str) -> String {
    let escape = |s: &str| maud::html! { (s) }.into_string();
    template
        .replace("{{full_name}}", &escape(full_name))
        .replace("{{email}}", &escape(email))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_html_values_escaped() {
        assert_eq!(
            fill_text("Hi {{full_name}} <{{email}}>", "Ann", "a@x.io"),
            "Hi Ann <a@x.io>"
        );
        assert_eq!(
            fill_html("<p>{{full_name}}</p>", "<b>Ann</b> & co", "a@x.io"),
            "<p>&lt;b&gt;Ann&lt;/b&gt; &amp; co</p>"
        );
        assert_eq!(
            fill_text("{{ full_name }}", "Ann", ""),
            "{{ full_name }}",
            "exact spelling only"
        );
    }
}
