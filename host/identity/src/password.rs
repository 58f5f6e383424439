//! Password hashing with argon2id (PHC strings), off the async threads and
//! bounded.
//!
//! New hashes use argon2id with 7 MiB of memory and 5 passes
//! ([`new_hash_params`]), one of OWASP's equivalent configurations (its
//! first, and the argon2 crate's default, is 19 MiB and 2 passes: about the
//! same work, but a work area of 19 MiB kept per core). Hashes made with
//! other parameters verify with their own. One run keeps a core busy.
//!
//! Every hash and every verification therefore goes through one
//! [`HashingPool`]: at most [`hashing_slots`] run at once (one per core, so a
//! flood of bad logins queues instead of taking every blocking thread), and
//! each run reuses one of at most that many work areas instead of allocating
//! (and leaving behind in the allocator) a work area of its own. The permit and the
//! work area travel with the blocking job, so a caller that gives up (a client
//! that hangs up) frees neither before the job ends.

use std::num::NonZeroUsize;
use std::sync::{Mutex, OnceLock};

use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;

/// Hashing failed (bad parameters; never for ordinary input).
#[derive(Debug, thiserror::Error)]
#[error("cannot hash a password: {0}")]
pub struct HashError(String);

/// The password a user without a password hash (or an unknown user) is
/// checked against, so that such a check costs what any other does.
const DUMMY_PASSWORD: &str = "novum-dummy-password";

/// Bytes of random salt in a new hash (argon2's recommendation).
const SALT_BYTES: usize = argon2::RECOMMENDED_SALT_LEN;

/// How many password hashes run at once at most: one per core.
pub fn hashing_slots() -> usize {
    std::thread::available_parallelism()
        .map(NonZeroUsize::get)
        .unwrap_or(1)
}

/// The argon2id parameters of a new hash: 7 MiB (7,168 KiB blocks), 5
/// passes, one lane (OWASP's Password Storage Cheat Sheet lists it beside
/// 19 MiB / 2 passes as equally strong).
pub fn new_hash_params() -> Result<Params, HashError> {
    Params::new(7 * 1024, 5, 1, None).map_err(|error| HashError(error.to_string()))
}

/// An argon2 work area (grown to the block count of the largest hash run in it).
type WorkArea = Vec<Block>;

/// The bound on concurrent hashing, and the work areas the runs reuse.
struct HashingPool {
    permits: Semaphore,
    idle_areas: Mutex<Vec<WorkArea>>,
}

impl HashingPool {
    fn global() -> &'static Self {
        static POOL: OnceLock<HashingPool> = OnceLock::new();
        POOL.get_or_init(|| Self {
            permits: Semaphore::new(hashing_slots()),
            idle_areas: Mutex::new(Vec::new()),
        })
    }

    /// Runs `job` on the blocking pool once a slot is free, with a work area.
    async fn run<T, F>(&'static self, job: F) -> Result<T, HashError>
    where
        T: Send + 'static,
        F: FnOnce(&mut WorkArea) -> T + Send + 'static,
    {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|error| HashError(error.to_string()))?;
        tokio::task::spawn_blocking(move || {
            let mut area = self
                .idle_areas
                .lock()
                .ok()
                .and_then(|mut idle| idle.pop())
                .unwrap_or_default();
            let answer = job(&mut area);
            if let Ok(mut idle) = self.idle_areas.lock() {
                idle.push(area);
            }
            drop(permit);
            answer
        })
        .await
        .map_err(|error| HashError(error.to_string()))
    }
}

/// Runs argon2 with `params` into `output`, in `area` (grown if too small).
fn argon2_into(
    area: &mut WorkArea,
    context: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    output: &mut [u8],
) -> Result<(), argon2::Error> {
    let blocks = context.params().block_count();
    if area.len() < blocks {
        area.resize(blocks, Block::default());
    }
    context.hash_password_into_with_memory(password, salt, output, &mut area[..blocks])
}

/// The argon2id PHC string of `password` with a random salt, computed in `area`.
fn hash_in(area: &mut WorkArea, password: &str) -> Result<String, HashError> {
    let failed = |error: &dyn std::fmt::Display| HashError(error.to_string());
    let salt_bytes: [u8; SALT_BYTES] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|error| failed(&error))?;
    let params = new_hash_params()?;
    let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let context = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut output = vec![0_u8; output_len];
    argon2_into(
        area,
        &context,
        password.as_bytes(),
        &salt_bytes,
        &mut output,
    )
    .map_err(|error| failed(&error))?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|error| failed(&error))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&output).map_err(|error| failed(&error))?),
    };
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `hash`, computed in `area`
/// (false for a malformed hash).
fn verify_in(area: &mut WorkArea, password: &str, hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let (Some(expected), Some(salt)) = (&parsed.hash, &parsed.salt) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let mut salt_buffer = [0_u8; Salt::MAX_LENGTH];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_buffer) else {
        return false;
    };
    let context = Argon2::new(algorithm, version, params);
    let mut output = vec![0_u8; expected.len()];
    argon2_into(area, &context, password.as_bytes(), salt_bytes, &mut output).is_ok()
        && Output::new(&output).is_ok_and(|computed| computed == *expected)
}

/// The argon2id PHC string of `password`, with a random salt (on the calling
/// thread, outside the pool: for tests and tools, not request paths).
pub fn hash_password_blocking(password: &str) -> Result<String, HashError> {
    hash_in(&mut WorkArea::new(), password)
}

/// Whether `password` matches the PHC string `hash` (on the calling thread,
/// outside the pool; false for a malformed hash).
pub fn verify_password_blocking(password: &str, hash: &str) -> bool {
    verify_in(&mut WorkArea::new(), password, hash)
}

/// [`hash_password_blocking`] in the bounded pool.
pub async fn hash_password(password: String) -> Result<String, HashError> {
    HashingPool::global()
        .run(move |area| hash_in(area, &password))
        .await?
}

/// Verifies `password` against `hash` in the bounded pool. With no hash (an
/// unknown user, or one without a password) it still spends the time of one
/// verification, so response times do not tell which user names exist.
pub async fn verify_password(password: String, hash: Option<String>) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    HashingPool::global()
        .run(move |area| match hash {
            Some(hash) => verify_in(area, &password, &hash),
            None => {
                let dummy = DUMMY.get_or_init(|| hash_in(area, DUMMY_PASSWORD).unwrap_or_default());
                let _ = verify_in(area, &password, dummy);
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
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    use super::*;

    #[test]
    fn hashes_verify_and_differ() {
        let first = hash_password_blocking("s3cret").expect("hash");
        let second = hash_password_blocking("s3cret").expect("hash");
        assert_ne!(first, second, "salted");
        assert!(
            first.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"),
            "{first}"
        );
        assert!(verify_password_blocking("s3cret", &first));
        assert!(!verify_password_blocking("wrong", &first));
        assert!(!verify_password_blocking("s3cret", "not a hash"));
        assert_eq!(generate_password().len(), 24);
    }

    #[test]
    fn hashes_are_those_of_the_argon2_crate_both_ways() {
        // Hashes stored before the pool (argon2's own hasher) still verify,
        // and the pool's hashes verify with argon2's own verifier.
        let salt = SaltString::encode_b64(b"sixteen byte slt").expect("salt");
        let theirs = Argon2::default()
            .hash_password(b"s3cret", &salt)
            .expect("hash")
            .to_string();
        assert!(verify_password_blocking("s3cret", &theirs));
        assert!(!verify_password_blocking("s3cre", &theirs));
        let ours = hash_password_blocking("s3cret").expect("hash");
        let parsed = PasswordHash::new(&ours).expect("PHC string");
        assert!(
            Argon2::default()
                .verify_password(b"s3cret", &parsed)
                .is_ok()
        );
        // A work area used for a bigger hash verifies a smaller one.
        let small = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(64, 1, 1, None).expect("params"),
        )
        .hash_password(b"pw", &salt)
        .expect("hash")
        .to_string();
        let mut area = WorkArea::new();
        assert!(verify_in(&mut area, "s3cret", &ours));
        assert!(verify_in(&mut area, "pw", &small));
        assert!(!verify_in(&mut area, "pW", &small));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_pool_bounds_work_areas_to_its_slots() {
        let checks: Vec<_> = (0..8)
            .map(|index| tokio::spawn(verify_password(format!("guess-{index}"), None)))
            .collect();
        for check in checks {
            assert!(!check.await.expect("joined"));
        }
        let areas = HashingPool::global()
            .idle_areas
            .lock()
            .map(|idle| idle.len())
            .unwrap_or_default();
        assert!(
            (1..=hashing_slots()).contains(&areas),
            "{areas} work areas for {} slots",
            hashing_slots()
        );
    }
}
