//! Stripe's webhook signature scheme, as Stripe publishes it: the `Stripe-Signature`
//! header carries `t=<unix seconds>` and one or more `v1=<hex>` values, each an
//! HMAC-SHA256 of `"{t}.{raw body}"` under an endpoint secret (two while a secret is being
//! rolled). One matching `v1` is enough; the time must be within the tolerance either
//! way, which stops the replay of an old, validly signed event.
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{Error, Result};

/// How far `t` may be from now, in seconds, either way (Stripe's default).
pub const TOLERANCE_SECS: i64 = 300;

/// Checks `header` against `payload` and `secret` at `now` (unix seconds). Every failure
/// is [`Error::BadRequest`] with a short reason that reveals nothing about the secret.
pub(crate) fn verify(secret: &[u8], header: &str, payload: &[u8], now: i64) -> Result<()> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            // Not hex: it cannot match, and is skipped like any other scheme's value.
            Some(("v1", value)) => signatures.extend(hex::decode(value).ok()),
            _ => {}
        }
    }
    let Some(timestamp) = timestamp else {
        return Err(Error::BadRequest(
            "Stripe-Signature has no timestamp".to_owned(),
        ));
    };
    if signatures.is_empty() {
        return Err(Error::BadRequest(
            "Stripe-Signature has no v1 signature".to_owned(),
        ));
    }
    if (now - timestamp).abs() > TOLERANCE_SECS {
        return Err(Error::BadRequest(
            "the signature's timestamp is outside the tolerance".to_owned(),
        ));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret)
        .map_err(|_| Error::Internal("the webhook secret cannot key an HMAC".to_owned()))?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    // `verify_slice` compares in constant time: how much of a guess matches never shows
    // in the answer's timing.
    if signatures
        .iter()
        .any(|candidate| mac.clone().verify_slice(candidate).is_ok())
    {
        Ok(())
    } else {
        Err(Error::BadRequest(
            "no signature matches this endpoint's secret".to_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], t: i64, payload: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(payload);
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn accepts_any_matching_v1_within_the_tolerance() {
        let body = br#"{"id":"evt_1"}"#;
        let good = sign(b"whsec_new", 1000, body);
        let old = sign(b"whsec_old", 1000, body);
        let header = format!("t=1000,v1={old},v1={good},v0=abc");
        assert!(verify(b"whsec_new", &header, body, 1000).is_ok());
        assert!(verify(b"whsec_old", &header, body, 1299).is_ok());
        assert!(verify(b"whsec_new", &header, body, 700).is_ok());
    }

    #[test]
    fn refuses_stale_future_wrong_and_malformed() {
        let body = br#"{"id":"evt_1"}"#;
        let good = sign(b"whsec", 1000, body);
        let header = format!("t=1000,v1={good}");
        for (secret, header, body, now) in [
            (&b"whsec"[..], header.as_str(), &body[..], 1301),
            (b"whsec", header.as_str(), body, 699),
            (b"other", header.as_str(), body, 1000),
            (b"whsec", header.as_str(), br#"{"id":"evt_2"}"#, 1000),
            (b"whsec", "v1=00", body, 1000),
            (b"whsec", "t=1000", body, 1000),
            (b"whsec", "t=abc,v1=zz", body, 1000),
            (b"whsec", "", body, 1000),
        ] {
            assert!(
                matches!(verify(secret, header, body, now), Err(Error::BadRequest(_))),
                "{header} at {now}"
            );
        }
    }
}
