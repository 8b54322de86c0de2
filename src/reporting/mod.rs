//! Error reporting (SPEC §8): what a report may show and how secrets are kept out of it.

pub mod mask;
