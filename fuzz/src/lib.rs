//! What the fuzz targets share: the settings of a small deployment.

use std::collections::HashMap;
use std::sync::LazyLock;

use autosend::config::Settings;

/// A name listed in `SENSITIVE_FIELDS` of [`SETTINGS`].
pub const EXTRA_SENSITIVE: &str = "iban";

/// Valid settings: memory mailer, ADMINS and SERVER_EMAIL set, one extra sensitive name.
pub static SETTINGS: LazyLock<Settings> = LazyLock::new(|| {
    let vars: HashMap<String, String> = [
        ("SECRET_KEY", "fuzz-secret-key-0123456789-0123456789"),
        ("EMAIL_BACKEND", "memory"),
        ("ADMINS", "ops@example.com"),
        ("SERVER_EMAIL", "server@example.com"),
        ("SENSITIVE_FIELDS", EXTRA_SENSITIVE),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Settings::from_vars(&vars).expect("fuzz settings are valid")
});
