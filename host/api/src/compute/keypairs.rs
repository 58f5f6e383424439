//! Key pairs (`/v2.1/os-keypairs`): create (import a public key, or, before
//! 2.92, generate an ed25519 key pair and return its private key once),
//! list, show, delete. Key pairs belong to a user; from 2.10 an admin may
//! name another user with `user_id`. `type` (`ssh`, `x509`) from 2.2, which
//! also turns create into 201 and delete into 204; paging from 2.35. The
//! key-pairs quota is checked in the transaction that inserts the key.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha1::Digest as _;

use super::common::parse_query;
use super::common::{Page, api_time_micros, next_link};
use crate::AppState;
use crate::auth::AuthContext;
use crate::body::JsonBody;
use crate::extract::{Path, Query};
use crate::fault::{ApiError, ApiResult};
use crate::microversion::Microversion;
use crate::request_id::RequestId;
use crate::validation::MAX_NAME_LENGTH;
use novum_compute::store::keypairs::{self, KeypairRow, NewKeypair};
use novum_notify::builders;
use novum_notify::payload::KeypairPayload;
use novum_notify::{Phase, Publisher, emit};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// `ssh` key pairs.
pub const TYPE_SSH: &str = "ssh";
/// `x509` certificates.
pub const TYPE_X509: &str = "x509";

/// Errors of key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The public key (or certificate) cannot be read.
    #[error("Keypair data is invalid: {0}")]
    Invalid(String),
    /// Generating a key failed.
    #[error("cannot generate a key pair: {0}")]
    Generate(String),
}

fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Nova's fingerprint of an OpenSSH public key: MD5 of the key blob, as
/// colon-separated hex.
pub fn ssh_fingerprint(public_key: &str) -> Result<String, KeyError> {
    let key = ssh_key::PublicKey::from_openssh(public_key.trim())
        .map_err(|_| KeyError::Invalid("failed to generate fingerprint".to_string()))?;
    let blob = key
        .to_bytes()
        .map_err(|error| KeyError::Invalid(error.to_string()))?;
    Ok(colon_hex(&md5::Md5::digest(&blob)))
}

/// Nova's fingerprint of a PEM certificate: SHA-1 of its DER, as
/// colon-separated hex.
pub fn x509_fingerprint(pem: &str) -> Result<String, KeyError> {
    let invalid = || KeyError::Invalid("failed to generate X509 fingerprint".to_string());
    let body = pem
        .trim()
        .strip_prefix("-----BEGIN CERTIFICATE-----")
        .and_then(|rest| rest.trim_end().strip_suffix("-----END CERTIFICATE-----"))
        .ok_or_else(invalid)?;
    let text: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| invalid())?;
    // A DER certificate is a SEQUENCE.
    if der.first() != Some(&0x30) || der.len() < 16 {
        return Err(invalid());
    }
    Ok(colon_hex(&sha1::Sha1::digest(&der)))
}

/// A new ed25519 key pair named `comment`: (OpenSSH private key, public key).
pub fn generate_ssh(comment: &str) -> Result<(String, String), KeyError> {
    let mut rng = ssh_key::rand_core::OsRng;
    let mut private = ssh_key::PrivateKey::random(&mut rng, ssh_key::Algorithm::Ed25519)
        .map_err(|error| KeyError::Generate(error.to_string()))?;
    private.set_comment(comment);
    let private_text = private
        .to_openssh(ssh_key::LineEnding::LF)
        .map_err(|error| KeyError::Generate(error.to_string()))?;
    let public = private
        .public_key()
        .to_openssh()
        .map_err(|error| KeyError::Generate(error.to_string()))?;
    Ok((private_text.to_string(), public))
}

impl From<KeyError> for ApiError {
    fn from(error: KeyError) -> Self {
        match error {
            KeyError::Invalid(_) => ApiError::bad_request(error.to_string()),
            KeyError::Generate(_) => ApiError::internal(error),
        }
    }
}

fn summary(version: Microversion, key: &KeypairRow) -> Value {
    let mut body = json!({
        "name": key.name,
        "public_key": key.public_key,
        "fingerprint": key.fingerprint,
    });
    if version.at_least(2) {
        body["type"] = json!(key.key_type);
    }
    body
}

fn full(version: Microversion, key: &KeypairRow) -> Value {
    let mut body = summary(version, key);
    body["user_id"] = json!(key.user_id);
    body["created_at"] = json!(api_time_micros(&key.created_at));
    body["updated_at"] = Value::Null;
    body["deleted_at"] = Value::Null;
    body["deleted"] = json!(false);
    body["id"] = json!(key.id);
    body
}

/// The user whose key pairs a request is about: the caller, or from 2.10
/// `user_id` (another user's only for admins).
fn target_user(
    auth: &AuthContext,
    version: Microversion,
    requested: Option<&str>,
    rule: &str,
) -> ApiResult<String> {
    match requested.filter(|_| version.at_least(10)) {
        Some(user) if user != auth.user_id => {
            auth.require_admin(rule)?;
            Ok(user.to_string())
        }
        _ => Ok(auth.user_id.clone()),
    }
}

/// The notification payload about `key`.
fn payload(key: &KeypairRow) -> KeypairPayload {
    KeypairPayload {
        user_id: Some(key.user_id.clone()),
        name: key.name.clone(),
        fingerprint: Some(key.fingerprint.clone()),
        public_key: Some(key.public_key.clone()),
        key_type: key.key_type.clone(),
    }
}

/// Emits `keypair.<action>.start` and `.end` about `key` in `tx`.
async fn notify_keypair(
    tx: &mut novum_db::Tx,
    state: &AppState,
    key: &KeypairRow,
    action: &str,
    project_id: &str,
) -> ApiResult<()> {
    let publisher = Publisher::api(&state.config.host);
    for phase in [Phase::Start, Phase::End] {
        let notification =
            builders::keypair(&publisher, payload(key), action, phase, Some(project_id));
        emit(tx, &notification).await?;
    }
    Ok(())
}

#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
struct UserQuery {
    user_id: Option<String>,
    /// `limit` and `marker`.
    #[serde(flatten)]
    #[param(inline, required = false)]
    page: Page,
}

#[utoipa::path(get, path = "/v2.1/os-keypairs", params(UserQuery), responses((status = OK, description = "Success", body = KeypairList), crate::fault::ApiError))]
async fn index(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Query(query): Query<UserQuery>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let user = target_user(
        &auth,
        version,
        query.user_id.as_deref(),
        "os_compute_api:os-keypairs:index",
    )?;
    let keys = keypairs::list(&state.db, &user).await?;
    let (page, more) = if version.at_least(35) {
        query.page.apply(&state, keys, |key| &key.name)?
    } else {
        (keys, false)
    };
    let items: Vec<Value> = page
        .iter()
        .map(|key| json!({"keypair": summary(version, key)}))
        .collect();
    let mut body = json!({"keypairs": items});
    if more && let Some(last) = page.last() {
        body["keypairs_links"] = next_link(
            &state,
            "os-keypairs",
            &parse_query(raw.as_deref()),
            &last.name,
        );
    }
    Ok(Json(body))
}

#[utoipa::path(get, path = "/v2.1/os-keypairs/{name}", params(("name" = String, Path, description = "The key pair name"), UserQuery), responses((status = OK, description = "Success", body = KeypairEnvelope), crate::fault::ApiError))]
async fn show(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(name): Path<String>,
    Query(query): Query<UserQuery>,
) -> ApiResult<Json<Value>> {
    let user = target_user(
        &auth,
        version,
        query.user_id.as_deref(),
        "os_compute_api:os-keypairs:show",
    )?;
    let key = keypairs::get(&state.db, &user, &name).await?;
    Ok(Json(json!({"keypair": full(version, &key)})))
}

#[utoipa::path(delete, path = "/v2.1/os-keypairs/{name}", params(("name" = String, Path, description = "The key pair name"), UserQuery), responses((status = NO_CONTENT, description = "Deleted (2.2 and later)"), (status = ACCEPTED, description = "Deleted (before 2.2)"), crate::fault::ApiError))]
async fn delete(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(name): Path<String>,
    Query(query): Query<UserQuery>,
) -> ApiResult<StatusCode> {
    let user = target_user(
        &auth,
        version,
        query.user_id.as_deref(),
        "os_compute_api:os-keypairs:delete",
    )?;
    let key = keypairs::get(&state.db, &user, &name).await?;
    let mut tx = state.db.begin().await?;
    if keypairs::delete(&mut tx, &user, &name).await? {
        notify_keypair(&mut tx, &state, &key, "delete", &auth.project_id).await?;
    }
    novum_notify::commit(tx).await?;
    Ok(if version.at_least(2) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::ACCEPTED
    })
}

fn check_name(version: Microversion, name: &Value) -> ApiResult<String> {
    let Value::String(name) = name else {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute name. Value: {name}."
        )));
    };
    if name.trim().is_empty() || name.chars().count() > MAX_NAME_LENGTH {
        return Err(ApiError::bad_request(
            "Keypair name must be string and between 1 and 255 characters long",
        ));
    }
    let extra: &[char] = if version.at_least(92) {
        &[' ', '_', '-', '@', '.']
    } else {
        &[' ', '_', '-']
    };
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
    {
        return Err(ApiError::bad_request(
            "Keypair name contains unsafe characters",
        ));
    }
    Ok(name.clone())
}

#[utoipa::path(post, path = "/v2.1/os-keypairs", request_body = KeypairEnvelope, responses((status = CREATED, description = "Created (2.2 and later)", body = KeypairEnvelope), (status = OK, description = "Created (before 2.2)", body = KeypairEnvelope), crate::fault::ApiError))]
async fn create(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    request_id: RequestId,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let input = match body.get("keypair") {
        Some(Value::Object(input)) if body.len() == 1 => input,
        _ => return Err(ApiError::bad_request("'keypair' is a required property")),
    };
    let mut known = vec!["name", "public_key"];
    if version.at_least(2) {
        known.push("type");
    }
    if version.at_least(10) {
        known.push("user_id");
    }
    if let Some(key) = input.keys().find(|key| !known.contains(&key.as_str())) {
        return Err(ApiError::bad_request(format!(
            "Additional properties are not allowed ('{key}' was unexpected)"
        )));
    }
    let name = check_name(
        version,
        input
            .get("name")
            .ok_or_else(|| ApiError::bad_request("'name' is a required property"))?,
    )?;
    let key_type = match input.get("type") {
        None => TYPE_SSH.to_string(),
        Some(Value::String(kind)) if kind == TYPE_SSH || kind == TYPE_X509 => kind.clone(),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute type. Value: {other}. {other} is not one of ['ssh', 'x509']"
            )));
        }
    };
    let user = target_user(
        &auth,
        version,
        input.get("user_id").and_then(Value::as_str),
        "os_compute_api:os-keypairs:create",
    )?;
    let public_key = match input.get("public_key") {
        None => None,
        Some(Value::String(text)) if !text.trim().is_empty() => Some(text.clone()),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute public_key. Value: {other}."
            )));
        }
    };
    let (public_key, private_key) = match public_key {
        Some(key) => (key, None),
        None if version.at_least(92) => {
            return Err(ApiError::bad_request("'public_key' is a required property"));
        }
        None if key_type == TYPE_X509 => {
            return Err(ApiError::bad_request(
                "Generating x509 certificates is not supported; import one with public_key.",
            ));
        }
        None => {
            let (private, public) = generate_ssh(&name)?;
            (public, Some(private))
        }
    };
    let fingerprint = if key_type == TYPE_X509 {
        x509_fingerprint(&public_key)?
    } else {
        ssh_fingerprint(&public_key)?
    };
    let new_key = NewKeypair {
        user_id: user,
        name,
        public_key,
        fingerprint,
        key_type,
    };
    let (mut tx, key) =
        keypairs::create(&state.quota, &auth.project_id, &request_id.0, new_key).await?;
    // Nova: `keypair.create` for a generated key, `keypair.import` for a given one.
    let action = if private_key.is_some() {
        "create"
    } else {
        "import"
    };
    notify_keypair(&mut tx, &state, &key, action, &auth.project_id).await?;
    novum_notify::commit(tx).await?;
    let mut view = summary(version, &key);
    view["user_id"] = json!(key.user_id);
    if let Some(private) = private_key {
        view["private_key"] = json!(private);
    }
    let status = if version.at_least(2) {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({"keypair": view}))))
}

crate::envelope!(
    /// `{"keypairs": …}`
    KeypairList, "keypairs", Array
);
crate::envelope!(
    /// `{"keypair": …}`
    KeypairEnvelope, "keypair", Object
);

/// The key pair routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(index, create))
        .routes(routes!(show, delete))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_nova_fingerprints() {
        let (private, public) = generate_ssh("demo").unwrap();
        assert!(private.contains("BEGIN OPENSSH PRIVATE KEY"));
        assert!(public.starts_with("ssh-ed25519 "));
        let fingerprint = ssh_fingerprint(&public).unwrap();
        assert_eq!(fingerprint.len(), 16 * 3 - 1);
        assert_eq!(fingerprint.matches(':').count(), 15);
        assert!(ssh_fingerprint("ssh-rsa not-base64").is_err());
    }

    #[test]
    fn ecdsa_keys_have_fingerprints() {
        // Tempest imports a generated ecdsa-sha2-nistp384 key.
        let key = "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBGm/9OfWPlDE+3qVaKbErJ1L1QB8J5M/OzqmOySijp4F0fbGZVix1AR+Ub8TYQERLxeGsiEqYKnkGzDeX+PMBOEyWSzcO68gTaPs49OjaCGsW0vYkldyy09NKQ/ft9ZCkg==";
        let fingerprint = ssh_fingerprint(key).unwrap();
        assert_eq!(fingerprint.matches(':').count(), 15);
    }

    #[test]
    fn known_rsa_key_fingerprint() {
        // The key and fingerprint of Nova's API samples (keypairs-import-post-req).
        let key = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDx8nkQv/zgGgB4rMYmIf+6A4l6Rr+o/6lHBQdW5aYd44bd8JttDCE/F/pNRr0lRE+PiqSPO8nDPHw0010JeMH9gYgnnFlyY3/OcJ02RhIPyyxYpv9FhY+2YiUkpwFOcLImyrxEsYXpD/0d3ac30bNH6Sw9JD9UZHYcpSxsIbECHw== Generated-by-Nova";
        assert_eq!(
            ssh_fingerprint(key).unwrap(),
            "1e:2c:9b:56:79:4b:45:77:f9:ca:7a:98:2c:b0:d5:3c"
        );
    }
}
