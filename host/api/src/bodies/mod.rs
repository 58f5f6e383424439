//! Typed request bodies: the big bodies of the compute API (server create,
//! flavor create, the aggregate actions) as serde structs that know the
//! microversion, refusing what Nova's JSON schemas refuse with Nova's
//! messages.
//!
//! A body is parsed in three steps ([`parse`]):
//! 1. [`RequestBody::check_fields`]: every object of the body may hold only
//!    the fields its type declares (read from the type's derived
//!    `Deserialize`, so the list cannot drift), and a field that comes or
//!    goes with a microversion ([`Gate`]) only at the versions that have it:
//!    "Additional properties are not allowed ('x' was unexpected)", Nova's
//!    `additionalProperties: false`.
//! 2. Deserializing: a wrong JSON type, a missing required field or a field
//!    type's own refusal becomes Nova's message, built from the failing
//!    field's name (the last segment of its path) by [`refusal`].
//! 3. [`RequestBody::validate`]: what types cannot say (the name rules of
//!    [`validation`](super::validation), lengths, base64, `min_count <=
//!    max_count`).
//!
//! Each object type also carries `#[serde(deny_unknown_fields)]` where
//! Nova's schema has `additionalProperties: false`: the OpenAPI document
//! (the types derive `ToSchema`) then says so too.
//!
//! Field types report a refusal through [`invalid`] ("Invalid input for
//! field/attribute <field>. <detail>") or [`refused`] (a message of its
//! own).

pub mod aggregate;
pub mod fields;
pub mod flavor;
pub mod security_group;
pub mod server;
pub mod server_action;

use axum::extract::{FromRequest, Request};
use serde::de::{self, DeserializeOwned};
use serde_json::Value;
use serde_path_to_error::{Path, Segment};

use super::body::JsonBody;
use super::fault::{ApiError, ApiResult};
use super::microversion::{MIN_MICROVERSION, Microversion};

/// A field accepted only in a range of microversions.
#[derive(Clone, Copy, Debug)]
pub struct Gate {
    /// The field's name in the body.
    pub field: &'static str,
    /// The first microversion (2.x) that has it.
    pub since: u16,
    /// The first microversion that no longer has it (`None`: still there).
    pub removed_in: Option<u16>,
}

impl Gate {
    /// `field`, accepted from 2.`minor` on.
    pub const fn since(field: &'static str, minor: u16) -> Self {
        Self {
            field,
            since: minor,
            removed_in: None,
        }
    }

    /// `field`, accepted before 2.`minor` only.
    pub const fn removed_in(field: &'static str, minor: u16) -> Self {
        Self {
            field,
            since: 0,
            removed_in: Some(minor),
        }
    }

    /// Whether a request at `version` may send the field.
    pub fn allows(&self, version: Microversion) -> bool {
        version.at_least(self.since) && self.removed_in.is_none_or(|minor| !version.at_least(minor))
    }
}

/// A request body (or one of its objects) parsed by [`parse`].
pub trait RequestBody: DeserializeOwned {
    /// Refuses the fields `value` may not hold at `version`. The default:
    /// only the fields `Self` declares, at every microversion. Bodies with
    /// nested objects or gated fields check each object with
    /// [`allow_only`].
    fn check_fields(value: &Value, version: Microversion) -> ApiResult<()> {
        allow_only::<Self>(value, &[], version)
    }

    /// Checks what the types cannot (name rules, lengths, field
    /// combinations) at `version`.
    fn validate(&self, version: Microversion) -> ApiResult<()> {
        let _ = version;
        Ok(())
    }
}

/// Parses `value` as `T` for a request at `version`: field check,
/// deserialization, validation (see the module doc).
pub fn parse<T: RequestBody>(value: &Value, version: Microversion) -> ApiResult<T> {
    T::check_fields(value, version)?;
    let body: T = serde_path_to_error::deserialize(value)
        .map_err(|error| refusal(value, error.path(), &error.inner().to_string()))?;
    body.validate(version)?;
    Ok(body)
}

/// A JSON request body parsed as `T` with [`parse`] at the request's
/// microversion; malformed JSON, a wrong content type and an oversized body
/// are refused as [`JsonBody`] refuses them.
pub struct TypedBody<T>(pub T);

impl<T: RequestBody, S: Send + Sync> FromRequest<S> for TypedBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let version = request
            .extensions()
            .get::<Microversion>()
            .copied()
            .unwrap_or(MIN_MICROVERSION);
        let JsonBody(value) = JsonBody::<Value>::from_request(request, state).await?;
        parse(&value, version).map(TypedBody)
    }
}

/// The message of an unknown field (or one this microversion does not have).
pub fn unexpected(field: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Additional properties are not allowed ('{field}' was unexpected)"
    ))
}

/// The message of a missing required field.
pub fn required(field: &str) -> ApiError {
    ApiError::bad_request(format!("'{field}' is a required property"))
}

/// Refuses any field of the object `value` that `T` does not declare, or
/// that `gates` keep from `version`. Anything but an object passes (its
/// type is refused when it is deserialized).
pub fn allow_only<T: DeserializeOwned>(
    value: &Value,
    gates: &[Gate],
    version: Microversion,
) -> ApiResult<()> {
    let Value::Object(object) = value else {
        return Ok(());
    };
    let declared = field_names::<T>();
    for key in object.keys() {
        let gated_out = gates
            .iter()
            .any(|gate| gate.field == key && !gate.allows(version));
        if gated_out || !declared.contains(&key.as_str()) {
            return Err(unexpected(key));
        }
    }
    Ok(())
}

/// Marks a field type's refusal whose message is whole (not "Invalid input
/// for field/attribute …"). Bodies went through [`parse_json`](super::body::parse_json),
/// which refuses a NUL anywhere, so no client text starts with one.
const WHOLE_MESSAGE: char = '\u{0}';

/// A field type's refusal: "Invalid input for field/attribute <field>.
/// <detail>" (`detail` may be empty), the field named by [`parse`].
pub fn invalid<E: de::Error>(detail: impl std::fmt::Display) -> E {
    E::custom(detail)
}

/// A field type's refusal with a message of its own.
pub fn refused<E: de::Error>(message: impl std::fmt::Display) -> E {
    E::custom(format!("{WHOLE_MESSAGE}{message}"))
}

/// "Value: <value>. <reason>", the detail of Nova's schema messages.
pub fn value_detail(value: &Value, reason: impl std::fmt::Display) -> String {
    format!("Value: {value}. {reason}")
}

/// The value at `path` in `root`, if the path leads somewhere.
fn value_at<'a>(root: &'a Value, path: &Path) -> Option<&'a Value> {
    path.iter().try_fold(root, |value, segment| match segment {
        Segment::Map { key } | Segment::Enum { variant: key } => value.get(key.as_str()),
        Segment::Seq { index } => value.get(*index),
        Segment::Unknown => None,
    })
}

/// The name Nova gives the failing field: the last segment of its path.
fn leaf(path: &Path) -> Option<String> {
    path.iter().next_back().and_then(|segment| match segment {
        Segment::Map { key } | Segment::Enum { variant: key } => Some(key.clone()),
        Segment::Seq { index } => Some(index.to_string()),
        Segment::Unknown => None,
    })
}

/// The JSON-schema type a serde expectation stands for (`a string` →
/// `string`), for Nova's "X is not of type 'string'".
fn json_type(expected: &str) -> Option<&'static str> {
    Some(match expected {
        "a string" | "a borrowed string" | "string" => "string",
        "a boolean" => "boolean",
        "a sequence" => "array",
        "a map" => "object",
        "f32" | "f64" => "number",
        "i8" | "i16" | "i32" | "i64" | "i128" | "u8" | "u16" | "u32" | "u64" | "u128" => "integer",
        other if other.starts_with("struct ") || other.starts_with("enum ") => "object",
        _ => return None,
    })
}

/// Text between the first two backticks of `message` after `prefix`.
fn quoted_after<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    message.strip_prefix(prefix)?.split('`').next()
}

/// The 400 for a deserialization error `message` at `path` in `root`, in
/// Nova's words.
fn refusal(root: &Value, path: &Path, message: &str) -> ApiError {
    if let Some(whole) = message.strip_prefix(WHOLE_MESSAGE) {
        return ApiError::bad_request(whole);
    }
    if let Some(field) = quoted_after(message, "missing field `") {
        return required(field);
    }
    if let Some(field) = quoted_after(message, "unknown field `") {
        return unexpected(field);
    }
    let value = value_at(root, path).unwrap_or(&Value::Null);
    // A list where a struct is expected fails on its length: serde's
    // derive also takes structs as sequences, JSON schema does not.
    let wrong_type = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid length "))
        .and_then(|rest| rest.rsplit_once(", expected "))
        .and_then(|(_, expected)| json_type(expected))
        .map(|kind| format!("{value} is not of type '{kind}'"));
    match (leaf(path), wrong_type) {
        (Some(field), Some(wrong_type)) => ApiError::bad_request(format!(
            "Invalid input for field/attribute {field}. {}",
            value_detail(value, wrong_type)
        )),
        (None, Some(wrong_type)) => ApiError::bad_request(wrong_type),
        (Some(field), None) if message.is_empty() => {
            ApiError::bad_request(format!("Invalid input for field/attribute {field}."))
        }
        (Some(field), None) => ApiError::bad_request(format!(
            "Invalid input for field/attribute {field}. {message}"
        )),
        (None, None) => ApiError::bad_request(format!("Invalid request body: {message}")),
    }
}

/// Deserializes `Some(T)` from a field that is present, even when it is
/// `null` (for `#[serde(default, deserialize_with = "present")]` on an
/// `Option<T>` whose `T` takes `null`): absent stays `None`.
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: de::Deserializer<'de>,
    T: de::Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// The field names `T`'s derived `Deserialize` declares, or its variant
/// names for an enum (serde passes them to `deserialize_struct` /
/// `deserialize_enum`; renamed ones under their JSON names).
pub fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    match T::deserialize(FieldNames) {
        Err(FieldNamesFound(Some(fields))) => fields,
        _ => &[],
    }
}

/// A deserializer that only records the field list of a struct.
struct FieldNames;

/// What [`FieldNames`] found: the struct's fields, or nothing.
#[derive(Debug)]
struct FieldNamesFound(Option<&'static [&'static str]>);

impl std::fmt::Display for FieldNamesFound {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("field names")
    }
}

impl std::error::Error for FieldNamesFound {}

impl de::Error for FieldNamesFound {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Self(None)
    }
}

impl<'de> de::Deserializer<'de> for FieldNames {
    type Error = FieldNamesFound;

    fn deserialize_any<V: de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(FieldNamesFound(None))
    }

    fn deserialize_struct<V: de::Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        Err(FieldNamesFound(Some(fields)))
    }

    fn deserialize_enum<V: de::Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        Err(FieldNamesFound(Some(variants)))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        name: String,
        #[serde(rename = "minRam", default)]
        min_ram: Option<u32>,
        #[serde(default)]
        tags: Vec<String>,
    }

    impl RequestBody for Inner {
        fn check_fields(value: &Value, version: Microversion) -> ApiResult<()> {
            allow_only::<Self>(value, &[Gate::since("tags", 26)], version)
        }
    }

    fn message<T: RequestBody>(value: Value, minor: u16) -> String {
        parse::<T>(&value, Microversion::v2(minor))
            .err()
            .map(|error| error.message().to_string())
            .unwrap_or_default()
    }

    #[test]
    fn field_names_come_from_the_derive() {
        assert_eq!(field_names::<Inner>(), &["name", "minRam", "tags"]);
        assert!(field_names::<String>().is_empty());
    }

    #[test]
    fn gates_open_and_close_with_the_microversion() {
        let since = Gate::since("description", 19);
        assert!(!since.allows(Microversion::v2(18)));
        assert!(since.allows(Microversion::v2(19)));
        let removed = Gate::removed_in("personality", 57);
        assert!(removed.allows(Microversion::v2(56)));
        assert!(!removed.allows(Microversion::v2(57)));
    }

    #[test]
    fn messages_are_novas() {
        assert_eq!(
            message::<Inner>(json!({"name": "a", "bogus": 1}), 1),
            "Additional properties are not allowed ('bogus' was unexpected)"
        );
        assert_eq!(
            message::<Inner>(json!({"name": "a", "tags": []}), 25),
            "Additional properties are not allowed ('tags' was unexpected)"
        );
        assert_eq!(message::<Inner>(json!({"name": "a", "tags": []}), 26), "");
        assert_eq!(
            message::<Inner>(json!({}), 1),
            "'name' is a required property"
        );
        assert_eq!(
            message::<Inner>(json!({"name": 5}), 1),
            "Invalid input for field/attribute name. Value: 5. 5 is not of type 'string'"
        );
        assert_eq!(
            message::<Inner>(json!({"name": "a", "minRam": "x"}), 1),
            "Invalid input for field/attribute minRam. Value: \"x\". \"x\" is not of type 'integer'"
        );
        assert_eq!(
            message::<Inner>(json!({"name": "a", "tags": [1]}), 26),
            "Invalid input for field/attribute 0. Value: 1. 1 is not of type 'string'"
        );
        assert_eq!(
            message::<Inner>(json!({"name": "a", "tags": {}}), 26),
            "Invalid input for field/attribute tags. Value: {}. {} is not of type 'array'"
        );
        assert_eq!(message::<Inner>(json!([]), 1), "[] is not of type 'object'");
    }
}
