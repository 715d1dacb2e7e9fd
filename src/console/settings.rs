//! Parameters of the operator console (`console.*` in the node's parameter file).

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

/// Environment variable read for the access token when the `console.token` parameter is
/// empty.
pub const TOKEN_ENV: &str = "CLARIFY_CONSOLE_TOKEN";

/// Shortest access token accepted, in characters.
pub const MIN_TOKEN_LENGTH: usize = 16;

/// Settings of the operator console that `clarify node` serves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleSettings {
    /// Whether the node serves the console.
    pub enabled: bool,
    /// IP address to listen on. A non-loopback address needs an access token.
    pub bind: String,
    /// TCP port to listen on; 0 picks a free port (logged at start).
    pub port: u16,
    /// Access token required on answers, undo and query leases. Empty: read from the
    /// `CLARIFY_CONSOLE_TOKEN` environment variable; empty there too: no token, which
    /// only a loopback address allows.
    pub token: String,
    /// Seconds after an answer during which its operator can undo it.
    pub undo_window_secs: f64,
    /// Seconds for which a query shown to one operator is kept from the others.
    pub lease_secs: f64,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            bind: "127.0.0.1".to_owned(),
            port: 8470,
            token: String::new(),
            undo_window_secs: 10.0,
            lease_secs: 60.0,
        }
    }
}

/// An invalid console parameter: its name, the rejected value and what is expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidSetting {
    /// Parameter name, relative to `console`.
    pub field: &'static str,
    /// The rejected value (a token is never shown).
    pub value: String,
    /// Accepted values.
    pub expected: String,
}

impl ConsoleSettings {
    /// Returns the socket address to listen on.
    pub fn address(&self) -> Result<SocketAddr, InvalidSetting> {
        let ip: IpAddr = self.bind.parse().map_err(|_| InvalidSetting {
            field: "bind",
            value: format!("{:?}", self.bind),
            expected: "an IPv4 or IPv6 address such as 127.0.0.1".to_owned(),
        })?;
        Ok(SocketAddr::new(ip, self.port))
    }

    /// Returns whether the console listens on a loopback address only.
    pub fn is_loopback(&self) -> bool {
        self.address()
            .is_ok_and(|address| address.ip().is_loopback())
    }

    /// Returns the access token: the `token` parameter, else `token_from_env` (the value of
    /// `CLARIFY_CONSOLE_TOKEN`), else `None`.
    pub fn resolve_token(&self, token_from_env: Option<String>) -> Option<String> {
        if !self.token.is_empty() {
            return Some(self.token.clone());
        }
        token_from_env.filter(|token| !token.is_empty())
    }

    /// Checks the address, the periods and the token. `token` is the resolved token; it is
    /// required unless the address is a loopback address.
    pub fn validate(&self, token: Option<&str>) -> Result<(), InvalidSetting> {
        let address = self.address()?;
        for (field, value) in [
            ("undo_window_secs", self.undo_window_secs),
            ("lease_secs", self.lease_secs),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(InvalidSetting {
                    field,
                    value: value.to_string(),
                    expected: "a positive number of seconds".to_owned(),
                });
            }
        }
        match token {
            None if !address.ip().is_loopback() => Err(InvalidSetting {
                field: "token",
                value: "\"\"".to_owned(),
                expected: format!(
                    "an access token (console.token or {TOKEN_ENV}) because console.bind {} \
                     is not a loopback address",
                    address.ip()
                ),
            }),
            Some(token) if token.chars().count() < MIN_TOKEN_LENGTH => Err(InvalidSetting {
                field: "token",
                value: format!("a token of {} characters", token.chars().count()),
                expected: format!("at least {MIN_TOKEN_LENGTH} characters"),
            }),
            Some(token) if !token.chars().all(|c| c.is_ascii_graphic()) => Err(InvalidSetting {
                field: "token",
                value: "a token with spaces or non-ASCII characters".to_owned(),
                expected: "printable ASCII characters without spaces".to_owned(),
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(bind: &str) -> ConsoleSettings {
        ConsoleSettings {
            bind: bind.to_owned(),
            ..ConsoleSettings::default()
        }
    }

    #[test]
    fn loopback_without_token_valid() {
        assert_eq!(settings("127.0.0.1").validate(None), Ok(()));
        assert_eq!(settings("::1").validate(None), Ok(()));
    }

    #[test]
    fn off_loopback_without_token_rejected() {
        let error = settings("0.0.0.0").validate(None).expect_err("no token");
        assert_eq!(error.field, "token");
        assert!(error.expected.contains("0.0.0.0"), "{}", error.expected);
    }

    #[test]
    fn short_token_rejected() {
        let error = settings("0.0.0.0")
            .validate(Some("short"))
            .expect_err("short token");
        assert_eq!(error.field, "token");
        assert!(!error.value.contains("short"), "{}", error.value);
    }

    #[test]
    fn invalid_bind_named() {
        let error = settings("localhost:80")
            .validate(None)
            .expect_err("bad bind");
        assert_eq!(error.field, "bind");
    }

    #[test]
    fn token_parameter_overrides_environment() {
        let mut console = settings("127.0.0.1");
        assert_eq!(console.resolve_token(Some(String::new())), None);
        assert_eq!(
            console.resolve_token(Some("env".to_owned())),
            Some("env".to_owned())
        );
        console.token = "parameter".to_owned();
        assert_eq!(
            console.resolve_token(Some("env".to_owned())),
            Some("parameter".to_owned())
        );
    }
}
