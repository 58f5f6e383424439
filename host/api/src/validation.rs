//! The field rules every API shares, one place for all of them: Nova's
//! JSON-schema parameter types (`nova/api/validation/parameter_types.py`:
//! `name`, `az_name`, `description`), the character checks Keystone and
//! Glance names get, and the guard that keeps NUL out of every request (a
//! PostgreSQL `text` cannot hold one, so a NUL reaching SQL is a 500).
//!
//! "Printable" is Nova's definition: any character that is not in a Unicode
//! "other" category (`C*`: control, format, surrogate, private use,
//! unassigned) nor a non-horizontal separator (`Zl`, `Zp`); horizontal spaces
//! (`Zs`) are printable but may not start or end a name.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use super::fault::{ApiError, ApiResult};

/// Longest name Nova accepts (`parameter_types.name`'s `maxLength`), in characters.
pub const MAX_NAME_LENGTH: usize = 255;
/// Longest description Nova accepts (`parameter_types.description`), in characters.
pub const MAX_DESCRIPTION_LENGTH: usize = 255;

/// A character that is not printable in Nova's sense.
static NOT_PRINTABLE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[\p{C}\p{Zl}\p{Zp}]").expect("a constant pattern compiles"));
/// A horizontal space (Unicode `Zs`) at the start or the end.
static EDGE_SPACE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\p{Zs}|\p{Zs}$").expect("a constant pattern compiles"));

/// Which of Nova's text parameter types a field is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextFormat {
    /// `parameter_types.name`: 1 to 255 printable characters, not starting or
    /// ending with whitespace (servers, flavors, aggregates, server groups).
    Name,
    /// `parameter_types.az_name`: a name without `:` (availability zones).
    AzName,
    /// `parameter_types.description`: 0 to 255 printable characters,
    /// whitespace anywhere.
    Description,
    /// A bare string of 0 to 255 characters, any of them (the security
    /// group proxy's `name` and `description`).
    Any,
}

impl TextFormat {
    /// What the format allows, in Nova's words (`ValidationRegex.reason`).
    fn reason(self) -> &'static str {
        match self {
            TextFormat::Name => "printable characters. Can not start or end with whitespace.",
            TextFormat::AzName => {
                "printable characters except :.Can not start or end with whitespace."
            }
            TextFormat::Description | TextFormat::Any => "printable characters.",
        }
    }

    /// (shortest, longest) in characters.
    fn length(self) -> (usize, usize) {
        match self {
            TextFormat::Name | TextFormat::AzName => (1, MAX_NAME_LENGTH),
            TextFormat::Description | TextFormat::Any => (0, MAX_DESCRIPTION_LENGTH),
        }
    }
}

/// Whether every character of `text` is printable in Nova's sense.
pub fn is_printable(text: &str) -> bool {
    !NOT_PRINTABLE.is_match(text)
}

/// Whether `text` holds a control character (Unicode `Cc`: C0, DEL, C1),
/// NUL included: what no Keystone or Glance name may hold.
pub fn has_control_character(text: &str) -> bool {
    text.chars().any(char::is_control)
}

/// Checks `text` (the value of body field `field`) against `format`, with
/// Nova's messages: a length error names the field and the value, a
/// character error says what the format allows.
pub fn check_text(field: &str, text: &str, format: TextFormat) -> ApiResult<()> {
    let (shortest, longest) = format.length();
    let length = text.chars().count();
    let shown = Value::String(text.to_string());
    if length < shortest {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute {field}. Value: {shown}. {shown} is too short"
        )));
    }
    if length > longest {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute {field}. Value: {shown}. {shown} is too long"
        )));
    }
    if format == TextFormat::Any {
        return Ok(());
    }
    let refused = !is_printable(text)
        || (format != TextFormat::Description && EDGE_SPACE.is_match(text))
        || (format == TextFormat::AzName && text.contains(':'));
    if refused {
        return Err(match format {
            TextFormat::Description => ApiError::bad_request(format!(
                "Invalid input for field/attribute {field}. Value: {shown}. It must be {}",
                format.reason()
            )),
            _ => ApiError::bad_request(format!(
                "An invalid '{field}' value was provided. The name must be: {}",
                format.reason()
            )),
        });
    }
    Ok(())
}

/// The string body field `field` holding `value`, checked against `format`.
pub fn text(field: &str, value: &Value, format: TextFormat) -> ApiResult<String> {
    match value {
        Value::String(text) => {
            check_text(field, text, format)?;
            Ok(text.clone())
        }
        other => Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute {field}. Value: {other}. {other} is not of type 'string'"
        ))),
    }
}

/// A `description` field that may be absent or null (`None` then), checked
/// as Nova's `parameter_types.description`.
pub fn optional_description(field: &str, value: Option<&Value>) -> ApiResult<Option<String>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(value) => text(field, value, TextFormat::Description).map(Some),
    }
}

/// Whether the JSON text `bytes` encodes a NUL inside a string: a `\u0000`
/// escape whose backslash is not itself escaped. (JSON cannot carry a raw NUL
/// in a string, and outside strings there are no backslashes.)
pub fn json_has_nul(bytes: &[u8]) -> bool {
    const ESCAPE: &[u8] = b"\\u0000";
    bytes
        .windows(ESCAPE.len())
        .enumerate()
        .filter(|(_, window)| *window == ESCAPE)
        .any(|(start, _)| {
            let backslashes = bytes[..=start]
                .iter()
                .rev()
                .take_while(|byte| **byte == b'\\')
                .count();
            backslashes % 2 == 1
        })
}

/// The error for a request carrying a NUL character (in its body, path or
/// query string).
pub fn nul_refused(place: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid input: the {place} contains a NUL character, which is not allowed."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_are_printable_without_edge_whitespace() {
        for good in [
            "a",
            "web 01",
            "ünïcødé",
            "a\u{00a0}b",
            "x".repeat(255).as_str(),
        ] {
            assert!(
                check_text("name", good, TextFormat::Name).is_ok(),
                "{good:?}"
            );
        }
        for bad in [
            "",
            " a",
            "a ",
            "\u{3000}a",
            "a\u{0}b",
            "a\nb",
            "a\tb",
            "a\u{7f}",
            "a\u{85}",
            "a\u{200b}b",
            "a\u{2028}b",
            "a\u{e000}",
            "x".repeat(256).as_str(),
        ] {
            assert!(
                check_text("name", bad, TextFormat::Name).is_err(),
                "{bad:?}"
            );
        }
        let message = check_text("name", "a\u{0}b", TextFormat::Name)
            .err()
            .map(|error| error.message().to_string());
        assert_eq!(
            message.as_deref(),
            Some(
                "An invalid 'name' value was provided. The name must be: printable characters. Can not start or end with whitespace."
            )
        );
    }

    #[test]
    fn zone_names_refuse_colons_and_descriptions_allow_spaces() {
        assert!(check_text("availability_zone", "az:1", TextFormat::AzName).is_err());
        assert!(check_text("availability_zone", "az 1", TextFormat::AzName).is_ok());
        assert!(check_text("description", "", TextFormat::Description).is_ok());
        assert!(check_text("description", " spaced ", TextFormat::Description).is_ok());
        assert!(check_text("description", "a\u{0}", TextFormat::Description).is_err());
        assert!(check_text("description", &"d".repeat(256), TextFormat::Description).is_err());
        assert_eq!(optional_description("description", None).ok(), Some(None));
        assert_eq!(
            optional_description("description", Some(&Value::Null)).ok(),
            Some(None)
        );
        assert!(optional_description("description", Some(&json!(5))).is_err());
    }

    #[test]
    fn nul_escapes_are_found_unless_the_backslash_is_escaped() {
        assert!(json_has_nul(br#"{"name": "a\u0000b"}"#));
        assert!(json_has_nul(br#"{"a\u0000": 1}"#));
        assert!(json_has_nul(br#"["\\\u0000"]"#));
        assert!(!json_has_nul(br#"{"name": "a\\u0000b"}"#));
        assert!(!json_has_nul(br#"{"name": "a\u0001b"}"#));
        assert!(!json_has_nul(b"{}"));
    }

    #[test]
    fn control_characters_are_named() {
        assert!(has_control_character("a\u{0}"));
        assert!(has_control_character("a\u{1b}"));
        assert!(!has_control_character("a b-é"));
    }
}
