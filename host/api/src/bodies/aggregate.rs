//! `/os-aggregates`: the create and update bodies and the actions
//! (`add_host`, `remove_host`, `set_metadata`), Nova's
//! `aggregates.{create,update,add_host,remove_host,set_metadata}`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::Deserializer;
use serde_json::Value;
use utoipa::ToSchema;

use super::{RequestBody, allow_only, field_names, invalid, present, refused};
use crate::compute::aggregates::ZONE_KEY;
use crate::fault::{ApiError, ApiResult};
use crate::microversion::Microversion;
use crate::validation::{self, TextFormat};

/// The longest metadata key and value, in bytes.
const MAX_METADATA_TEXT: usize = 255;

/// Refuses anything but `{"aggregate": {…}}`.
fn check_envelope(value: &Value) -> ApiResult<&Value> {
    match value {
        Value::Object(body) if body.len() == 1 => match body.get("aggregate") {
            Some(aggregate @ Value::Object(_)) => Ok(aggregate),
            _ => Err(envelope_refused()),
        },
        _ => Err(envelope_refused()),
    }
}

fn envelope_refused() -> ApiError {
    ApiError::bad_request("Invalid input: the body must be {\"aggregate\": {...}}")
}

/// Checks an aggregate's `name` and, when set, its `availability_zone`.
fn check_names(name: Option<&str>, zone: Option<&str>) -> ApiResult<()> {
    if let Some(name) = name {
        validation::check_text("name", name, TextFormat::Name)?;
    }
    if let Some(zone) = zone {
        validation::check_text("availability_zone", zone, TextFormat::AzName)?;
    }
    Ok(())
}

/// `{"aggregate": {"name", "availability_zone"}}` (create).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AggregateCreateBody {
    /// The aggregate to create.
    pub aggregate: AggregateCreate,
}

/// The `aggregate` of a create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AggregateCreate {
    /// Name (Nova's name rules).
    pub name: String,
    /// The zone its hosts join (no `:`); `null`: none.
    #[serde(default)]
    pub availability_zone: Option<String>,
}

impl RequestBody for AggregateCreateBody {
    fn check_fields(value: &Value, version: Microversion) -> ApiResult<()> {
        allow_only::<AggregateCreate>(check_envelope(value)?, &[], version)
    }

    fn validate(&self, _version: Microversion) -> ApiResult<()> {
        let aggregate = &self.aggregate;
        check_names(
            Some(&aggregate.name),
            aggregate.availability_zone.as_deref(),
        )
    }
}

/// `{"aggregate": {…}}` (update: a name, a zone, or both).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AggregateUpdateBody {
    /// What to change.
    pub aggregate: AggregateUpdate,
}

/// The `aggregate` of an update.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AggregateUpdate {
    /// The new name.
    #[serde(default, deserialize_with = "present")]
    pub name: Option<String>,
    /// The new zone: `Some(None)` (`null`) takes the aggregate out of its zone.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub availability_zone: Option<Option<String>>,
}

impl RequestBody for AggregateUpdateBody {
    fn check_fields(value: &Value, version: Microversion) -> ApiResult<()> {
        allow_only::<AggregateUpdate>(check_envelope(value)?, &[], version)
    }

    fn validate(&self, _version: Microversion) -> ApiResult<()> {
        let aggregate = &self.aggregate;
        if aggregate.name.is_none() && aggregate.availability_zone.is_none() {
            return Err(ApiError::bad_request(
                "Invalid input: name or availability_zone must be given.",
            ));
        }
        check_names(
            aggregate.name.as_deref(),
            aggregate
                .availability_zone
                .as_ref()
                .and_then(Option::as_deref),
        )
    }
}

/// `POST /os-aggregates/{id}/action`: one action named by its key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub enum AggregateActionBody {
    /// `{"add_host": {"host": …}}`.
    #[serde(rename = "add_host")]
    AddHost(HostArgs),
    /// `{"remove_host": {"host": …}}`.
    #[serde(rename = "remove_host")]
    RemoveHost(HostArgs),
    /// `{"set_metadata": {"metadata": {…}}}`.
    #[serde(rename = "set_metadata")]
    SetMetadata(MetadataArgs),
}

impl AggregateActionBody {
    /// The action's name (its key in the body).
    pub fn name(&self) -> &'static str {
        match self {
            Self::AddHost(_) => "add_host",
            Self::RemoveHost(_) => "remove_host",
            Self::SetMetadata(_) => "set_metadata",
        }
    }
}

impl RequestBody for AggregateActionBody {
    fn check_fields(value: &Value, version: Microversion) -> ApiResult<()> {
        let (name, args) = match value {
            Value::Object(body) if body.len() == 1 => match body.iter().next() {
                Some((name, args @ Value::Object(_))) => (name.as_str(), args),
                _ => return Err(one_action()),
            },
            _ => return Err(one_action()),
        };
        if !field_names::<Self>().contains(&name) {
            return Err(ApiError::bad_request(format!(
                "There is no such action: {name}"
            )));
        }
        if name == "set_metadata" {
            allow_only::<MetadataArgs>(args, &[], version)
        } else {
            allow_only::<HostArgs>(args, &[], version)
        }
    }

    fn validate(&self, _version: Microversion) -> ApiResult<()> {
        match self {
            Self::AddHost(args) | Self::RemoveHost(args) => {
                validation::check_text("host", &args.host, TextFormat::Name)
            }
            Self::SetMetadata(_) => Ok(()),
        }
    }
}

fn one_action() -> ApiError {
    ApiError::bad_request("The request body must name exactly one action.")
}

/// The argument of `add_host` and `remove_host`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostArgs {
    /// The compute host.
    pub host: String,
}

/// The argument of `set_metadata`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetadataArgs {
    /// Keys to set (a string) or remove (`null`).
    #[schema(value_type = BTreeMap<String, Option<String>>)]
    pub metadata: AggregateMetadata,
}

/// Aggregate metadata changes: each key (1 to 255 bytes) to a value of at
/// most 255 bytes, or `None` to remove it. An `availability_zone` value may
/// be neither empty nor hold a `:`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AggregateMetadata(pub BTreeMap<String, Option<String>>);

impl<'de> Deserialize<'de> for AggregateMetadata {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let Value::Object(entries) = Value::deserialize(deserializer)? else {
            return Err(refused("'metadata' is a required property"));
        };
        let mut changes = BTreeMap::new();
        for (key, value) in entries {
            if key.is_empty() || key.len() > MAX_METADATA_TEXT {
                return Err(invalid(format!("Value: {key}.")));
            }
            let value = match value {
                Value::Null => None,
                Value::String(text) if text.len() <= MAX_METADATA_TEXT => Some(text),
                other => return Err(invalid(format!("Value: {other}."))),
            };
            if key == ZONE_KEY
                && let Some(zone) = &value
                && (zone.is_empty() || zone.contains(':'))
            {
                return Err(refused(format!(
                    "Invalid input for field/attribute availability_zone. Value: {zone}."
                )));
            }
            changes.insert(key, value);
        }
        Ok(Self(changes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bodies::parse;
    use serde_json::json;

    fn message<T: RequestBody + std::fmt::Debug>(body: Value) -> String {
        parse::<T>(&body, Microversion::v2(1))
            .err()
            .map(|error| error.message().to_string())
            .unwrap_or_default()
    }

    #[test]
    fn create_and_update_bodies() {
        assert_eq!(
            message::<AggregateCreateBody>(json!({"aggregate": {"name": "a"}, "x": 1})),
            "Invalid input: the body must be {\"aggregate\": {...}}"
        );
        assert_eq!(
            message::<AggregateCreateBody>(json!({"aggregate": {"name": "a", "bogus": 1}})),
            "Additional properties are not allowed ('bogus' was unexpected)"
        );
        assert_eq!(
            message::<AggregateCreateBody>(json!({"aggregate": {}})),
            "'name' is a required property"
        );
        assert_eq!(
            message::<AggregateUpdateBody>(json!({"aggregate": {}})),
            "Invalid input: name or availability_zone must be given."
        );
        assert_eq!(
            message::<AggregateUpdateBody>(json!({"aggregate": {"name": null}})),
            "Invalid input for field/attribute name. Value: null. null is not of type 'string'"
        );
        let update: AggregateUpdateBody = parse(
            &json!({"aggregate": {"availability_zone": null}}),
            Microversion::v2(1),
        )
        .expect("valid");
        assert_eq!(update.aggregate.availability_zone, Some(None));
    }

    #[test]
    fn actions() {
        assert_eq!(
            message::<AggregateActionBody>(json!({"add_host": {"host": "a"}, "x": {}})),
            "The request body must name exactly one action."
        );
        assert_eq!(
            message::<AggregateActionBody>(json!({"explode": {}})),
            "There is no such action: explode"
        );
        assert_eq!(
            message::<AggregateActionBody>(json!({"add_host": {}})),
            "'host' is a required property"
        );
        assert_eq!(
            message::<AggregateActionBody>(json!({"remove_host": {"host": "a", "x": 1}})),
            "Additional properties are not allowed ('x' was unexpected)"
        );
        assert_eq!(
            message::<AggregateActionBody>(json!({"set_metadata": {"metadata": 5}})),
            "'metadata' is a required property"
        );
        assert_eq!(
            message::<AggregateActionBody>(
                json!({"set_metadata": {"metadata": {"availability_zone": "a:b"}}})
            ),
            "Invalid input for field/attribute availability_zone. Value: a:b."
        );
        assert_eq!(
            message::<AggregateActionBody>(json!({"set_metadata": {"metadata": {"k": 1}}})),
            "Invalid input for field/attribute metadata. Value: 1."
        );
        let body: AggregateActionBody = parse(
            &json!({"set_metadata": {"metadata": {"k": "v", "gone": null}}}),
            Microversion::v2(1),
        )
        .expect("valid");
        assert_eq!(body.name(), "set_metadata");
    }
}
