//! Optional bearer-token authentication for the `xling.v1.Retrieval` RPCs.
//!
//! Clients send `authorization: Bearer <token>`. Only the Retrieval service is wrapped, so
//! health probes and reflection stay open (Kubernetes probes carry no credentials).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::Deserialize;
use tonic::{Request, Status};

use crate::metrics;

/// A secret string: `Debug` and `Display` never show it, so it cannot leak into logs.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

/// Checks a token given by the operator: it travels in an HTTP/2 header, so it must be
/// non-empty visible ASCII.
pub fn check_token(token: &str) -> Result<(), String> {
    if token.is_empty() {
        return Err("is empty".into());
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be visible ASCII without spaces (it is sent in a header)".into());
    }
    Ok(())
}

/// The interceptor on the Retrieval service; `None` lets every request through.
#[derive(Clone)]
pub struct BearerAuth {
    token: Option<Arc<Secret>>,
}

impl BearerAuth {
    pub fn new(token: Option<Secret>) -> Self {
        BearerAuth {
            token: token.map(Arc::new),
        }
    }

    fn allows(&self, header: Option<&[u8]>) -> bool {
        let Some(expected) = &self.token else {
            return true;
        };
        header
            .and_then(|h| h.strip_prefix(b"Bearer "))
            .is_some_and(|given| same_bytes(given, expected.expose().as_bytes()))
    }
}

impl tonic::service::Interceptor for BearerAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes());
        if self.allows(header) {
            Ok(request)
        } else {
            metrics::rejected("unauthenticated");
            Err(Status::unauthenticated(
                "missing or wrong bearer token: send the header `authorization: Bearer <token>`",
            ))
        }
    }
}

/// Compares in time that depends only on the lengths, so that response timing does not tell
/// an attacker how many leading bytes of a guess were right.
fn same_bytes(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = given.len() ^ expected.len();
    for (i, g) in given.iter().enumerate() {
        let e = expected.get(i).copied().unwrap_or(0);
        diff |= usize::from(g ^ e);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_whole_tokens() {
        assert!(same_bytes(b"abc", b"abc"));
        assert!(!same_bytes(b"abd", b"abc"));
        assert!(!same_bytes(b"ab", b"abc"));
        assert!(!same_bytes(b"abcd", b"abc"));
        assert!(!same_bytes(b"", b"abc"));
    }

    #[test]
    fn needs_the_bearer_scheme_and_the_exact_token() {
        let auth = BearerAuth::new(Some(Secret("s3cret".into())));
        assert!(auth.allows(Some(b"Bearer s3cret")));
        assert!(!auth.allows(Some(b"Bearer s3cre")));
        assert!(!auth.allows(Some(b"bearer s3cret")));
        assert!(!auth.allows(Some(b"s3cret")));
        assert!(!auth.allows(None));
        assert!(BearerAuth::new(None).allows(None));
    }

    #[test]
    fn secrets_are_redacted_and_tokens_checked() {
        let secret: Secret = "hunter2".parse().unwrap();
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert!(check_token("a b").is_err());
        assert!(check_token("").is_err());
        assert!(check_token("tok-EN_1.2").is_ok());
    }
}
