//! Secrets kept at rest, encrypted: AES-256-GCM (RustCrypto's `aes-gcm`) with a random
//! 96-bit nonce per encryption and the owning row's id as associated data, so a ciphertext
//! copied onto another row does not decrypt.
//!
//! Keys have ids. A stored value is `<key id>:<base64url(nonce || ciphertext)>`, so values
//! written under an older key keep decrypting after a new key becomes current, and a value
//! naming a key the [`Keyring`] does not hold is refused loudly rather than misread.
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use zeroize::Zeroizing;

use crate::{Error, Result};

/// Name of the key file created in the data folder when no keys are configured.
pub const KEY_FILE: &str = "encryption.keys";
/// Longest key id (it prefixes every stored value).
const MAX_KEY_ID_LEN: usize = 32;
const NONCE_LEN: usize = 12;

/// The encryption keys in force: several by id (old values stay readable), one current
/// (new values are written with it). Key bytes are wiped from memory when dropped, and
/// never printed.
#[derive(Clone)]
pub struct Keyring {
    current: String,
    keys: BTreeMap<String, Zeroizing<[u8; 32]>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current)
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Keyring {
    /// Parses `id:base64key,id:base64key,...` (each key 32 bytes in standard base64) and
    /// picks `current` (or, when `None`, the only key). An id that is not listed, a
    /// malformed entry or a key of the wrong length is [`Error::Validation`]; the message
    /// never contains key material.
    pub fn parse(keys: &str, current: Option<&str>) -> Result<Self> {
        let mut parsed = BTreeMap::new();
        for entry in keys.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let Some((id, key)) = entry.split_once(':') else {
                return Err(Error::validation(
                    "encryption keys must be written id:base64key, separated by commas",
                ));
            };
            let id = validate_key_id(id.trim())?;
            let bytes = Zeroizing::new(STANDARD.decode(key.trim()).map_err(|_| {
                Error::validation(format!("encryption key {id:?} is not valid base64"))
            })?);
            let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                Error::validation(format!(
                    "encryption key {id:?} must be 32 bytes (AES-256), base64-encoded"
                ))
            })?;
            if parsed.insert(id.to_owned(), Zeroizing::new(key)).is_some() {
                return Err(Error::validation(format!(
                    "encryption key id {id:?} is listed twice"
                )));
            }
        }
        let current = match current {
            Some(id) => id.to_owned(),
            None if parsed.len() == 1 => parsed.keys().next().cloned().unwrap_or_default(),
            None if parsed.is_empty() => {
                return Err(Error::validation("no encryption key is configured"));
            }
            None => {
                return Err(Error::validation(
                    "several encryption keys are configured: name the current one",
                ));
            }
        };
        if !parsed.contains_key(&current) {
            return Err(Error::validation(format!(
                "the current encryption key id {current:?} is not among the configured keys"
            )));
        }
        Ok(Self {
            current,
            keys: parsed,
        })
    }

    /// The keys of the key file in `data_dir` ([`KEY_FILE`], one `id:base64key` per line,
    /// the last line current), creating it with one fresh random key, readable by the owner
    /// only (0600), when it does not exist. Two processes starting at once both end up with
    /// the file the first one wrote (it is created exclusively).
    pub fn load_or_create(data_dir: &Path) -> Result<Self> {
        let path = data_dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => return Self::from_key_file(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::Storage(e)),
        }
        let key = Zeroizing::new(rand::random::<[u8; 32]>());
        let line = Zeroizing::new(format!("k1:{}\n", STANDARD.encode(key.as_slice())));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        match options.open(&path) {
            Ok(mut file) => {
                file.write_all(line.as_bytes())?;
                file.sync_all()?;
            }
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::Storage(e)),
        }
        Self::from_key_file(&std::fs::read_to_string(&path)?)
    }

    fn from_key_file(text: &str) -> Result<Self> {
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        let current = lines
            .last()
            .and_then(|l| l.split_once(':'))
            .map(|(id, _)| id.trim().to_owned());
        Self::parse(&lines.join(","), current.as_deref())
    }

    /// A keyring of one fresh random key, for tests and throwaway programs (values it
    /// encrypts are unreadable once it is dropped).
    pub fn ephemeral() -> Self {
        Self {
            current: "ephemeral".to_owned(),
            keys: BTreeMap::from([(
                "ephemeral".to_owned(),
                Zeroizing::new(rand::random::<[u8; 32]>()),
            )]),
        }
    }

    /// The id new values are encrypted with.
    pub fn current_id(&self) -> &str {
        &self.current
    }

    /// Whether a stored value was written with a key this keyring holds.
    pub fn knows(&self, stored: &str) -> bool {
        stored
            .split_once(':')
            .is_some_and(|(id, _)| self.keys.contains_key(id))
    }

    /// Encrypts `plaintext` under the current key, bound to `row` (the owning row's id).
    pub(crate) fn encrypt(&self, plaintext: &[u8], row: &[u8]) -> Result<String> {
        let cipher = self.cipher(&self.current)?;
        let nonce_bytes = rand::random::<[u8; NONCE_LEN]>();
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce_bytes),
                Payload {
                    msg: plaintext,
                    aad: row,
                },
            )
            .map_err(|_| Error::Internal("encryption failed".to_owned()))?;
        let mut blob = Vec::with_capacity(NONCE_LEN + sealed.len());
        blob.extend_from_slice(&nonce_bytes);
        blob.extend_from_slice(&sealed);
        Ok(format!("{}:{}", self.current, URL_SAFE_NO_PAD.encode(blob)))
    }

    /// Decrypts a value [`Keyring::encrypt`] wrote for `row`. A value of an unknown key,
    /// a damaged one or one moved to another row is [`Error::Internal`] (never the
    /// caller's fault, and never shown to them).
    pub(crate) fn decrypt(&self, stored: &str, row: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let (id, blob) = stored
            .split_once(':')
            .ok_or_else(|| Error::Internal("stored secret has no key id".to_owned()))?;
        let cipher = self.cipher(id)?;
        let blob = URL_SAFE_NO_PAD
            .decode(blob)
            .map_err(|_| Error::Internal("stored secret is not base64".to_owned()))?;
        if blob.len() < NONCE_LEN {
            return Err(Error::Internal("stored secret is truncated".to_owned()));
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: row,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| Error::Internal("stored secret does not decrypt".to_owned()))
    }

    fn cipher(&self, id: &str) -> Result<Aes256Gcm> {
        let key = self.keys.get(id).ok_or_else(|| {
            Error::Internal(format!("stored secret uses unknown encryption key {id:?}"))
        })?;
        Aes256Gcm::new_from_slice(key.as_slice())
            .map_err(|_| Error::Internal("bad encryption key length".to_owned()))
    }
}

fn validate_key_id(id: &str) -> Result<&str> {
    let ok = !id.is_empty()
        && id.len() <= MAX_KEY_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(id)
    } else {
        Err(Error::validation(format!(
            "encryption key ids are 1 to {MAX_KEY_ID_LEN} letters, digits, '-' or '_'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        STANDARD.encode([byte; 32])
    }

    #[test]
    fn round_trip_is_bound_to_the_row() {
        let ring = Keyring::parse(&format!("a:{}", key(1)), None).unwrap();
        let stored = ring.encrypt(b"s3cret", b"row-1").unwrap();
        assert!(stored.starts_with("a:"));
        assert!(!stored.contains("s3cret"));
        assert_eq!(
            ring.decrypt(&stored, b"row-1").unwrap().as_slice(),
            b"s3cret"
        );
        assert!(ring.decrypt(&stored, b"row-2").is_err());
        // A fresh nonce each time.
        assert_ne!(stored, ring.encrypt(b"s3cret", b"row-1").unwrap());
    }

    #[test]
    fn old_keys_keep_decrypting_after_a_new_one_is_current() {
        let old = Keyring::parse(&format!("a:{}", key(1)), None).unwrap();
        let stored = old.encrypt(b"x", b"r").unwrap();
        let both = Keyring::parse(&format!("a:{},b:{}", key(1), key(2)), Some("b")).unwrap();
        assert_eq!(both.decrypt(&stored, b"r").unwrap().as_slice(), b"x");
        assert!(both.encrypt(b"x", b"r").unwrap().starts_with("b:"));
        let other = Keyring::parse(&format!("b:{}", key(2)), None).unwrap();
        assert!(!other.knows(&stored));
        assert!(other.decrypt(&stored, b"r").is_err());
    }

    #[test]
    fn bad_configuration_is_refused_without_echoing_keys() {
        for (keys, current) in [
            ("", None),
            ("a", None),
            ("a:notbase64!", None),
            ("a:AAAA", None),
            (&*format!("a:{},b:{}", key(1), key(2)), None),
            (&*format!("a:{}", key(1)), Some("zz")),
            (&*format!("a:{},a:{}", key(1), key(2)), Some("a")),
            (&*format!("bad id:{}", key(1)), None),
        ] {
            let err = Keyring::parse(keys, current).unwrap_err().to_string();
            assert!(!err.contains(&key(1)) && !err.contains(&key(2)), "{err}");
        }
    }

    #[test]
    fn the_key_file_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = Keyring::load_or_create(dir.path()).unwrap();
        let stored = first.encrypt(b"x", b"r").unwrap();
        let again = Keyring::load_or_create(dir.path()).unwrap();
        assert_eq!(again.decrypt(&stored, b"r").unwrap().as_slice(), b"x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let file = std::fs::read_to_string(dir.path().join(KEY_FILE)).unwrap();
        let (_, key_text) = file.trim().split_once(':').unwrap();
        assert!(!format!("{first:?}").contains(key_text));
    }
}
