//! Access token checks of state-changing requests.
//!
//! A client proves the token with an `Authorization: Bearer TOKEN` header or with the
//! session cookie that `POST /api/login` sets. The cookie contains a SHA-256 digest of the
//! token, not the token itself, and is `HttpOnly` and `SameSite=Strict`, so other sites can
//! neither read it nor send it along.

use axum::http::{HeaderMap, StatusCode, header};
use sha2::{Digest, Sha256};

/// Name of the session cookie.
pub(crate) const COOKIE_NAME: &str = "clarify_console_session";

/// Lifetime of the session cookie in seconds (12 hours, a long shift).
const COOKIE_MAX_AGE_SECS: u32 = 12 * 3600;

/// Denial of an unauthorized request: the status and message of the response.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Denied {
    pub(crate) status: StatusCode,
    pub(crate) message: &'static str,
}

/// Returns the session cookie value of `token`.
fn session_value(token: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"clarify console session\0")
        .chain_update(token.as_bytes())
        .finalize();
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Compares two strings in time that depends on their lengths only, through their digests.
fn same_secret(given: &str, expected: &str) -> bool {
    let given = Sha256::digest(given.as_bytes());
    let expected = Sha256::digest(expected.as_bytes());
    given
        .iter()
        .zip(expected.iter())
        .fold(0u8, |difference, (a, b)| difference | (a ^ b))
        == 0
}

/// Returns the `Set-Cookie` value that logs a client in with `token`.
pub(crate) fn login_cookie(token: &str) -> String {
    format!(
        "{COOKIE_NAME}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={COOKIE_MAX_AGE_SECS}",
        session_value(token)
    )
}

/// Returns whether `given` is the token.
pub(crate) fn token_matches(given: &str, token: &str) -> bool {
    same_secret(given, token)
}

/// Returns the value of the session cookie in `headers`, if any.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value)
}

/// Checks that `headers` carry `token` (when one is set). A missing credential gives 401,
/// a wrong one 403.
pub(crate) fn authorize(headers: &HeaderMap, token: Option<&str>) -> Result<(), Denied> {
    let Some(token) = token else {
        return Ok(());
    };
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let given = value
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or(Denied {
                status: StatusCode::UNAUTHORIZED,
                message: "invalid Authorization header: expected \"Bearer\" and the access token",
            })?;
        return if same_secret(given.trim(), token) {
            Ok(())
        } else {
            Err(Denied {
                status: StatusCode::FORBIDDEN,
                message: "the access token is wrong",
            })
        };
    }
    match session_cookie(headers) {
        Some(value) if same_secret(value, &session_value(token)) => Ok(()),
        Some(_) => Err(Denied {
            status: StatusCode::FORBIDDEN,
            message: "the session cookie is not valid for this console's access token: log in again",
        }),
        None => Err(Denied {
            status: StatusCode::UNAUTHORIZED,
            message: "this console requires the access token: log in, or send it as \
                      \"Authorization: Bearer TOKEN\"",
        }),
    }
}

/// Returns whether `headers` carry a valid credential; always `true` without a token.
pub(crate) fn is_authorized(headers: &HeaderMap, token: Option<&str>) -> bool {
    authorize(headers, token).is_ok()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    const TOKEN: &str = "0123456789abcdef";

    fn headers(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).expect("header value"));
        headers
    }

    #[test]
    fn no_token_allows_all() {
        assert_eq!(authorize(&HeaderMap::new(), None), Ok(()));
    }

    #[test]
    fn missing_credential_unauthorized() {
        let denied = authorize(&HeaderMap::new(), Some(TOKEN)).expect_err("no credential");
        assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn bearer_checked() {
        let good = headers(header::AUTHORIZATION, &format!("Bearer {TOKEN}"));
        let bad = headers(header::AUTHORIZATION, "Bearer 0123456789abcdeX");
        assert_eq!(authorize(&good, Some(TOKEN)), Ok(()));
        let denied = authorize(&bad, Some(TOKEN)).expect_err("wrong token");
        assert_eq!(denied.status, StatusCode::FORBIDDEN);
    }

    #[test]
    fn login_cookie_accepted() {
        let cookie = login_cookie(TOKEN);
        let pair = cookie.split(';').next().expect("cookie pair");
        let with_cookie = headers(header::COOKIE, &format!("other=1; {pair}"));
        assert_eq!(authorize(&with_cookie, Some(TOKEN)), Ok(()));
        assert!(!cookie.contains(TOKEN), "{cookie}");
        let denied = authorize(&with_cookie, Some("fedcba9876543210")).expect_err("other token");
        assert_eq!(denied.status, StatusCode::FORBIDDEN);
    }
}
