//! The bodies of Nova's security group proxy (microversions 2.1 to 2.35):
//! `os-security-groups` create and update (Nova's
//! `security_groups.create`/`update`: `name` and `description` required,
//! each a string of at most 255 characters) and `os-security-group-rules`
//! create (`security_group_rules.create_rules`: `parent_group_id` a uuid,
//! `group_id` a uuid or null; `from_port`, `to_port`, `ip_protocol` and
//! `cidr` unchecked by the schema, judged by the handler as Nova's
//! `security_group_api` does). Nova's schemas allow other properties, and so
//! do these.

use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::{RequestBody, value_detail};
use crate::fault::{ApiError, ApiResult};
use crate::microversion::Microversion;
use crate::validation::{self, TextFormat};

/// `{"security_group": {"name", "description"}}` (create and update).
#[derive(Debug, Deserialize, ToSchema)]
pub struct SecurityGroupBody {
    /// The group's name and description.
    pub security_group: SecurityGroupFields,
}

/// The `security_group` of a create or an update.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SecurityGroupFields {
    /// Name (0 to 255 characters, any of them; Neutron allows duplicates).
    pub name: String,
    /// Description (0 to 255 characters).
    pub description: String,
}

impl RequestBody for SecurityGroupBody {
    fn check_fields(_value: &Value, _version: Microversion) -> ApiResult<()> {
        Ok(())
    }

    fn validate(&self, _version: Microversion) -> ApiResult<()> {
        let group = &self.security_group;
        validation::check_text("name", &group.name, TextFormat::Any)?;
        validation::check_text("description", &group.description, TextFormat::Any)
    }
}

/// `{"security_group_rule": {…}}` (create).
#[derive(Debug, Deserialize, ToSchema)]
pub struct SecurityGroupRuleBody {
    /// The rule.
    pub security_group_rule: SecurityGroupRuleFields,
}

/// The `security_group_rule` of a create, as sent: the ports, protocol and
/// CIDR keep their JSON values, which Nova judges after the schema.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SecurityGroupRuleFields {
    /// The group the rule joins (a uuid).
    pub parent_group_id: String,
    /// The group whose members the rule admits (a uuid), instead of a CIDR.
    #[serde(default)]
    pub group_id: Option<String>,
    /// `tcp`, `udp` or `icmp` (any case).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub ip_protocol: Value,
    /// First port, or the ICMP type (-1: any).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub from_port: Value,
    /// Last port, or the ICMP code (-1: any).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub to_port: Value,
    /// The remote CIDR (default `0.0.0.0/0`).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub cidr: Value,
}

/// Refuses `value` of body field `field` unless it is a uuid, in the words
/// of Nova's schema format check.
fn check_uuid(field: &str, value: &str) -> ApiResult<()> {
    if uuid::Uuid::parse_str(value).is_ok() {
        return Ok(());
    }
    let shown = Value::String(value.to_string());
    Err(ApiError::bad_request(format!(
        "Invalid input for field/attribute {field}. {}",
        value_detail(&shown, format!("{shown} is not a 'uuid'"))
    )))
}

impl RequestBody for SecurityGroupRuleBody {
    fn check_fields(_value: &Value, _version: Microversion) -> ApiResult<()> {
        Ok(())
    }

    fn validate(&self, _version: Microversion) -> ApiResult<()> {
        let rule = &self.security_group_rule;
        check_uuid("parent_group_id", &rule.parent_group_id)?;
        if let Some(group) = &rule.group_id {
            check_uuid("group_id", group)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::bodies::parse;
    use crate::microversion::MIN_MICROVERSION;

    fn refusal<T: RequestBody + std::fmt::Debug>(body: Value) -> String {
        parse::<T>(&body, MIN_MICROVERSION)
            .expect_err("refused")
            .message()
            .to_string()
    }

    #[test]
    fn a_group_needs_a_name_and_a_description_of_at_most_255_characters() {
        let parsed: SecurityGroupBody = parse(
            &json!({"security_group": {"name": " spaced ", "description": "", "extra": 1}}),
            MIN_MICROVERSION,
        )
        .expect("parsed");
        assert_eq!(parsed.security_group.name, " spaced ");
        assert_eq!(
            refusal::<SecurityGroupBody>(json!({"security_group": {"name": "n"}})),
            "'description' is a required property"
        );
        assert!(
            refusal::<SecurityGroupBody>(
                json!({"security_group": {"name": "x".repeat(256), "description": ""}})
            )
            .ends_with("is too long")
        );
        assert_eq!(
            refusal::<SecurityGroupBody>(json!({"security_group": {"name": 5, "description": ""}})),
            "Invalid input for field/attribute name. Value: 5. 5 is not of type 'string'"
        );
    }

    #[test]
    fn a_rule_needs_a_parent_uuid_and_keeps_its_other_values_as_sent() {
        let parent = "8d3c4e1a-0a52-4a63-9a7b-6c1b9d0e2f11";
        let parsed: SecurityGroupRuleBody = parse(
            &json!({"security_group_rule": {"parent_group_id": parent, "from_port": "22", "ip_protocol": "TCP"}}),
            MIN_MICROVERSION,
        )
        .expect("parsed");
        let rule = parsed.security_group_rule;
        assert_eq!(rule.from_port, json!("22"));
        assert_eq!(rule.to_port, Value::Null);
        assert_eq!(
            refusal::<SecurityGroupRuleBody>(
                json!({"security_group_rule": {"parent_group_id": "x1"}})
            ),
            "Invalid input for field/attribute parent_group_id. Value: \"x1\". \"x1\" is not a 'uuid'"
        );
        assert!(
            refusal::<SecurityGroupRuleBody>(
                json!({"security_group_rule": {"parent_group_id": parent, "group_id": "nope"}})
            )
            .contains("group_id")
        );
        assert_eq!(
            refusal::<SecurityGroupRuleBody>(json!({"security_group_rule": {}})),
            "'parent_group_id' is a required property"
        );
    }
}
