//! Error reporting (SPEC §8): what a report may show and how secrets are kept out of it,
//! how it is titled, and how repeats are grouped.

pub mod fingerprint;
pub mod mask;
pub mod subject;
