//! `POST /servers`: the server create body (Nova's `servers.base_create`
//! and its microversions). The image reference, metadata, personality,
//! user data and access IPs are [`fields`](super::fields) types, for the
//! rebuild body to share.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::Deserializer;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::fields::{
    AccessIpV4, AccessIpV6, Flag, ImageRef, Metadata, Personality, Positive, UserData,
};
use super::{Gate, RequestBody, allow_only, invalid, present, required, value_detail};
use crate::fault::{ApiError, ApiResult};
use crate::microversion::Microversion;
use crate::validation::{self, TextFormat};

/// The microversion from which `networks` is required and may be `"none"`
/// or `"auto"`.
const NETWORKS_REQUIRED_SINCE: u16 = 37;

/// The fields of `server` that come or go with a microversion.
const SERVER_GATES: &[Gate] = &[
    Gate::since("description", 19),
    Gate::since("tags", 52),
    Gate::removed_in("personality", 57),
    Gate::since("trusted_image_certificates", 63),
    Gate::since("host", 74),
    Gate::since("hypervisor_hostname", 74),
    Gate::since("hostname", 90),
];

/// `{"server": {…}, "os:scheduler_hints": {…}}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerCreateBody {
    /// The server to create.
    pub server: ServerCreate,
    /// Scheduler hints.
    #[serde(rename = "os:scheduler_hints", default)]
    #[schema(value_type = Option<Object>)]
    pub hints: Option<SchedulerHints>,
    /// Scheduler hints under their legacy name.
    #[serde(rename = "OS-SCH-HNT:scheduler_hints", default)]
    #[schema(value_type = Option<Object>)]
    pub legacy_hints: Option<SchedulerHints>,
}

impl ServerCreateBody {
    /// The scheduler hints (`os:scheduler_hints`, else the legacy key).
    pub fn scheduler_hints(&self) -> BTreeMap<String, Vec<String>> {
        self.hints
            .as_ref()
            .or(self.legacy_hints.as_ref())
            .map(SchedulerHints::lists)
            .unwrap_or_default()
    }
}

impl RequestBody for ServerCreateBody {
    fn check_fields(value: &Value, version: Microversion) -> ApiResult<()> {
        allow_only::<Self>(value, &[], version)?;
        allow_only::<ServerCreate>(&value["server"], SERVER_GATES, version)
    }

    fn validate(&self, version: Microversion) -> ApiResult<()> {
        self.server.validate(version)
    }
}

/// The `server` of a create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerCreate {
    /// Display name (Nova's name rules).
    pub name: String,
    /// The flavor: an id or a link.
    #[serde(rename = "flavorRef")]
    pub flavor_ref: String,
    /// The image to boot: an id or a link (or a block device mapping).
    #[serde(rename = "imageRef", default)]
    #[schema(value_type = Option<String>)]
    pub image_ref: Option<ImageRef>,
    /// The administrator password to set.
    #[serde(rename = "adminPass", default)]
    pub admin_pass: Option<String>,
    /// Metadata: string keys to string values.
    #[serde(default)]
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub metadata: Option<Metadata>,
    /// Networks: a list, or from 2.37 `"none"` / `"auto"` (required then).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Value>)]
    pub networks: Option<Networks>,
    /// `AUTO` or `MANUAL`.
    #[serde(rename = "OS-DCF:diskConfig", default)]
    pub disk_config: Option<String>,
    /// The IPv4 access address (`null` or `""`: none).
    #[serde(rename = "accessIPv4", default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub access_ip_v4: Option<AccessIpV4>,
    /// The IPv6 access address (`null` or `""`: none).
    #[serde(rename = "accessIPv6", default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub access_ip_v6: Option<AccessIpV6>,
    /// Files to inject (before 2.57).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub personality: Option<Personality>,
    /// The zone, or `zone:host` (admin).
    #[serde(default)]
    pub availability_zone: Option<String>,
    /// Legacy block device mappings (accepted, unused).
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub block_device_mapping: Option<Vec<Map<String, Value>>>,
    /// Block device mappings: an image mapping with boot index 0 names the
    /// image; volumes are not supported.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub block_device_mapping_v2: Option<BlockDeviceMappings>,
    /// Whether to attach a config drive (Nova's boolean).
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    pub config_drive: Option<Flag>,
    /// The key pair to inject.
    #[serde(default)]
    pub key_name: Option<String>,
    /// The fewest servers to create.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 1)]
    pub min_count: Option<Positive>,
    /// The most servers to create.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 1)]
    pub max_count: Option<Positive>,
    /// Answer the reservation id instead of the server.
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    pub return_reservation_id: Option<Flag>,
    /// Security groups of the new ports, by name (`[{"name": …}]`).
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub security_groups: Option<Vec<Map<String, Value>>>,
    /// Base64 user data, at most 65,535 characters.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub user_data: Option<UserData>,
    /// Description (from 2.19).
    #[serde(default)]
    pub description: Option<String>,
    /// Tags (from 2.52), at most 50, each 1 to 60 characters without `/` or `,`.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Trusted certificate ids (from 2.63; accepted, unused).
    #[serde(default)]
    pub trusted_image_certificates: Option<Vec<String>>,
    /// The host to build on (from 2.74; accepted, unused).
    #[serde(default)]
    pub host: Option<String>,
    /// The node to build on (from 2.74; accepted, unused).
    #[serde(default)]
    pub hypervisor_hostname: Option<String>,
    /// The guest host name (from 2.90; accepted, unused).
    #[serde(default)]
    pub hostname: Option<String>,
}

impl ServerCreate {
    /// What types cannot say: Nova's name and description rules, `networks`
    /// at `version`, `min_count <= max_count`, user data.
    fn validate(&self, version: Microversion) -> ApiResult<()> {
        validation::check_text("name", &self.name, TextFormat::Name)?;
        if let Some(description) = &self.description {
            validation::check_text("description", description, TextFormat::Description)?;
        }
        match &self.networks {
            None if version.at_least(NETWORKS_REQUIRED_SINCE) => return Err(required("networks")),
            Some(Networks::Keyword(keyword)) => keyword.check(version)?,
            Some(Networks::List(requests)) => {
                for request in requests {
                    request.check()?;
                }
            }
            None => {}
        }
        if self.min_count() > self.max_count() {
            return Err(ApiError::bad_request("min_count must be <= max_count"));
        }
        if let Some(user_data) = &self.user_data {
            user_data.check()?;
        }
        Ok(())
    }

    /// The fewest servers to create (1 unless given).
    pub fn min_count(&self) -> i64 {
        self.min_count.map_or(1, |count| count.0)
    }

    /// The most servers to create (`min_count` unless given).
    pub fn max_count(&self) -> i64 {
        self.max_count.map_or(self.min_count(), |count| count.0)
    }

    /// The id of the image to boot: `imageRef`, or the image of a block
    /// device mapping with boot index 0. A 400 for volumes (this cloud has
    /// none) and when no image is named.
    pub fn boot_image_id(&self) -> ApiResult<String> {
        let mut image_id = self
            .image_ref
            .as_ref()
            .map(ImageRef::id)
            .unwrap_or_default();
        for mapping in self.block_device_mapping_v2.iter().flat_map(|list| &list.0) {
            if mapping.uses_volumes() {
                return Err(ApiError::bad_request(
                    "Block device mapping is invalid: volumes are not supported by this cloud.",
                ));
            }
            if let Some(image) = mapping.boot_image() {
                image_id = image.to_string();
            }
        }
        if image_id.is_empty() {
            return Err(ApiError::bad_request(
                "Block Device Mapping is Invalid: Boot sequence for the instance and image/block device mapping combination is not valid.",
            ));
        }
        Ok(image_id)
    }

    /// The zone asked for (`None` for absent or `""`).
    pub fn availability_zone(&self) -> Option<&str> {
        self.availability_zone
            .as_deref()
            .filter(|zone| !zone.is_empty())
    }

    /// Whether to answer the reservation id instead of the server.
    pub fn returns_reservation_id(&self) -> bool {
        self.return_reservation_id.is_some_and(|flag| flag.0)
    }
}

/// The fields of an update's `server` that come with a microversion.
const UPDATE_GATES: &[Gate] = &[
    Gate::since("description", 19),
    Gate::since("hostname", 90),
    Gate::since("pinned_availability_zone", 104),
];

/// `PUT /servers/{id}`: `{"server": {…}}`, what to change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerUpdateBody {
    /// What to change.
    pub server: ServerUpdate,
}

impl RequestBody for ServerUpdateBody {
    fn check_fields(value: &Value, version: Microversion) -> ApiResult<()> {
        allow_only::<Self>(value, &[], version)?;
        allow_only::<ServerUpdate>(&value["server"], UPDATE_GATES, version)
    }

    fn validate(&self, _version: Microversion) -> ApiResult<()> {
        let server = &self.server;
        if let Some(name) = &server.name {
            validation::check_text("name", name, TextFormat::Name)?;
        }
        if let Some(Some(description)) = &server.description {
            validation::check_text("description", description, TextFormat::Description)?;
        }
        Ok(())
    }
}

/// The `server` of an update: each field absent is left as it is.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerUpdate {
    /// The new display name.
    #[serde(default, deserialize_with = "present")]
    pub name: Option<String>,
    /// The new description (from 2.19; `null` clears it).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// The new IPv4 access address (`null` or `""` clears it).
    #[serde(rename = "accessIPv4", default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub access_ip_v4: Option<AccessIpV4>,
    /// The new IPv6 access address (`null` or `""` clears it).
    #[serde(rename = "accessIPv6", default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub access_ip_v6: Option<AccessIpV6>,
    /// `AUTO` or `MANUAL` (accepted, unused).
    #[serde(rename = "OS-DCF:diskConfig", default)]
    pub disk_config: Option<String>,
    /// The guest host name (from 2.90; accepted, unused).
    #[serde(default)]
    pub hostname: Option<String>,
    /// Pin the server to its current availability zone, or unpin it with
    /// `null` (from 2.104).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub pinned_availability_zone: Option<Option<String>>,
}

/// `networks`: a list of requests, or a keyword (`"none"`, `"auto"`).
#[derive(Clone, Debug)]
pub enum Networks {
    /// One request per port the server gets, in order.
    List(Vec<NetworkRequest>),
    /// A string: `"none"` or `"auto"` from 2.37, refused otherwise.
    Keyword(NetworkKeyword),
}

/// The string form of `networks`.
#[derive(Clone, Debug)]
pub struct NetworkKeyword(pub String);

impl NetworkKeyword {
    /// `"none"` and `"auto"` from 2.37; any other string never.
    fn check(&self, version: Microversion) -> ApiResult<()> {
        let keyword = self.0.as_str();
        if keyword == "none" || keyword == "auto" {
            if version.at_least(NETWORKS_REQUIRED_SINCE) {
                return Ok(());
            }
            return Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute networks. Value: {keyword}."
            )));
        }
        Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute networks. Value: {}.",
            Value::String(self.0.clone())
        )))
    }
}

/// One entry of `networks`: a port of the user's (`port`), or a new port
/// on network `uuid`, optionally at `fixed_ip`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkRequest {
    /// The network of a new port.
    #[serde(default)]
    pub uuid: Option<String>,
    /// The user's port to take (its network is the port's).
    #[serde(default)]
    pub port: Option<String>,
    /// The address of the new port.
    #[serde(default)]
    pub fixed_ip: Option<String>,
    /// A device tag (from 2.32; kept by Nova for the metadata service).
    #[serde(default)]
    pub tag: Option<String>,
}

impl NetworkRequest {
    /// Nova's checks of one entry: a UUID-like network or port, an IP
    /// address.
    fn check(&self) -> ApiResult<()> {
        if let Some(port) = &self.port {
            if uuid::Uuid::parse_str(port).is_err() {
                return Err(ApiError::bad_request(format!(
                    "Invalid input for field/attribute port. Value: {port}. '{port}' is not a 'uuid'"
                )));
            }
            return Ok(());
        }
        let Some(network) = &self.uuid else {
            return Err(ApiError::bad_request("Bad network format: missing 'uuid'"));
        };
        if uuid::Uuid::parse_str(network).is_err() {
            return Err(ApiError::bad_request(format!(
                "Bad networks format: network uuid is not in proper format ({network})"
            )));
        }
        if let Some(address) = &self.fixed_ip
            && address.parse::<std::net::IpAddr>().is_err()
        {
            return Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute fixed_ip. Value: {address}. '{address}' is not a 'ip-address'"
            )));
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Networks {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    Value::Object(_) => {
                        serde_json::from_value::<NetworkRequest>(item).map_err(invalid)
                    }
                    other => Err(invalid(format!("Value: {other}."))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Self::List),
            Value::String(text) => Ok(Self::Keyword(NetworkKeyword(text))),
            other => Err(invalid(format!("Value: {other}."))),
        }
    }
}

/// `block_device_mapping_v2`: a list of mappings.
#[derive(Clone, Debug, Default)]
pub struct BlockDeviceMappings(pub Vec<BlockDeviceMapping>);

impl<'de> Deserialize<'de> for BlockDeviceMappings {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor;

        impl<'de> serde::de::Visitor<'de> for ListVisitor {
            type Value = BlockDeviceMappings;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a list of block device mappings")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut items: A,
            ) -> Result<Self::Value, A::Error> {
                let mut mappings = Vec::new();
                while let Some(mapping) = items.next_element()? {
                    mappings.push(mapping);
                }
                Ok(BlockDeviceMappings(mappings))
            }

            // Anything but a list: "Invalid input for field/attribute
            // block_device_mapping_v2." (no value, as before).
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                _: A,
            ) -> Result<Self::Value, A::Error> {
                Err(invalid(""))
            }

            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Err(invalid(""))
            }

            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Err(invalid(""))
            }

            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Err(invalid(""))
            }

            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Err(invalid(""))
            }

            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Err(invalid(""))
            }

            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Err(invalid(""))
            }
        }

        deserializer.deserialize_any(ListVisitor)
    }
}

/// One block device mapping: the fields this cloud reads (others are
/// accepted and ignored).
#[derive(Clone, Debug, Deserialize)]
pub struct BlockDeviceMapping {
    /// `image`, `volume`, `snapshot` or `blank`.
    #[serde(default)]
    pub source_type: Option<String>,
    /// `local` (the default) or `volume`.
    #[serde(default)]
    pub destination_type: Option<String>,
    /// The boot order; 0 is the boot disk.
    #[serde(default)]
    pub boot_index: Option<BootIndex>,
    /// The source's id.
    #[serde(default)]
    pub uuid: Option<String>,
}

impl BlockDeviceMapping {
    /// Whether the mapping needs a volume.
    fn uses_volumes(&self) -> bool {
        let source = self.source_type.as_deref().unwrap_or_default();
        let destination = self.destination_type.as_deref().unwrap_or("local");
        destination == "volume" || source == "volume" || source == "snapshot"
    }

    /// The image of a boot disk made from an image (boot index 0).
    fn boot_image(&self) -> Option<&str> {
        let boots = self.boot_index.is_some_and(|index| index.0 == Some(0));
        (self.source_type.as_deref() == Some("image") && boots)
            .then_some(self.uuid.as_deref())
            .flatten()
    }
}

/// `boot_index`: an integer, a numeric string, or `null`.
#[derive(Clone, Copy, Debug)]
pub struct BootIndex(pub Option<i64>);

impl<'de> Deserialize<'de> for BootIndex {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        match &value {
            Value::Null => Ok(Self(None)),
            Value::Number(number) if number.is_i64() => Ok(Self(number.as_i64())),
            Value::String(text) if text.parse::<i64>().is_ok() => Ok(Self(text.parse().ok())),
            _ => Err(invalid(value_detail(
                &value,
                format!("{value} is not of type 'integer', 'string', 'null'"),
            ))),
        }
    }
}

/// Scheduler hints: any keys; each value a string, a list, or any JSON.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(transparent)]
pub struct SchedulerHints(pub Map<String, Value>);

impl SchedulerHints {
    /// Each hint as a list of strings (a string is a one-item list; other
    /// values as JSON text).
    pub fn lists(&self) -> BTreeMap<String, Vec<String>> {
        let text = |value: &Value| {
            value
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string())
        };
        self.0
            .iter()
            .map(|(key, value)| {
                let values = match value {
                    Value::Array(items) => items.iter().map(text).collect(),
                    other => vec![text(other)],
                };
                (key.clone(), values)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bodies::parse;
    use serde_json::json;

    fn create(server: Value, minor: u16) -> ApiResult<ServerCreateBody> {
        parse(&json!({ "server": server }), Microversion::v2(minor))
    }

    fn message(server: Value, minor: u16) -> String {
        create(server, minor)
            .err()
            .map(|error| error.message().to_string())
            .unwrap_or_default()
    }

    #[test]
    fn fields_follow_the_microversion() {
        let with = |field: &str, value: Value| {
            let mut server = json!({"name": "s", "flavorRef": "1", "networks": []});
            server[field] = value;
            server
        };
        for (field, value, since) in [
            ("description", json!("d"), 19),
            ("tags", json!(["a"]), 52),
            ("trusted_image_certificates", json!(["c"]), 63),
            ("host", json!("h"), 74),
            ("hypervisor_hostname", json!("n"), 74),
            ("hostname", json!("g"), 90),
        ] {
            assert_eq!(
                message(with(field, value.clone()), since - 1),
                format!("Additional properties are not allowed ('{field}' was unexpected)")
            );
            assert_eq!(message(with(field, value), since), "", "{field}");
        }
        let files = json!([{"path": "/a", "contents": "YQ=="}]);
        assert_eq!(message(with("personality", files.clone()), 56), "");
        assert_eq!(
            message(with("personality", files), 57),
            "Additional properties are not allowed ('personality' was unexpected)"
        );
    }

    #[test]
    fn networks_are_required_from_2_37() {
        let server = json!({"name": "s", "flavorRef": "1"});
        assert_eq!(message(server.clone(), 36), "");
        assert_eq!(message(server, 37), "'networks' is a required property");
        assert_eq!(
            message(
                json!({"name": "s", "flavorRef": "1", "networks": "auto"}),
                36
            ),
            "Invalid input for field/attribute networks. Value: auto."
        );
        assert_eq!(
            message(json!({"name": "s", "flavorRef": "1", "networks": "x"}), 37),
            "Invalid input for field/attribute networks. Value: \"x\"."
        );
        assert_eq!(
            message(json!({"name": "s", "flavorRef": "1", "networks": 5}), 37),
            "Invalid input for field/attribute networks. Value: 5."
        );
    }

    #[test]
    fn counts_metadata_and_mappings_keep_their_messages() {
        assert_eq!(
            message(json!({"name": "s", "flavorRef": "1", "min_count": 0}), 1),
            "Invalid input for field/attribute min_count. Value: 0. It must be an integer between 1 and 2147483647."
        );
        assert_eq!(
            message(
                json!({"name": "s", "flavorRef": "1", "min_count": 3, "max_count": "2"}),
                1
            ),
            "min_count must be <= max_count"
        );
        assert_eq!(
            message(
                json!({"name": "s", "flavorRef": "1", "metadata": {"k": 1}}),
                1
            ),
            "Invalid input for field/attribute metadata. Value: 1."
        );
        assert_eq!(
            message(
                json!({"name": "s", "flavorRef": "1", "block_device_mapping_v2": {}}),
                1
            ),
            "Invalid input for field/attribute block_device_mapping_v2."
        );
        assert_eq!(
            message(json!({"name": "s", "flavorRef": 1}), 1),
            "Invalid input for field/attribute flavorRef. Value: 1. 1 is not of type 'string'"
        );
        assert_eq!(
            message(json!({"name": "s"}), 1),
            "'flavorRef' is a required property"
        );
    }

    #[test]
    fn the_boot_image_comes_from_the_ref_or_a_boot_mapping() {
        let body = create(
            json!({"name": "s", "flavorRef": "1", "imageRef": "http://x/images/abc/"}),
            1,
        )
        .expect("valid");
        assert_eq!(body.server.boot_image_id().ok().as_deref(), Some("abc"));
        let body = create(
            json!({"name": "s", "flavorRef": "1", "block_device_mapping_v2": [
                {"source_type": "image", "boot_index": "0", "uuid": "img", "delete_on_termination": true}
            ]}),
            1,
        )
        .expect("valid");
        assert_eq!(body.server.boot_image_id().ok().as_deref(), Some("img"));
        let body = create(
            json!({"name": "s", "flavorRef": "1", "block_device_mapping_v2": [
                {"source_type": "volume", "uuid": "v"}
            ]}),
            1,
        )
        .expect("valid");
        assert!(body.server.boot_image_id().is_err());
    }

    #[test]
    fn hints_become_lists() {
        let body: ServerCreateBody = parse(
            &json!({"server": {"name": "s", "flavorRef": "1"},
                    "OS-SCH-HNT:scheduler_hints": {"group": "g", "same_host": ["a", "b"], "n": 1}}),
            Microversion::v2(1),
        )
        .expect("valid");
        let hints = body.scheduler_hints();
        assert_eq!(hints["group"], vec!["g"]);
        assert_eq!(hints["same_host"], vec!["a", "b"]);
        assert_eq!(hints["n"], vec!["1"]);
    }
}
