//! `POST /flavors`: the flavor create body (Nova's `flavor_manage.create`,
//! `description` from 2.55).

use serde::Deserialize;
use serde::de::Deserializer;
use serde_json::Value;
use utoipa::ToSchema;

use super::fields::{Flag, NonNegative, Positive};
use super::{Gate, RequestBody, allow_only, invalid, value_detail};
use crate::fault::ApiResult;
use crate::microversion::Microversion;
use crate::validation::{self, TextFormat};

/// The `rxtx_factor` of a flavor created without one.
pub const DEFAULT_RXTX_FACTOR: f64 = 1.0;
/// The largest `rxtx_factor`: Nova's `SQL_SP_FLOAT_MAX`, the largest
/// single-precision float its column holds.
pub const MAX_RXTX_FACTOR: f64 = 3.40282e38;
/// The longest flavor id.
pub const MAX_FLAVOR_ID_LENGTH: usize = 255;

/// The fields of `flavor` that come with a microversion.
const FLAVOR_GATES: &[Gate] = &[
    Gate::since("description", 55),
    Gate::removed_in("rxtx_factor", 102),
];

/// `{"flavor": {…}}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlavorCreateBody {
    /// The flavor to create.
    pub flavor: FlavorCreate,
}

impl RequestBody for FlavorCreateBody {
    fn check_fields(value: &Value, version: Microversion) -> ApiResult<()> {
        allow_only::<Self>(value, &[], version)?;
        allow_only::<FlavorCreate>(&value["flavor"], FLAVOR_GATES, version)
    }

    fn validate(&self, _version: Microversion) -> ApiResult<()> {
        let flavor = &self.flavor;
        validation::check_text("name", &flavor.name, TextFormat::Name)?;
        if let Some(description) = &flavor.description {
            validation::check_text("description", description, TextFormat::Description)?;
        }
        Ok(())
    }
}

/// The `flavor` of a create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlavorCreate {
    /// Name (Nova's name rules).
    pub name: String,
    /// Memory, MiB (1 to 2³¹−1; a number or a numeric string).
    #[schema(value_type = i64, minimum = 1)]
    pub ram: Positive,
    /// vCPUs (1 to 2³¹−1).
    #[schema(value_type = i64, minimum = 1)]
    pub vcpus: Positive,
    /// Root disk, GiB (0 to 2³¹−1).
    #[schema(value_type = i64, minimum = 0)]
    pub disk: NonNegative,
    /// The id (a UUID is made without one).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub id: Option<FlavorId>,
    /// Ephemeral disk, GiB.
    #[serde(rename = "OS-FLV-EXT-DATA:ephemeral", default)]
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub ephemeral: Option<NonNegative>,
    /// Swap, MiB (`""`: none).
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub swap: Option<Swap>,
    /// RX/TX factor: a number or a decimal string, over 0.
    #[serde(default)]
    #[schema(value_type = Option<f64>)]
    pub rxtx_factor: Option<RxtxFactor>,
    /// Whether every project may use it (Nova's boolean; default true).
    #[serde(rename = "os-flavor-access:is_public", default)]
    #[schema(value_type = Option<bool>)]
    pub is_public: Option<Flag>,
    /// Description (from 2.55).
    #[serde(default)]
    pub description: Option<String>,
}

impl FlavorCreate {
    /// Ephemeral disk, GiB (0 unless given).
    pub fn ephemeral_gb(&self) -> i64 {
        self.ephemeral.map_or(0, |size| size.0)
    }

    /// Swap, MiB (0 unless given).
    pub fn swap_mb(&self) -> i64 {
        self.swap.map_or(0, |swap| swap.0)
    }

    /// The RX/TX factor ([`DEFAULT_RXTX_FACTOR`] unless given).
    pub fn rxtx_factor(&self) -> f64 {
        self.rxtx_factor
            .map_or(DEFAULT_RXTX_FACTOR, |factor| factor.0)
    }

    /// Whether the flavor is public (true unless given).
    pub fn is_public(&self) -> bool {
        self.is_public.is_none_or(|flag| flag.0)
    }
}

/// Whether `id` is a flavor id Nova accepts (`^(?! )[a-zA-Z0-9. _-]+(?<! )$`,
/// at most 255 characters): nothing that could be a path separator or a
/// control character.
fn is_flavor_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_FLAVOR_ID_LENGTH
        && !id.starts_with(' ')
        && !id.ends_with(' ')
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b". _-".contains(&byte))
}

/// A flavor id: such a string, or a number (as its text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlavorId(pub String);

impl<'de> Deserialize<'de> for FlavorId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(text) if is_flavor_id(&text) => Ok(Self(text)),
            Value::Number(number) => Ok(Self(number.to_string())),
            other => Err(invalid(value_detail(
                &other,
                format!(
                    "It must be 1 to {MAX_FLAVOR_ID_LENGTH} letters, digits, '.', '_', '-' or spaces, not starting or ending with a space."
                ),
            ))),
        }
    }
}

/// Swap, MiB: 0 to 2³¹−1, or `""` for none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Swap(pub i64);

impl<'de> Deserialize<'de> for Swap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(text) if text.is_empty() => Ok(Self(0)),
            other => NonNegative::deserialize(other)
                .map(|size| Self(size.0))
                .map_err(invalid),
        }
    }
}

/// Whether `text` is digits with an optional fraction (`^[0-9]+(\.[0-9]+)?$`).
fn is_decimal(text: &str) -> bool {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, "0"));
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit());
    digits(whole) && digits(fraction)
}

/// `rxtx_factor` as Nova's schema takes it: a number, or a decimal string,
/// greater than 0 and at most [`MAX_RXTX_FACTOR`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RxtxFactor(pub f64);

impl<'de> Deserialize<'de> for RxtxFactor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let number = match &value {
            Value::Number(number) => number.as_f64(),
            Value::String(text) if is_decimal(text) => text.parse::<f64>().ok(),
            _ => None,
        };
        number
            .filter(|factor| *factor > 0.0 && *factor <= MAX_RXTX_FACTOR)
            .map(Self)
            .ok_or_else(|| {
                invalid(value_detail(
                    &value,
                    format!("It must be a number greater than 0 and at most {MAX_RXTX_FACTOR:e}."),
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bodies::parse;
    use serde_json::json;

    fn create(flavor: Value, minor: u16) -> ApiResult<FlavorCreateBody> {
        parse(&json!({ "flavor": flavor }), Microversion::v2(minor))
    }

    fn message(flavor: Value, minor: u16) -> String {
        create(flavor, minor)
            .err()
            .map(|error| error.message().to_string())
            .unwrap_or_default()
    }

    #[test]
    fn defaults_and_forms_nova_takes() {
        let body = create(
            json!({"name": "f", "ram": "64", "vcpus": 1, "disk": 0, "id": 7, "swap": "", "rxtx_factor": "2.5", "os-flavor-access:is_public": "false"}),
            1,
        )
        .expect("valid");
        let flavor = body.flavor;
        assert_eq!(flavor.ram.0, 64);
        assert_eq!(flavor.id, Some(FlavorId("7".into())));
        assert_eq!(flavor.swap_mb(), 0);
        assert_eq!(flavor.rxtx_factor(), 2.5);
        assert!(!flavor.is_public());
        let flavor = create(json!({"name": "f", "ram": 64, "vcpus": 1, "disk": 0}), 1)
            .expect("valid")
            .flavor;
        assert_eq!(flavor.rxtx_factor(), DEFAULT_RXTX_FACTOR);
        assert!(flavor.is_public());
        assert_eq!(flavor.ephemeral_gb(), 0);
    }

    #[test]
    fn refusals_name_the_field() {
        let base = |field: &str, value: Value| {
            let mut flavor = json!({"name": "f", "ram": 64, "vcpus": 1, "disk": 0});
            flavor[field] = value;
            flavor
        };
        assert_eq!(
            message(base("description", json!("d")), 54),
            "Additional properties are not allowed ('description' was unexpected)"
        );
        assert_eq!(message(base("description", json!("d")), 55), "");
        assert_eq!(
            message(base("bogus", json!(1)), 55),
            "Additional properties are not allowed ('bogus' was unexpected)"
        );
        assert_eq!(
            message(json!({"name": "f", "vcpus": 1, "disk": 0}), 1),
            "'ram' is a required property"
        );
        assert_eq!(
            message(base("swap", json!(-1)), 1),
            "Invalid input for field/attribute swap. Value: -1. It must be an integer between 0 and 2147483647."
        );
        assert_eq!(
            message(base("os-flavor-access:is_public", json!("maybe")), 1),
            "Invalid input for field/attribute os-flavor-access:is_public."
        );
        assert_eq!(
            message(base("rxtx_factor", json!(0)), 1),
            "Invalid input for field/attribute rxtx_factor. Value: 0. It must be a number greater than 0 and at most 3.40282e38."
        );
        assert_eq!(
            message(base("id", json!("a/b")), 1),
            "Invalid input for field/attribute id. Value: \"a/b\". It must be 1 to 255 letters, digits, '.', '_', '-' or spaces, not starting or ending with a space."
        );
        assert_eq!(
            message(base("name", json!(5)), 1),
            "Invalid input for field/attribute name. Value: 5. 5 is not of type 'string'"
        );
    }
}
