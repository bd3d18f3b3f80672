//! Random public codes (report short codes, embed codes) and the check that keeps anything
//! that could not be one away from the database.
use crate::error::{Error, Result};

/// Longest code the schema holds (`VARCHAR(20)`); legacy report codes are 8 or 9.
pub(crate) const MAX_LEN: usize = 20;

/// `len` characters drawn uniformly from the 62 base62 characters by a CSPRNG seeded by the
/// OS: each carries log2(62) ≈ 5.95 bits.
pub(crate) fn random(len: usize) -> Result<String> {
    use rand::SeedableRng;
    use rand::distr::{Alphanumeric, SampleString};
    let mut rng = rand::rngs::StdRng::try_from_os_rng()
        .map_err(|e| Error::Internal(format!("OS random generator failed: {e}")))?;
    Ok(Alphanumeric.sample_string(&mut rng, len))
}

/// Only something that could be a code reaches the database.
pub(crate) fn plausible(code: &str) -> bool {
    (1..=MAX_LEN).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric())
}
