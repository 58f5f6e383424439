//! Field types several bodies share: counts and sizes as Nova takes them
//! (numbers or numeric strings within a range), Nova's boolean, and the
//! pieces a server create shares with a rebuild: image reference, metadata,
//! personality files, user data, access IPs.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use serde::de::{self, Deserialize, Deserializer};
use serde_json::Value;

use super::{invalid, refused, value_detail};
use crate::compute::common::parse_bool;
use crate::fault::{ApiError, ApiResult};

/// The largest count or size Nova's schemas take (`int(2**31 - 1)`).
pub const I32_MAX: i64 = i32::MAX as i64;

/// An integer within `MIN..=MAX`, sent as a number or a numeric string
/// (Nova's `positive_integer`, `flavor_param_positive`, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Int<const MIN: i64, const MAX: i64>(pub i64);

/// 1 to 2³¹−1 (`min_count`, `ram`, `vcpus`).
pub type Positive = Int<1, I32_MAX>;
/// 0 to 2³¹−1 (`disk`, ephemeral, swap).
pub type NonNegative = Int<0, I32_MAX>;

impl<'de, const MIN: i64, const MAX: i64> Deserialize<'de> for Int<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let number = match &value {
            Value::Number(number) => number.as_i64(),
            Value::String(text) => text.trim().parse::<i64>().ok(),
            _ => None,
        };
        match number {
            Some(number) if (MIN..=MAX).contains(&number) => Ok(Self(number)),
            _ => Err(invalid(value_detail(
                &value,
                format!("It must be an integer between {MIN} and {MAX}."),
            ))),
        }
    }
}

/// Nova's `parameter_types.boolean`: `true`/`false`, or a string such as
/// `"yes"`, `"0"`, `"on"` (any case).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flag(pub bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Bool(flag) => Ok(Self(flag)),
            Value::String(text) => parse_bool(&text).map(Self).ok_or_else(|| invalid("")),
            _ => Err(invalid("")),
        }
    }
}

/// The last path segment of an id or a link (`http://…/images/<id>` →
/// `<id>`), as Nova reads `imageRef` and `flavorRef`.
pub fn last_segment(text: &str) -> String {
    text.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(text)
        .to_string()
}

/// `imageRef`: an image id or a link to one.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(transparent)]
pub struct ImageRef(pub String);

impl ImageRef {
    /// The image id it names.
    pub fn id(&self) -> String {
        last_segment(&self.0)
    }
}

/// The longest metadata key and value, in bytes.
const MAX_METADATA_TEXT: usize = 255;

/// A server's `metadata`: string keys (1 to 255 bytes) to string values
/// (at most 255 bytes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata(pub BTreeMap<String, String>);

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let Value::Object(entries) = value else {
            return Err(invalid(value_detail(&value, "It is not of type 'object'")));
        };
        entries
            .into_iter()
            .map(|(key, value)| match value {
                Value::String(text)
                    if !key.is_empty()
                        && key.len() <= MAX_METADATA_TEXT
                        && text.len() <= MAX_METADATA_TEXT =>
                {
                    Ok((key, text))
                }
                other => Err(invalid(format!("Value: {other}."))),
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

/// The longest `user_data` accepted: Nova's schema caps the base64 text at
/// 65,535 characters.
pub const MAX_USER_DATA_LENGTH: usize = 65_535;

/// `user_data`: base64 text of at most [`MAX_USER_DATA_LENGTH`] characters.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(transparent)]
pub struct UserData(pub String);

impl UserData {
    /// Refuses text over the cap or that is not base64, with Nova's messages.
    pub fn check(&self) -> ApiResult<()> {
        if self.0.len() > MAX_USER_DATA_LENGTH {
            return Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute user_data. It is longer than {MAX_USER_DATA_LENGTH} characters of base64."
            )));
        }
        if base64::engine::general_purpose::STANDARD
            .decode(self.0.trim())
            .is_err()
        {
            return Err(ApiError::bad_request(
                "User data needs to be valid base 64.",
            ));
        }
        Ok(())
    }
}

/// One personality file: where to write it and its base64 contents.
#[derive(Clone, Debug)]
pub struct PersonalityFile {
    /// The path in the guest.
    pub path: String,
    /// The contents, base64 as sent.
    pub contents: String,
}

/// `personality` (before 2.57): files to inject, each with a `path` and
/// base64 `contents`.
#[derive(Clone, Debug, Default)]
pub struct Personality(pub Vec<PersonalityFile>);

/// What a personality asks of the injected-file quotas: how many files,
/// the longest path and the largest content, in bytes (contents as sent,
/// base64, as Nova counts them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PersonalitySizes {
    /// Number of files.
    pub files: i64,
    /// Longest path, bytes.
    pub longest_path: i64,
    /// Largest contents, bytes of base64.
    pub largest_content: i64,
}

impl Personality {
    /// The sizes the injected-file quotas count.
    pub fn sizes(&self) -> PersonalitySizes {
        let count = |value: usize| i64::try_from(value).unwrap_or(i64::MAX);
        let longest_path = self.0.iter().map(|file| file.path.len()).max();
        let largest_content = self.0.iter().map(|file| file.contents.len()).max();
        PersonalitySizes {
            files: count(self.0.len()),
            longest_path: count(longest_path.unwrap_or(0)),
            largest_content: count(largest_content.unwrap_or(0)),
        }
    }
}

impl<'de> Deserialize<'de> for Personality {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let items = Vec::<Value>::deserialize(deserializer)?;
        items
            .iter()
            .map(|item| {
                let (Some(path), Some(contents)) = (
                    item.get("path").and_then(Value::as_str),
                    item.get("contents").and_then(Value::as_str),
                ) else {
                    return Err(refused(
                        "Invalid input for field/attribute personality: each file needs a 'path' and 'contents' string.",
                    ));
                };
                if base64::engine::general_purpose::STANDARD
                    .decode(contents)
                    .is_err()
                {
                    return Err(refused(format!(
                        "Personality content for {path} cannot be decoded"
                    )));
                }
                Ok(PersonalityFile {
                    path: path.to_string(),
                    contents: contents.to_string(),
                })
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

/// Which address family an access IP field holds.
#[derive(Clone, Copy, Debug)]
enum Family {
    V4,
    V6,
}

impl fmt::Display for Family {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        })
    }
}

/// An access IP as Nova's schema takes it (format ipv4 / ipv6; `null` or
/// `""` clears it, giving `""`), in the canonical form Nova stores (for
/// IPv6, RFC 5952).
fn access_ip<E: de::Error>(value: Value, family: Family) -> Result<String, E> {
    let parsed = match &value {
        Value::Null => return Ok(String::new()),
        Value::String(text) if text.is_empty() => return Ok(String::new()),
        Value::String(text) => match family {
            Family::V4 => text
                .parse::<std::net::Ipv4Addr>()
                .map(|ip| ip.to_string())
                .ok(),
            Family::V6 => text
                .parse::<std::net::Ipv6Addr>()
                .map(|ip| ip.to_string())
                .ok(),
        },
        _ => None,
    };
    parsed.ok_or_else(|| invalid(value_detail(&value, format!("{value} is not a '{family}'"))))
}

/// `accessIPv4` (`""` when cleared with `null` or `""`). Use with
/// [`present`](super::present) so that `null` is told from absent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessIpV4(pub String);

impl<'de> Deserialize<'de> for AccessIpV4 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        access_ip(Value::deserialize(deserializer)?, Family::V4).map(Self)
    }
}

/// `accessIPv6` (`""` when cleared), canonical. See [`AccessIpV4`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessIpV6(pub String);

impl<'de> Deserialize<'de> for AccessIpV6 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        access_ip(Value::deserialize(deserializer)?, Family::V6).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, String> {
        serde_json::from_value(value).map_err(|error| error.to_string())
    }

    #[test]
    fn ints_take_numbers_and_numeric_strings_within_range() {
        assert_eq!(read::<Positive>(json!(3)), Ok(Int(3)));
        assert_eq!(read::<Positive>(json!(" 7 ")), Ok(Int(7)));
        assert_eq!(
            read::<Positive>(json!(0)),
            Err("Value: 0. It must be an integer between 1 and 2147483647.".to_string())
        );
        assert!(read::<NonNegative>(json!(0)).is_ok());
        assert!(read::<NonNegative>(json!(1.5)).is_err());
        assert!(read::<NonNegative>(json!(I32_MAX + 1)).is_err());
    }

    #[test]
    fn flags_are_novas_booleans() {
        assert_eq!(read::<Flag>(json!(true)), Ok(Flag(true)));
        assert_eq!(read::<Flag>(json!("No")), Ok(Flag(false)));
        assert!(read::<Flag>(json!("maybe")).is_err());
        assert!(read::<Flag>(json!(1)).is_err());
    }

    #[test]
    fn access_ips_are_canonical_and_null_clears() {
        assert_eq!(
            read::<AccessIpV6>(json!("2001:DB8:0:0:0:0:0:1")),
            Ok(AccessIpV6("2001:db8::1".into()))
        );
        assert_eq!(
            read::<AccessIpV4>(json!(null)),
            Ok(AccessIpV4(String::new()))
        );
        assert_eq!(
            read::<AccessIpV4>(json!("1.2.3")),
            Err("Value: \"1.2.3\". \"1.2.3\" is not a 'ipv4'".to_string())
        );
    }

    #[test]
    fn personality_sizes_count_base64_as_sent() {
        let files: Personality = read(json!([
            {"path": "/etc/a", "contents": "YWJj"},
            {"path": "/b", "contents": "YWJjZGVm"},
        ]))
        .expect("valid personality");
        assert_eq!(
            files.sizes(),
            PersonalitySizes {
                files: 2,
                longest_path: 6,
                largest_content: 8
            }
        );
        assert!(read::<Personality>(json!([{"path": "/a"}])).is_err());
        assert!(read::<Personality>(json!([{"path": "/a", "contents": "!!"}])).is_err());
    }

    #[test]
    fn metadata_is_short_strings() {
        assert!(read::<Metadata>(json!({"a": "b"})).is_ok());
        assert_eq!(
            read::<Metadata>(json!({"a": 1})),
            Err("Value: 1.".to_string())
        );
        assert!(read::<Metadata>(json!({"": "b"})).is_err());
        assert!(read::<Metadata>(json!({"a": "v".repeat(256)})).is_err());
        assert_eq!(
            read::<Metadata>(json!([])),
            Err("Value: []. It is not of type 'object'".to_string())
        );
    }
}
