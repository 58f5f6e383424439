//! The bodies of the server actions that take more than a field or two:
//! `rebuild` (Nova's `servers.base_rebuild` and its microversions, sharing
//! the [`fields`](super::fields) types of a server create) and `rescue`
//! (`rescue.rescue`), `migrate` (`migrate_server.migrate_v2_56`).

use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::fields::{AccessIpV4, AccessIpV6, Flag, ImageRef, Metadata, Personality, UserData};
use super::{Gate, RequestBody, allow_only, present};
use crate::fault::{ApiError, ApiResult};
use crate::microversion::Microversion;
use crate::validation::{self, TextFormat};

/// The fields of `rebuild` that come or go with a microversion.
const REBUILD_GATES: &[Gate] = &[
    Gate::since("description", 19),
    Gate::since("key_name", 54),
    Gate::removed_in("personality", 57),
    Gate::since("user_data", 57),
    Gate::since("trusted_image_certificates", 63),
    Gate::since("hostname", 90),
];

/// The microversion from which `hostname` may be a fully qualified name
/// (up to 255 characters) rather than a short one (up to 63).
const FQDN_HOSTNAME_SINCE: u16 = 94;

/// `{"rebuild": {…}}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RebuildBody {
    /// What to rebuild the server with.
    pub rebuild: Rebuild,
}

impl RequestBody for RebuildBody {
    fn check_fields(value: &Value, version: Microversion) -> ApiResult<()> {
        allow_only::<Self>(value, &[], version)?;
        allow_only::<Rebuild>(&value["rebuild"], REBUILD_GATES, version)
    }

    fn validate(&self, version: Microversion) -> ApiResult<()> {
        self.rebuild.validate(version)
    }
}

/// The `rebuild` of a rebuild: each field absent keeps what the server has.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rebuild {
    /// The image to rebuild from (a UUID).
    #[serde(rename = "imageRef")]
    #[schema(value_type = String)]
    pub image_ref: ImageRef,
    /// A new display name.
    #[serde(default)]
    pub name: Option<String>,
    /// The administrator password to set.
    #[serde(rename = "adminPass", default)]
    pub admin_pass: Option<String>,
    /// New metadata, replacing the server's.
    #[serde(default)]
    #[schema(value_type = Option<std::collections::BTreeMap<String, String>>)]
    pub metadata: Option<Metadata>,
    /// Files to inject (before 2.57).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub personality: Option<Personality>,
    /// A new IPv4 access address (`null` or `""`: none).
    #[serde(rename = "accessIPv4", default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub access_ip_v4: Option<AccessIpV4>,
    /// A new IPv6 access address (`null` or `""`: none).
    #[serde(rename = "accessIPv6", default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub access_ip_v6: Option<AccessIpV6>,
    /// `AUTO` or `MANUAL` (accepted, unused).
    #[serde(rename = "OS-DCF:diskConfig", default)]
    pub disk_config: Option<String>,
    /// Keep the ephemeral disk (Nova's boolean).
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    pub preserve_ephemeral: Option<Flag>,
    /// A new description (from 2.19; `null` clears it).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// A new key pair (from 2.54; `null` removes it).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub key_name: Option<Option<String>>,
    /// New base64 user data (from 2.57; `null` removes it).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub user_data: Option<Option<UserData>>,
    /// Trusted certificate ids (from 2.63; with certificate validation off,
    /// as in Nova's default configuration, accepted and unused).
    #[serde(default, deserialize_with = "present")]
    pub trusted_image_certificates: Option<Option<Vec<String>>>,
    /// A new guest host name (from 2.90).
    #[serde(default)]
    pub hostname: Option<String>,
}

/// The 400 of a value Nova's JSON schema refuses.
fn invalid_value(field: &str, value: &Value, reason: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid input for field/attribute {field}. Value: {value}. {reason}"
    ))
}

impl Rebuild {
    /// What types cannot say: the image id is a UUID, Nova's name and
    /// description rules, the disk config, user data, trusted
    /// certificates, the host name.
    fn validate(&self, version: Microversion) -> ApiResult<()> {
        let image = Value::String(self.image_ref.0.clone());
        if uuid::Uuid::parse_str(&self.image_ref.0).is_err() {
            return Err(invalid_value(
                "imageRef",
                &image,
                format!("{image} is not a 'uuid'"),
            ));
        }
        if let Some(name) = &self.name {
            validation::check_text("name", name, TextFormat::Name)?;
        }
        if let Some(Some(description)) = &self.description {
            validation::check_text("description", description, TextFormat::Description)?;
        }
        if let Some(config) = &self.disk_config
            && config != "AUTO"
            && config != "MANUAL"
        {
            let value = Value::String(config.clone());
            return Err(invalid_value(
                "OS-DCF:diskConfig",
                &value,
                format!("{value} is not one of ['AUTO', 'MANUAL']"),
            ));
        }
        if let Some(Some(user_data)) = &self.user_data {
            user_data.check()?;
        }
        if let Some(Some(certificates)) = &self.trusted_image_certificates {
            check_certificates(certificates)?;
        }
        if let Some(hostname) = &self.hostname {
            check_hostname(hostname, version)?;
        }
        Ok(())
    }

    /// The id of the image to rebuild from.
    pub fn image_id(&self) -> String {
        self.image_ref.id()
    }

    /// Whether the ephemeral disk is kept.
    pub fn preserves_ephemeral(&self) -> bool {
        self.preserve_ephemeral.is_some_and(|flag| flag.0)
    }
}

/// Nova's schema of `trusted_image_certificates`: 1 to 50 distinct,
/// non-empty strings.
fn check_certificates(certificates: &[String]) -> ApiResult<()> {
    let field = "trusted_image_certificates";
    let value = serde_json::json!(certificates);
    if certificates.is_empty() {
        return Err(invalid_value(field, &value, "[] is too short"));
    }
    if certificates.len() > 50 {
        return Err(invalid_value(field, &value, format!("{value} is too long")));
    }
    if certificates.iter().any(String::is_empty) {
        return Err(invalid_value(field, &value, "'' is too short"));
    }
    let mut distinct = certificates.to_vec();
    distinct.sort();
    distinct.dedup();
    if distinct.len() != certificates.len() {
        return Err(invalid_value(
            field,
            &value,
            format!("{value} has non-unique elements"),
        ));
    }
    Ok(())
}

/// Nova's schema of `hostname`: letters, digits, `-`, `.` and `_`, 1 to
/// 63 characters (255 from 2.94).
fn check_hostname(hostname: &str, version: Microversion) -> ApiResult<()> {
    let value = Value::String(hostname.to_string());
    let longest = if version.at_least(FQDN_HOSTNAME_SINCE) {
        255
    } else {
        63
    };
    if hostname.is_empty() {
        return Err(invalid_value(
            "hostname",
            &value,
            format!("{value} is too short"),
        ));
    }
    if hostname.len() > longest {
        return Err(invalid_value(
            "hostname",
            &value,
            format!("{value} is too long"),
        ));
    }
    if !hostname
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err(invalid_value(
            "hostname",
            &value,
            format!("{value} does not match '^[a-zA-Z0-9-._]*$'"),
        ));
    }
    Ok(())
}

/// `{"rescue": null}` or `{"rescue": {"adminPass": …, "rescue_image_ref": …}}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RescueBody {
    /// The password and image, both optional.
    #[serde(default)]
    pub rescue: Option<Rescue>,
}

impl RequestBody for RescueBody {
    fn check_fields(value: &Value, version: Microversion) -> ApiResult<()> {
        allow_only::<Self>(value, &[], version)?;
        allow_only::<Rescue>(&value["rescue"], &[], version)
    }

    fn validate(&self, _version: Microversion) -> ApiResult<()> {
        if let Some(image) = self
            .rescue
            .as_ref()
            .and_then(|r| r.rescue_image_ref.as_ref())
            && uuid::Uuid::parse_str(image).is_err()
        {
            let value = Value::String(image.clone());
            return Err(invalid_value(
                "rescue_image_ref",
                &value,
                format!("{value} is not a 'uuid'"),
            ));
        }
        Ok(())
    }
}

/// The `rescue` of a rescue.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rescue {
    /// The password of the rescue guest.
    #[serde(rename = "adminPass", default)]
    pub admin_pass: Option<String>,
    /// The image to boot (a UUID; the server's own image when absent).
    #[serde(default)]
    pub rescue_image_ref: Option<String>,
}

/// `{"migrate": null}` or, from 2.56, `{"migrate": {"host": …}}` (Nova's
/// `migrate_server.migrate_v2_56`; before 2.56 Nova reads no body).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrateBody {
    /// The destination, optional.
    #[serde(default)]
    pub migrate: Option<Migrate>,
}

/// Checks a destination `host` field as Nova's `parameter_types.fqdn`.
pub fn check_host_name(host: &str) -> ApiResult<()> {
    let value = Value::String(host.to_string());
    let reason = if host.is_empty() {
        format!("{value} is too short")
    } else if host.chars().count() > 255 {
        format!("{value} is too long")
    } else if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        format!("{value} does not match '^[a-zA-Z0-9-._]*$'")
    } else {
        return Ok(());
    };
    Err(invalid_value("host", &value, reason))
}

/// The microversion from which a cold migration may name its destination.
pub const MIGRATE_HOST_SINCE: u16 = 56;

impl RequestBody for MigrateBody {
    fn check_fields(value: &Value, version: Microversion) -> ApiResult<()> {
        allow_only::<Self>(value, &[], version)?;
        allow_only::<Migrate>(&value["migrate"], &[], version)
    }

    fn validate(&self, _version: Microversion) -> ApiResult<()> {
        match self.migrate.as_ref().and_then(|m| m.host.as_ref()) {
            Some(host) => check_host_name(host),
            None => Ok(()),
        }
    }
}

/// The `migrate` of a cold migration.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Migrate {
    /// The destination host (the scheduler's choice when absent or null).
    #[serde(default)]
    pub host: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bodies::parse;
    use serde_json::json;

    const IMAGE: &str = "70a599e0-31e7-49b7-b260-868f441e862b";

    fn message(rebuild: Value, minor: u16) -> String {
        parse::<RebuildBody>(&json!({ "rebuild": rebuild }), Microversion::v2(minor))
            .err()
            .map(|error| error.message().to_string())
            .unwrap_or_default()
    }

    #[test]
    fn rebuild_fields_follow_the_microversion() {
        for (field, value, since) in [
            ("description", json!("d"), 19),
            ("key_name", json!(null), 54),
            ("user_data", json!("YQ=="), 57),
            ("trusted_image_certificates", json!(["c"]), 63),
            ("hostname", json!("h"), 90),
        ] {
            let mut body = json!({"imageRef": IMAGE});
            body[field] = value;
            assert_eq!(
                message(body.clone(), since - 1),
                format!("Additional properties are not allowed ('{field}' was unexpected)")
            );
            assert_eq!(message(body, since), "", "{field}");
        }
        let files = json!([{"path": "/a", "contents": "YQ=="}]);
        assert_eq!(
            message(json!({"imageRef": IMAGE, "personality": files}), 56),
            ""
        );
        assert_eq!(
            message(json!({"imageRef": IMAGE, "personality": files}), 57),
            "Additional properties are not allowed ('personality' was unexpected)"
        );
    }

    #[test]
    fn rebuild_refusals_are_novas() {
        assert_eq!(message(json!({}), 1), "'imageRef' is a required property");
        assert_eq!(
            message(json!({"imageRef": "x"}), 1),
            "Invalid input for field/attribute imageRef. Value: \"x\". \"x\" is not a 'uuid'"
        );
        assert_eq!(
            message(json!({"imageRef": IMAGE, "OS-DCF:diskConfig": "x"}), 1),
            "Invalid input for field/attribute OS-DCF:diskConfig. Value: \"x\". \"x\" is not one of ['AUTO', 'MANUAL']"
        );
        assert_eq!(
            message(json!({"imageRef": IMAGE, "preserve_ephemeral": "maybe"}), 1),
            "Invalid input for field/attribute preserve_ephemeral."
        );
        assert_eq!(
            message(json!({"imageRef": IMAGE, "hostname": "a b"}), 90),
            "Invalid input for field/attribute hostname. Value: \"a b\". \"a b\" does not match '^[a-zA-Z0-9-._]*$'"
        );
        assert_eq!(
            message(
                json!({"imageRef": IMAGE, "trusted_image_certificates": ["a", "a"]}),
                63
            ),
            "Invalid input for field/attribute trusted_image_certificates. Value: [\"a\",\"a\"]. [\"a\",\"a\"] has non-unique elements"
        );
        let body: RebuildBody = parse(
            &json!({"rebuild": {"imageRef": IMAGE, "key_name": null, "user_data": null, "preserve_ephemeral": "yes"}}),
            Microversion::v2(57),
        )
        .expect("valid");
        assert!(matches!(body.rebuild.key_name, Some(None)));
        assert!(matches!(body.rebuild.user_data, Some(None)));
        assert!(body.rebuild.preserves_ephemeral());
    }

    #[test]
    fn migrate_takes_null_or_a_valid_host() {
        let parsed = |value: Value| parse::<MigrateBody>(&value, Microversion::v2(56));
        assert!(parsed(json!({"migrate": null})).is_ok());
        assert!(parsed(json!({"migrate": {"host": null}})).is_ok());
        let named = parsed(json!({"migrate": {"host": "host-1.example"}})).expect("a host");
        assert_eq!(
            named.migrate.and_then(|m| m.host).as_deref(),
            Some("host-1.example")
        );
        let refused = |value: Value| parsed(value).err().map(|e| e.message().to_string());
        assert_eq!(
            refused(json!({"migrate": {"hots": "a"}})),
            Some("Additional properties are not allowed ('hots' was unexpected)".into())
        );
        assert!(refused(json!({"migrate": {"host": ""}})).is_some_and(|m| m.contains("too short")));
        assert!(
            refused(json!({"migrate": {"host": "a b"}}))
                .is_some_and(|m| m.contains("does not match"))
        );
        assert!(refused(json!({"migrate": {"host": 7}})).is_some());
    }

    #[test]
    fn rescue_takes_null_or_known_fields() {
        let parsed = |value: Value| parse::<RescueBody>(&value, Microversion::v2(1));
        assert!(parsed(json!({"rescue": null})).is_ok());
        assert!(parsed(json!({"rescue": {"adminPass": "p"}})).is_ok());
        assert_eq!(
            parsed(json!({"rescue": {"bogus": 1}}))
                .err()
                .map(|e| e.message().to_string()),
            Some("Additional properties are not allowed ('bogus' was unexpected)".into())
        );
        assert!(parsed(json!({"rescue": {"rescue_image_ref": "nope"}})).is_err());
    }
}
