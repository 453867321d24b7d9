//! Console passwords and tokens: argon2id hashes in PHC form, random 256-bit tokens, and
//! the SHA-256 under which the store keeps a session's token.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// The longest: hashing is deliberately slow, so a megabyte of password is refused.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// What can go wrong with a password.
#[derive(Debug, Error)]
pub enum PasswordError {
    /// Too short or too long.
    #[error(
        "a password must have at least {MIN_PASSWORD_CHARS} characters and at most {MAX_PASSWORD_BYTES} bytes"
    )]
    Length,
    /// The system's random source failed.
    #[error("the system's random source failed: {0}")]
    Random(String),
    /// The hasher failed.
    #[error("hashing the password failed: {0}")]
    Hash(String),
}

/// Checks a new password's length.
pub fn check_new(password: &str) -> Result<(), PasswordError> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::Length);
    }
    Ok(())
}

/// The argon2id hash of `password` with a fresh random salt, in PHC string form.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    check_new(password)?;
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| PasswordError::Random(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC hash `phc` (false for a malformed hash or an
/// over-long password).
pub fn verify(password: &str, phc: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash no password is checked against in earnest: a sign-in for an unknown e-mail
/// verifies against it, so that it takes as long as one for a known e-mail.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash("decoy password, never used").unwrap_or_default())
}

/// A random 256-bit token, hex.
pub fn token() -> Result<String, PasswordError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| PasswordError::Random(e.to_string()))?;
    Ok(hex(&bytes))
}

/// The SHA-256 of `token`, hex: what the store keeps of a session's cookie.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_argon2id_and_verifies_only_its_password() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify("correct horse battery", &h));
        assert!(!verify("correct horse batterx", &h));
        assert!(!verify("correct horse battery", "not a hash"));
        assert_ne!(h, hash("correct horse battery").unwrap(), "salted");
    }

    #[test]
    fn short_and_huge_passwords_are_refused() {
        assert!(matches!(hash("short"), Err(PasswordError::Length)));
        assert!(matches!(hash(&"x".repeat(2000)), Err(PasswordError::Length)));
    }

    #[test]
    fn tokens_are_random_256_bit_hex_and_stored_hashed() {
        let (a, b) = (token().unwrap(), token().unwrap());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
    }
}
