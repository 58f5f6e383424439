//! Password hashing with argon2id (PHC strings), off the async threads.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// Hashing failed (bad parameters; never for ordinary input).
#[derive(Debug, thiserror::Error)]
#[error("cannot hash a password: {0}")]
pub struct HashError(String);

/// The argon2id PHC string of `password`, with a random salt.
pub fn hash_password_blocking(password: &str) -> Result<String, HashError> {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|error| HashError(error.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| HashError(error.to_string()))
}

/// Whether `password` matches the PHC string `hash` (false for a malformed hash).
pub fn verify_password_blocking(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// [`hash_password_blocking`] on the blocking pool.
pub async fn hash_password(password: String) -> Result<String, HashError> {
    tokio::task::spawn_blocking(move || hash_password_blocking(&password))
        .await
        .map_err(|error| HashError(error.to_string()))?
}

/// Verifies `password` against `hash` on the blocking pool. With no hash (an
/// unknown user, or one without a password) it still spends the time of one
/// verification, so response times do not tell which user names exist.
pub async fn verify_password(password: String, hash: Option<String>) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    tokio::task::spawn_blocking(move || match hash {
        Some(hash) => verify_password_blocking(&password, &hash),
        None => {
            let dummy = DUMMY
                .get_or_init(|| hash_password_blocking("novum-dummy-password").unwrap_or_default());
            let _ = verify_password_blocking(&password, dummy);
            false
        }
    })
    .await
    .unwrap_or(false)
}

/// A random password of 24 letters and digits.
pub fn generate_password() -> String {
    use rand::Rng;
    use rand::distr::Alphanumeric;
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ() {
        let first = hash_password_blocking("s3cret").expect("hash");
        let second = hash_password_blocking("s3cret").expect("hash");
        assert_ne!(first, second, "salted");
        assert!(first.starts_with("$argon2id$"));
        assert!(verify_password_blocking("s3cret", &first));
        assert!(!verify_password_blocking("wrong", &first));
        assert!(!verify_password_blocking("s3cret", "not a hash"));
        assert_eq!(generate_password().len(), 24);
    }
}
