//! Query words that pick one of a few values (`?sort=`, `?dir=`, `?rows=`, a form's
//! `dry_run`): parsed once, at deserialisation, into an enum. An unknown or absent word is
//! the default, as the pages always answered (a bookmarked URL with an old word still
//! shows the page). This is the one home of that rule.

use serde::{Deserialize, Deserializer};

/// An enum picked by a word.
pub trait Choice: Sized + Copy + Default + PartialEq + 'static {
    /// Every value with its word.
    const WORDS: &'static [(Self, &'static str)];

    /// The value `word` names; anything else is the default.
    fn parse(word: &str) -> Self {
        Self::WORDS
            .iter()
            .find(|(_, w)| *w == word)
            .map_or_else(Self::default, |(value, _)| *value)
    }

    /// The word of this value (what links put in the URL).
    fn word(self) -> &'static str {
        Self::WORDS
            .iter()
            .find(|(value, _)| *value == self)
            .map_or("", |(_, w)| w)
    }
}

/// `#[serde(deserialize_with = "choice")]`: the word parsed by [`Choice::parse`].
pub fn choice<'de, D: Deserializer<'de>, T: Choice>(d: D) -> Result<T, D::Error> {
    let word = String::deserialize(d)?;
    Ok(T::parse(&word))
}

/// `#[serde(deserialize_with = "flag")]`: a checkbox or hidden field that is on when it says
/// `1`, `true` or `on` (surrounding spaces ignored), off for anything else.
pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let word = String::deserialize(d)?;
    Ok(matches!(word.trim(), "1" | "true" | "on"))
}

/// A list's direction: `?dir=asc`, else descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortDir {
    Asc,
    #[default]
    Desc,
}

impl Choice for SortDir {
    const WORDS: &'static [(Self, &'static str)] =
        &[(SortDir::Asc, "asc"), (SortDir::Desc, "desc")];
}

impl SortDir {
    pub fn ascending(self) -> bool {
        self == SortDir::Asc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    struct Params {
        #[serde(deserialize_with = "choice")]
        dir: SortDir,
        #[serde(deserialize_with = "flag")]
        dry_run: bool,
    }

    fn parse(query: &str) -> Params {
        serde_urlencoded::from_str(query).unwrap()
    }

    #[test]
    fn words_parse_once_and_unknown_ones_are_the_default() {
        assert_eq!(parse("dir=asc").dir, SortDir::Asc);
        assert_eq!(parse("dir=desc").dir, SortDir::Desc);
        assert_eq!(parse("dir=sideways").dir, SortDir::Desc);
        assert_eq!(parse("").dir, SortDir::Desc);
        assert_eq!(SortDir::Asc.word(), "asc");
        for on in ["dry_run=1", "dry_run=true", "dry_run=+on+"] {
            assert!(parse(on).dry_run, "{on}");
        }
        for off in ["dry_run=0", "dry_run=", "dry_run=yes", ""] {
            assert!(!parse(off).dry_run, "{off}");
        }
    }
}
