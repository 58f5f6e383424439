//! The metadata documents of an instance, as Nova's config drive and
//! metadata service serve them (Nova's `nova/api/metadata/base.py`): ONE
//! generator, [`InstanceMetadata`], for both. The config drive is
//! [`InstanceMetadata::config_drive_files`]; the metadata service answers a
//! path with [`InstanceMetadata::lookup`].
//!
//! The OpenStack tree, under `openstack/<version>/` for each of
//! [`OPENSTACK_VERSIONS`] and `latest` (the newest):
//! - `meta_data.json`: `uuid`, `meta` (the server's metadata, when it has
//!   any), `public_keys` (`{name: key}`) and `keys` (`[{name, type, data}]`)
//!   when the server has a key pair, `hostname`, `name`, `launch_index`,
//!   `availability_zone`; from 2013-04-04 `random_seed` (512 random bytes,
//!   base64), from 2015-10-15 `project_id`, from 2016-06-30 `devices` (none
//!   tagged here: `[]`), from 2020-10-14 `dedicated_cpus` (`[]`: no CPU
//!   pinning);
//! - `user_data`: the user data as given at create (decoded), when there is;
//! - `password` (from 2013-04-04; the service's, never on the config drive);
//! - `vendor_data.json` (from 2013-10-17) and `vendor_data2.json` (from
//!   2016-10-06): `{}` (no vendor data providers);
//! - `network_data.json` (from 2015-10-15): see [`network_data`].
//!
//! The EC2 tree, under `<version>/` for each of [`EC2_VERSIONS`] and
//! `latest`: `meta-data/` (`ami-id`, `ami-launch-index`,
//! `ami-manifest-path`, `instance-id`, `hostname`, `local-ipv4`,
//! `reservation-id`, `security-groups`; from 2007-01-19 `local-hostname`,
//! `public-hostname`, `public-ipv4`; from 2007-08-29 `instance-type`; from
//! 2007-12-15 `block-device-mapping/`; from 2008-02-01
//! `placement/availability-zone`; from 2008-09-01 `instance-action`;
//! `public-keys/0/openssh-key` with a key pair) and `user-data`. EC2 ids are
//! derived from the uuids: `i-` and `ami-` followed by the first 8 hex
//! digits (novum keeps no EC2 id mapping table). The config drive holds
//! `ec2/<version>/meta-data.json` (the same tree as JSON, with Nova's
//! `_name` entries) and `ec2/<version>/user-data` for 2009-04-04 and
//! `latest` (Nova's default `config_drive_skip_versions` leave out the older
//! ones).

pub mod network_data;

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use novum_wire::{ConfigDriveFile, InterfaceSpec};
use rand::RngCore as _;
use serde_json::{Map, Value, json};

use crate::conductor::model::Instance;

pub use network_data::{NetworkData, NetworkDataError, network_data};

/// The OpenStack metadata versions Nova serves, oldest first.
pub const OPENSTACK_VERSIONS: [&str; 9] = [
    FOLSOM,
    GRIZZLY,
    HAVANA,
    LIBERTY,
    NEWTON_ONE,
    NEWTON_TWO,
    "2017-02-22",
    "2018-08-27",
    VICTORIA,
];

/// The EC2 metadata versions Nova serves, oldest first.
pub const EC2_VERSIONS: [&str; 9] = [
    "1.0",
    "2007-01-19",
    "2007-03-01",
    "2007-08-29",
    "2007-10-10",
    "2007-12-15",
    "2008-02-01",
    "2008-09-01",
    "2009-04-04",
];

/// The version name that means the newest.
pub const LATEST: &str = "latest";

/// The EC2 versions written on a config drive besides `latest` (Nova's
/// default `[api] config_drive_skip_versions` skip every older one).
const CONFIG_DRIVE_EC2_VERSIONS: [&str; 1] = ["2009-04-04"];

const FOLSOM: &str = "2012-08-10";
const GRIZZLY: &str = "2013-04-04";
const HAVANA: &str = "2013-10-17";
const LIBERTY: &str = "2015-10-15";
const NEWTON_ONE: &str = "2016-06-30";
const NEWTON_TWO: &str = "2016-10-06";
const VICTORIA: &str = "2020-10-14";

/// `meta_data.json`.
pub const META_DATA_JSON: &str = "meta_data.json";
/// `user_data`.
pub const USER_DATA: &str = "user_data";
/// `password`.
pub const PASSWORD: &str = "password";
/// `vendor_data.json`.
pub const VENDOR_DATA_JSON: &str = "vendor_data.json";
/// `network_data.json`.
pub const NETWORK_DATA_JSON: &str = "network_data.json";
/// `vendor_data2.json`.
pub const VENDOR_DATA2_JSON: &str = "vendor_data2.json";

/// Nova's `_name` entry: how a directory of the EC2 tree shows in its
/// parent's listing (`0=mykey` for a public key).
const EC2_NAME: &str = "_name";

/// What a metadata path holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A directory: its entries, one a line (`text/plain`).
    Listing(String),
    /// A JSON document.
    Json(Vec<u8>),
    /// Any other document (`text/plain`; user data as given).
    Text(Vec<u8>),
    /// The instance's password (the metadata service keeps it).
    Password,
}

/// The key pair an instance was created with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPair {
    /// Its name.
    pub name: String,
    /// Its public key (OpenSSH line or X.509 PEM).
    pub public_key: String,
}

impl KeyPair {
    /// Nova's key type: `x509` for a certificate, else `ssh`.
    pub fn key_type(&self) -> &'static str {
        if self
            .public_key
            .trim_start()
            .starts_with("-----BEGIN CERTIFICATE")
        {
            "x509"
        } else {
            "ssh"
        }
    }
}

/// Everything the metadata documents of one instance say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceMetadata {
    /// The instance uuid.
    pub uuid: String,
    /// Its display name.
    pub name: String,
    /// Its hostname.
    pub hostname: String,
    /// Its project.
    pub project_id: String,
    /// The zone it runs in (`None` before it is placed).
    pub availability_zone: Option<String>,
    /// Its index in a multi-create.
    pub launch_index: i64,
    /// The reservation (`r-…`) of its create.
    pub reservation_id: String,
    /// Its image id.
    pub image_ref: String,
    /// Its flavor's name.
    pub flavor_name: String,
    /// Its key pair.
    pub key_pair: Option<KeyPair>,
    /// Its metadata.
    pub meta: BTreeMap<String, String>,
    /// Its user data, decoded.
    pub user_data: Option<Vec<u8>>,
    /// The names of its security groups.
    pub security_groups: Vec<String>,
    /// Its network configuration.
    pub network_data: NetworkData,
}

/// What keeps an instance's metadata from being rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// Its ports cannot be rendered.
    #[error(transparent)]
    Network(#[from] NetworkDataError),
    /// Its user data is not base64.
    #[error("instance {0}: the user data is not base64")]
    UserData(String),
}

impl InstanceMetadata {
    /// The metadata of `instance` with `interfaces` (its ports, in the
    /// guest's order) and the names of its `security_groups`.
    pub fn new(
        instance: &Instance,
        interfaces: &[InterfaceSpec],
        security_groups: Vec<String>,
    ) -> Result<Self, MetadataError> {
        let user_data = instance
            .user_data
            .as_deref()
            .map(|text| {
                BASE64
                    .decode(text.trim())
                    .map_err(|_| MetadataError::UserData(instance.uuid.clone()))
            })
            .transpose()?;
        let key_pair = match (&instance.key_name, &instance.key_data) {
            (Some(name), Some(public_key)) => Some(KeyPair {
                name: name.clone(),
                public_key: public_key.clone(),
            }),
            _ => None,
        };
        let flavor_name = instance
            .flavor()
            .map(|flavor| flavor.name)
            .unwrap_or_default();
        Ok(InstanceMetadata {
            uuid: instance.uuid.clone(),
            name: instance.display_name.clone(),
            hostname: instance.hostname.clone(),
            project_id: instance.project_id.clone(),
            availability_zone: instance.availability_zone.clone(),
            launch_index: instance.launch_index,
            reservation_id: instance.reservation_id.clone(),
            image_ref: instance.image_ref.clone(),
            flavor_name,
            key_pair,
            meta: instance.metadata_map(),
            user_data,
            security_groups,
            network_data: network_data(interfaces)?,
        })
    }

    /// `meta_data.json` of OpenStack `version` (a dated version or `latest`).
    pub fn meta_data(&self, version: &str) -> Value {
        let version = openstack_version(version).unwrap_or(VICTORIA);
        let mut document = Map::new();
        document.insert("uuid".into(), json!(self.uuid));
        if !self.meta.is_empty() {
            document.insert("meta".into(), json!(self.meta));
        }
        if let Some(key) = &self.key_pair {
            document.insert(
                "public_keys".into(),
                json!({ key.name.clone(): key.public_key }),
            );
            document.insert(
                "keys".into(),
                json!([{"name": key.name, "type": key.key_type(), "data": key.public_key}]),
            );
        }
        document.insert("hostname".into(), json!(self.hostname));
        document.insert("name".into(), json!(self.name));
        document.insert("launch_index".into(), json!(self.launch_index));
        document.insert("availability_zone".into(), json!(self.availability_zone));
        if version >= GRIZZLY {
            let mut seed = [0_u8; 512];
            rand::rng().fill_bytes(&mut seed);
            document.insert("random_seed".into(), json!(BASE64.encode(seed)));
        }
        if version >= LIBERTY {
            document.insert("project_id".into(), json!(self.project_id));
        }
        if version >= NEWTON_ONE {
            document.insert("devices".into(), json!([]));
        }
        if version >= VICTORIA {
            document.insert("dedicated_cpus".into(), json!([]));
        }
        Value::Object(document)
    }

    /// The files of OpenStack `version`'s directory, in Nova's order.
    fn openstack_files(&self, version: &str) -> Vec<&'static str> {
        let mut files = vec![META_DATA_JSON];
        if self.user_data.is_some() {
            files.push(USER_DATA);
        }
        if version >= GRIZZLY {
            files.push(PASSWORD);
        }
        if version >= HAVANA {
            files.push(VENDOR_DATA_JSON);
        }
        if version >= LIBERTY {
            files.push(NETWORK_DATA_JSON);
        }
        if version >= NEWTON_TWO {
            files.push(VENDOR_DATA2_JSON);
        }
        files
    }

    /// File `name` of OpenStack `version`, if that version has it.
    fn openstack_file(&self, version: &str, name: &str) -> Option<Entry> {
        if !self.openstack_files(version).contains(&name) {
            return None;
        }
        Some(match name {
            META_DATA_JSON => Entry::Json(to_bytes(&self.meta_data(version))),
            USER_DATA => Entry::Text(self.user_data.clone()?),
            PASSWORD => Entry::Password,
            NETWORK_DATA_JSON => Entry::Json(self.network_data.to_json().into_bytes()),
            _ => Entry::Json(b"{}".to_vec()),
        })
    }

    /// The EC2 `meta-data` tree of EC2 `version` (a dated version; `latest`
    /// is the newest), as Nova builds it (`_name` entries included).
    pub fn ec2_meta_data(&self, version: &str) -> Value {
        let version = ec2_version(version).unwrap_or("2009-04-04");
        let local_ipv4 = self
            .network_data
            .networks
            .iter()
            .find(|network| network.network_type == "ipv4")
            .map(|network| network.ip_address.clone())
            .unwrap_or_default();
        let mut tree = Map::new();
        tree.insert("ami-id".into(), json!(ec2_id("ami", &self.image_ref)));
        tree.insert("ami-launch-index".into(), json!(self.launch_index));
        tree.insert("ami-manifest-path".into(), json!("FIXME"));
        tree.insert("instance-id".into(), json!(self.ec2_instance_id()));
        tree.insert("hostname".into(), json!(self.hostname));
        tree.insert("local-ipv4".into(), json!(local_ipv4));
        tree.insert("reservation-id".into(), json!(self.reservation_id));
        tree.insert("security-groups".into(), json!(self.security_groups));
        if version >= "2007-01-19" {
            tree.insert("local-hostname".into(), json!(self.hostname));
            tree.insert("public-hostname".into(), json!(self.hostname));
            tree.insert("public-ipv4".into(), json!(""));
        }
        if version >= "2007-08-29" {
            tree.insert("instance-type".into(), json!(self.flavor_name));
        }
        if version >= "2007-12-15" {
            tree.insert(
                "block-device-mapping".into(),
                json!({"ami": "vda", "root": "/dev/vda"}),
            );
        }
        if version >= "2008-02-01" {
            tree.insert(
                "placement".into(),
                json!({"availability-zone": self.availability_zone.clone().unwrap_or_default()}),
            );
        }
        if version >= "2008-09-01" {
            tree.insert("instance-action".into(), json!("none"));
        }
        if let Some(key) = &self.key_pair {
            tree.insert(
                "public-keys".into(),
                json!({"0": {EC2_NAME: format!("0={}", key.name), "openssh-key": key.public_key}}),
            );
        }
        Value::Object(tree)
    }

    /// The instance's EC2 id (`i-` + the first 8 hex digits of its uuid).
    pub fn ec2_instance_id(&self) -> String {
        ec2_id("i", &self.uuid)
    }

    /// What `path` (relative to the metadata root, `/` separated; empty
    /// segments ignored) holds, `None` when nothing.
    pub fn lookup(&self, path: &str) -> Option<Entry> {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        match segments.as_slice() {
            [] => Some(listing(EC2_VERSIONS.iter().copied().chain([LATEST]))),
            ["openstack"] => Some(listing(OPENSTACK_VERSIONS.iter().copied().chain([LATEST]))),
            ["openstack", version] => {
                let version = openstack_version(version)?;
                Some(listing(self.openstack_files(version)))
            }
            ["openstack", version, name] => self.openstack_file(openstack_version(version)?, name),
            [version, rest @ ..] => self.ec2_lookup(ec2_version(version)?, rest),
        }
    }

    fn ec2_lookup(&self, version: &str, rest: &[&str]) -> Option<Entry> {
        match rest {
            [] => {
                let mut entries = vec!["meta-data/"];
                if self.user_data.is_some() {
                    entries.push("user-data");
                }
                Some(listing(entries))
            }
            ["user-data"] => Some(Entry::Text(self.user_data.clone()?)),
            ["meta-data", path @ ..] => {
                let tree = self.ec2_meta_data(version);
                let mut current = &tree;
                for segment in path {
                    if *segment == EC2_NAME {
                        return None;
                    }
                    current = current.as_object()?.get(*segment)?;
                }
                Some(ec2_print(current))
            }
            _ => None,
        }
    }

    /// The files of the instance's config drive, as Nova writes them.
    pub fn config_drive_files(&self) -> Vec<(String, Vec<u8>)> {
        let mut files = Vec::new();
        for version in CONFIG_DRIVE_EC2_VERSIONS.iter().copied().chain([LATEST]) {
            if let Some(user_data) = &self.user_data {
                files.push((format!("ec2/{version}/user-data"), user_data.clone()));
            }
            files.push((
                format!("ec2/{version}/meta-data.json"),
                to_bytes(&self.ec2_meta_data(version)),
            ));
        }
        for version in OPENSTACK_VERSIONS.iter().copied().chain([LATEST]) {
            let resolved = openstack_version(version).unwrap_or(VICTORIA);
            for name in self.openstack_files(resolved) {
                match self.openstack_file(resolved, name) {
                    Some(Entry::Json(content)) | Some(Entry::Text(content)) => {
                        files.push((format!("openstack/{version}/{name}"), content))
                    }
                    _ => {}
                }
            }
        }
        files
    }

    /// [`InstanceMetadata::config_drive_files`] as the spawn task carries them.
    pub fn config_drive(&self) -> Vec<ConfigDriveFile> {
        self.config_drive_files()
            .into_iter()
            .map(|(path, content)| ConfigDriveFile {
                path,
                content_base64: BASE64.encode(content),
            })
            .collect()
    }
}

/// Whether an instance with `requested` (the create's `config_drive`),
/// image properties `image_properties` gets a config drive, with `[compute]
/// force_config_drive` = `forced` (Nova's `configdrive.required_by`).
pub fn config_drive_required(
    requested: bool,
    image_properties: &BTreeMap<String, String>,
    forced: bool,
) -> bool {
    requested
        || forced
        || image_properties
            .get("img_config_drive")
            .is_some_and(|value| value.trim().eq_ignore_ascii_case("mandatory"))
}

/// The instance's `config_drive` column for `required`: Nova's `"True"` or `""`.
pub fn config_drive_column(required: bool) -> &'static str {
    if required { "True" } else { "" }
}

/// `version` when it is an OpenStack version (`latest`: the newest).
fn openstack_version(version: &str) -> Option<&'static str> {
    if version == LATEST {
        return Some(VICTORIA);
    }
    OPENSTACK_VERSIONS.iter().copied().find(|v| *v == version)
}

/// `version` when it is an EC2 version (`latest`: the newest).
fn ec2_version(version: &str) -> Option<&'static str> {
    if version == LATEST {
        return EC2_VERSIONS.last().copied();
    }
    EC2_VERSIONS.iter().copied().find(|v| *v == version)
}

/// `<prefix>-` + the first 8 hex digits of `uuid` (`i-1a81968a`).
fn ec2_id(prefix: &str, uuid: &str) -> String {
    let digits: String = uuid
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(8)
        .collect::<String>()
        .to_ascii_lowercase();
    format!("{prefix}-{digits:0>8}")
}

fn listing<'a>(entries: impl IntoIterator<Item = &'a str>) -> Entry {
    Entry::Listing(entries.into_iter().collect::<Vec<_>>().join("\n"))
}

fn to_bytes(value: &Value) -> Vec<u8> {
    // A tree of strings, numbers and lists: serializing cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// A node of the EC2 tree as Nova prints it (`ec2_md_print`): a directory
/// lists its keys sorted (a sub-directory as its `_name` or `key/`), a list
/// one item a line, a scalar as text.
fn ec2_print(node: &Value) -> Entry {
    match node {
        Value::Object(entries) => Entry::Listing(
            entries
                .iter()
                .collect::<BTreeMap<_, _>>()
                .into_iter()
                .filter(|(key, _)| key.as_str() != EC2_NAME)
                .map(|(key, value)| match value {
                    Value::Object(child) => match child.get(EC2_NAME).and_then(Value::as_str) {
                        Some(name) => name.to_string(),
                        None => format!("{key}/"),
                    },
                    _ => key.clone(),
                })
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        Value::Array(items) => Entry::Text(
            items
                .iter()
                .map(scalar_text)
                .collect::<Vec<_>>()
                .join("\n")
                .into_bytes(),
        ),
        other => Entry::Text(scalar_text(other).into_bytes()),
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}
