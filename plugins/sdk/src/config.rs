//! A plugin's configuration: the `[plugins.<name>.config]` table of the
//! controller's TOML file.

use crate::KeyValue;

/// Configuration values by key. Scalars arrive as their text; arrays and
/// tables as JSON.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    values: Vec<KeyValue>,
}

impl Config {
    /// Wraps key/value pairs.
    pub fn new(values: Vec<KeyValue>) -> Self {
        Self { values }
    }

    /// Builds a configuration from string pairs (handy in tests).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Self::new(
            pairs
                .iter()
                .map(|(key, value)| KeyValue {
                    key: (*key).to_string(),
                    value: (*value).to_string(),
                })
                .collect(),
        )
    }

    /// The raw text of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        crate::lookup(&self.values, key)
    }

    /// `key` as a number, or `default` when absent or not a number.
    pub fn f64_or(&self, key: &str, default: f64) -> f64 {
        self.get(key)
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(default)
    }

    /// `key` as an unsigned integer, or `default`.
    pub fn u64_or(&self, key: &str, default: u64) -> u64 {
        self.get(key)
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(default)
    }

    /// `key` as a boolean (`true`/`false`), or `default`.
    pub fn bool_or(&self, key: &str, default: bool) -> bool {
        match self.get(key).map(str::trim) {
            Some("true") => true,
            Some("false") => false,
            _ => default,
        }
    }

    /// `key` as a list of strings: a JSON array, or a comma-separated string.
    pub fn strings(&self, key: &str) -> Vec<String> {
        let Some(text) = self.get(key) else {
            return Vec::new();
        };
        if let Ok(serde_json::Value::Array(items)) = serde_json::from_str::<serde_json::Value>(text)
        {
            return items
                .into_iter()
                .map(|item| match item {
                    serde_json::Value::String(text) => text,
                    other => other.to_string(),
                })
                .collect();
        }
        text.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_string)
            .collect()
    }
}
