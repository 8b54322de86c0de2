//! Message placeholders, `{{full_name}}` and `{{email}}` (SPEC §6, §12): the one place that
//! reads them, for the preview, the test send and the send alike. Spaces inside the braces
//! are allowed as in Django templates (`{{ full_name }}`); any other name, or a `{{` that is
//! never closed, is refused when the message is saved ([`check`]), so nobody is mailed a raw
//! placeholder.

/// The placeholders users may write, as shown on the message form.
pub const PLACEHOLDERS: [&str; 2] = ["{{full_name}}", "{{email}}"];

/// The names a placeholder may carry.
const NAMES: [&str; 2] = ["full_name", "email"];

/// The recipient's values for the placeholders.
#[derive(Debug, Clone, Copy)]
pub struct Values<'a> {
    pub full_name: &'a str,
    pub email: &'a str,
}

impl Values<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        match name {
            "full_name" => Some(self.full_name),
            "email" => Some(self.email),
            _ => None,
        }
    }
}

/// Why a template cannot be saved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "Unknown placeholder {{{{{0}}}}}: only {{{{full_name}}}} and {{{{email}}}} are filled in."
    )]
    Unknown(String),
    #[error("A placeholder is opened with {{{{ but never closed with }}}}.")]
    Unclosed,
}

/// One piece of a template: literal text, or a placeholder with its (trimmed) name.
enum Piece<'a> {
    Text(&'a str),
    Placeholder { raw: &'a str, name: &'a str },
}

/// Splits a template into text and placeholders. A `{{` that is never closed (or is
/// closed only by a later placeholder's `}}`) stays text, so the placeholders around it
/// still parse; `unclosed` says whether there was one.
struct Parsed<'a> {
    pieces: Vec<Piece<'a>>,
    unclosed: bool,
}

fn pieces(template: &str) -> Parsed<'_> {
    let mut pieces = Vec::new();
    let mut unclosed = false;
    let mut rest = template;
    while let Some(mut open) = rest.find("{{") {
        let Some(close) = rest[open + 2..].find("}}") else {
            unclosed = true;
            break;
        };
        let end = open + 2 + close + 2;
        // `{{ a {{email}}`: the innermost `{{` opens the placeholder; the first is text.
        if let Some(inner) = rest[open + 2..end - 2].rfind("{{") {
            unclosed = true;
            open = open + 2 + inner;
        }
        pieces.push(Piece::Text(&rest[..open]));
        pieces.push(Piece::Placeholder {
            raw: &rest[open..end],
            name: rest[open + 2..end - 2].trim(),
        });
        rest = &rest[end..];
    }
    pieces.push(Piece::Text(rest));
    Parsed { pieces, unclosed }
}

/// `Ok` when every placeholder of `template` is one we fill and every `{{` is closed.
pub fn check(template: &str) -> Result<(), TemplateError> {
    let parsed = pieces(template);
    for piece in parsed.pieces {
        if let Piece::Placeholder { name, .. } = piece
            && !NAMES.contains(&name)
        {
            return Err(TemplateError::Unknown(name.to_string()));
        }
    }
    if parsed.unclosed {
        return Err(TemplateError::Unclosed);
    }
    Ok(())
}

/// `template` with each placeholder replaced by `escape(value)`. What does not parse (a `{{`
/// never closed, in a message saved before [`check`] existed) stays as text while the rest
/// is filled, and unknown names stay raw: filling never invents content.
fn fill(template: &str, values: Values<'_>, escape: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(template.len());
    for piece in pieces(template).pieces {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Placeholder { raw, name } => match values.get(name) {
                Some(value) => out.push_str(&escape(value)),
                None => out.push_str(raw),
            },
        }
    }
    out
}

/// Fills the placeholders of a plain-text template (a subject or a text body).
pub fn fill_text(template: &str, values: Values<'_>) -> String {
    fill(template, values, str::to_string)
}

/// Fills the placeholders of an HTML template, escaping the values: a name like `<script>`
/// must arrive as text, not as markup.
pub fn fill_html(template: &str, values: Values<'_>) -> String {
    fill(template, values, escape_html)
}

fn escape_html(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANN: Values<'static> = Values {
        full_name: "Ann <b>&</b>",
        email: "a@x.io",
    };

    #[test]
    fn placeholders_are_filled_with_or_without_spaces() {
        assert_eq!(
            fill_text("Hi {{full_name}} <{{ email }}> {{  full_name\t}}", ANN),
            "Hi Ann <b>&</b> <a@x.io> Ann <b>&</b>"
        );
        assert_eq!(
            fill_html("<p>{{ full_name }}</p>", ANN),
            "<p>Ann &lt;b&gt;&amp;&lt;/b&gt;</p>"
        );
        assert_eq!(fill_text("no placeholder", ANN), "no placeholder");
        assert_eq!(fill_text("{{other}} stays", ANN), "{{other}} stays");
        assert_eq!(fill_text("{{ unclosed", ANN), "{{ unclosed");
    }

    #[test]
    fn an_unclosed_brace_of_an_old_message_leaves_the_rest_filled() {
        assert_eq!(
            fill_text("Hi {{full_name}}, write to {{ email }} {{ unclosed", ANN),
            "Hi Ann <b>&</b>, write to a@x.io {{ unclosed"
        );
        assert_eq!(
            fill_text("Hi {{ oops, {{email}} and {{full_name}}", ANN),
            "Hi {{ oops, a@x.io and Ann <b>&</b>"
        );
        assert_eq!(
            fill_html("<p>{{full_name}} {{</p>", ANN),
            "<p>Ann &lt;b&gt;&amp;&lt;/b&gt; {{</p>"
        );
        assert_eq!(check("Hi {{ oops, {{email}}"), Err(TemplateError::Unclosed));
    }

    #[test]
    fn unknown_names_and_unclosed_braces_are_refused() {
        assert_eq!(check("Hi {{ full_name }}, {{email}}"), Ok(()));
        assert_eq!(check("a } b }} c { d"), Ok(()));
        assert_eq!(
            check("Hi {{first_name}}"),
            Err(TemplateError::Unknown("first_name".into()))
        );
        assert_eq!(
            check("Hi {{ }}"),
            Err(TemplateError::Unknown(String::new()))
        );
        assert_eq!(check("Hi {{full_name"), Err(TemplateError::Unclosed));
        assert!(
            TemplateError::Unknown("first_name".into())
                .to_string()
                .contains("{{first_name}}")
        );
    }
}
