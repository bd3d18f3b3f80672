//! Password hashing: Argon2id for everything new, bcrypt read for hashes of the Python era.
//!
//! Hashing is deliberately slow, so the async functions run it on tokio's blocking pool:
//! a login must never stall the workers that serve everything else.
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::{Error, Result};

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verified {
    /// Right password, hash current.
    Yes,
    /// Right password, but the hash is legacy (bcrypt) or has weaker parameters: store
    /// a fresh Argon2id hash.
    YesRehash,
    No,
}

impl Verified {
    pub(crate) fn ok(self) -> bool {
        !matches!(self, Verified::No)
    }
}

/// Argon2id with OWASP's recommended minimum (19 MiB, 2 passes, 1 lane).
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A real Argon2id hash of a random password, verified when the account does not exist so
/// that an unknown email costs the same time as a wrong password.
const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$1B0xbL3b4kbLeMZeOQbHDQ$d8EDhM1NOzPeNbYNBq8Y7Ff6vtQ5wvvu04aqLQLU7As";

pub(crate) fn hash_blocking(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
}

pub(crate) fn verify_blocking(password: &str, stored: &str) -> Verified {
    if stored.starts_with("$2") {
        return match bcrypt::verify(password, stored) {
            Ok(true) => Verified::YesRehash,
            _ => Verified::No,
        };
    }
    let Ok(parsed) = PasswordHash::new(stored) else {
        return Verified::No;
    };
    if argon2()
        .verify_password(password.as_bytes(), &parsed)
        .is_err()
    {
        return Verified::No;
    }
    let current = parsed.algorithm.as_str() == "argon2id"
        && Params::try_from(&parsed).is_ok_and(|p| p.m_cost() >= 19 * 1024 && p.t_cost() >= 2);
    if current {
        Verified::Yes
    } else {
        Verified::YesRehash
    }
}

/// Runs password hashes on tokio's blocking pool, at most a fixed number at once.
///
/// Each Argon2id run takes 19 MiB and a core for ~50 ms: unbounded, a burst of logins fills
/// the blocking pool with hundreds of them, takes over a GiB that the allocator keeps, and
/// starves every other request of CPU. Queued logins wait for a permit instead. One
/// `Hasher` per process (clones share the permits), sized to the machine's cores with a
/// little slack so a core never idles between two hashes.
#[derive(Clone, Debug)]
pub struct Hasher {
    permits: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Hasher {
    /// At most `concurrent` hashes at once (at least one).
    pub fn new(concurrent: usize) -> Self {
        Self {
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(concurrent.max(1))),
        }
    }

    /// Sized for this machine: twice its available cores.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self::new(cores * 2)
    }

    async fn on_blocking_pool<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| Error::Internal(format!("hashing limiter closed: {e}")))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| Error::Internal(format!("hashing task failed: {e}")))
    }

    /// A hashing permit: held, it counts against the hashes running at once. The
    /// failed-attempt limit checks and records under it (see `throttle`).
    pub(crate) async fn permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>> {
        self.permits
            .acquire()
            .await
            .map_err(|e| Error::Internal(format!("hashing limiter closed: {e}")))
    }

    /// Verifies on the blocking pool, under a permit the caller holds (`stored: None`, no
    /// such account, burns the same time on the decoy hash and answers [`Verified::No`]).
    pub(crate) async fn verify_holding(
        &self,
        _permit: &tokio::sync::SemaphorePermit<'_>,
        password: String,
        stored: Option<String>,
    ) -> Result<Verified> {
        tokio::task::spawn_blocking(move || match stored {
            Some(stored) => verify_blocking(&password, &stored),
            None => {
                let _ = verify_blocking(&password, DECOY_HASH);
                Verified::No
            }
        })
        .await
        .map_err(|e| Error::Internal(format!("hashing task failed: {e}")))
    }

    /// Hashes on the blocking pool.
    pub(crate) async fn hash(&self, password: String) -> Result<String> {
        self.on_blocking_pool(move || hash_blocking(&password))
            .await?
    }
}

/// Password rules shared by accounts and reports: 8 characters to 1024 bytes.
pub(crate) fn validate(password: &str) -> Result<()> {
    if password.chars().count() < 8 {
        return Err(Error::validation("password must be at least 8 characters"));
    }
    if password.len() > 1024 {
        return Err(Error::validation("password must be at most 1024 bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_hashes_are_argon2id_and_verify() {
        let h = hash_blocking("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert_eq!(verify_blocking("correct horse", &h), Verified::Yes);
        assert_eq!(verify_blocking("wrong horse", &h), Verified::No);
    }

    #[test]
    fn legacy_bcrypt_verifies_and_asks_for_rehash() {
        let legacy = bcrypt::hash("old-secret-1", 4).unwrap();
        assert_eq!(
            verify_blocking("old-secret-1", &legacy),
            Verified::YesRehash
        );
        assert_eq!(verify_blocking("old-secret-2", &legacy), Verified::No);
    }

    #[test]
    fn decoy_hash_is_a_valid_argon2id_hash() {
        assert!(PasswordHash::new(DECOY_HASH).is_ok());
        assert_eq!(verify_blocking("anything", DECOY_HASH), Verified::No);
    }

    #[test]
    fn garbage_hash_never_verifies() {
        assert_eq!(verify_blocking("x", "not a hash"), Verified::No);
    }

    #[test]
    fn length_rules() {
        assert!(validate("short").is_err());
        assert!(validate("12345678").is_ok());
        assert!(validate(&"a".repeat(1025)).is_err());
        assert!(validate(&"a".repeat(1024)).is_ok());
    }
}
