//! Slack request verification: `X-Slack-Signature` = `v0=` + HMAC-SHA256 of
//! `v0:{timestamp}:{raw body}` with the signing secret, compared in constant time; timestamps
//! more than `slack.max_clock_skew_secs` off are replays.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use crate::problem::Problem;

/// Why a request is not from Slack. Never includes the secret or the expected signature.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing X-Slack-Request-Timestamp or X-Slack-Signature header")]
    MissingHeaders,
    #[error("X-Slack-Request-Timestamp is not a Unix time")]
    BadTimestamp,
    #[error("request timestamp is {0} s from now (more than the allowed skew): possible replay")]
    Stale(i64),
    #[error("signature does not match")]
    BadSignature,
}

/// `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}`.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// Check a request's signature and freshness.
pub fn verify(
    secret: &SecretString,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
    max_skew: u64,
) -> Result<(), VerifyError> {
    let ts = headers
        .get("x-slack-request-timestamp")
        .and_then(|v| v.to_str().ok());
    let sig = headers
        .get("x-slack-signature")
        .and_then(|v| v.to_str().ok());
    let (Some(ts), Some(sig)) = (ts, sig) else {
        return Err(VerifyError::MissingHeaders);
    };
    let t: i64 = ts.trim().parse().map_err(|_| VerifyError::BadTimestamp)?;
    let skew = now - t;
    if skew.unsigned_abs() > max_skew {
        return Err(VerifyError::Stale(skew));
    }
    let expected = sign(secret.expose_secret(), ts.trim(), body);
    // Compare the MACs themselves (constant time), not strings.
    let given = sig
        .trim()
        .strip_prefix("v0=")
        .and_then(|h| hex::decode(h).ok())
        .unwrap_or_default();
    let want = hex::decode(&expected[3..]).unwrap_or_default();
    if given.len() == want.len()
        && bool::from(subtle::ConstantTimeEq::ct_eq(
            given.as_slice(),
            want.as_slice(),
        ))
    {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}

pub(super) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

pub(super) fn unauthorized(e: &VerifyError) -> Response {
    tracing::warn!(reason = %e, "rejected a Slack request");
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "slack-unverified",
        "Not a verified Slack request",
        e.to_string(),
    )
    .into_response()
}
