//! Node and QoS settings of the transports, as plain serde structs that a parameter file
//! fills in.

use serde::{Deserialize, Serialize};

use super::TransportError;

/// Delivery guarantee of a topic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reliability {
    /// Lost samples are sent again.
    #[default]
    Reliable,
    /// Lost samples stay lost; the usual choice for high-rate sensor data.
    BestEffort,
}

/// Whether a subscription that joins late receives samples published before it joined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// Only samples published while the subscription exists are delivered, so a sample
    /// published before discovery completes is lost.
    #[default]
    Volatile,
    /// The publisher keeps its last `depth` samples for subscriptions that join later
    /// ("latched" topics). RustDDS 0.15 sometimes replays older samples as well.
    TransientLocal,
}

/// Sample retention of a publisher and a subscription.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum History {
    /// Keep the newest `depth` samples and drop older ones.
    #[default]
    KeepLast,
    /// Keep every sample; a full queue makes the publisher wait.
    KeepAll,
}

/// Quality of service of one topic.
///
/// The defaults (reliable, volatile, keep last 10) are the ROS 2 default profile
/// (`rmw_qos_profile_default`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QosConfig {
    /// Delivery guarantee.
    pub reliability: Reliability,
    /// Whether late subscriptions receive earlier samples.
    pub durability: Durability,
    /// Keep-last or keep-all history.
    pub history: History,
    /// Number of samples kept with `keep_last`, at least 1. With `keep_all` it sizes the
    /// queue between the middleware and the subscriber.
    pub depth: usize,
}

impl Default for QosConfig {
    fn default() -> Self {
        Self {
            reliability: Reliability::Reliable,
            durability: Durability::Volatile,
            history: History::KeepLast,
            depth: 10,
        }
    }
}

impl QosConfig {
    /// Returns the ROS 2 sensor-data profile: best effort, volatile, keep last 5.
    pub fn sensor_data() -> Self {
        Self {
            reliability: Reliability::BestEffort,
            depth: 5,
            ..Self::default()
        }
    }

    /// Returns a reliable, transient-local profile that keeps the last `depth` samples
    /// for late subscribers.
    pub fn latched(depth: usize) -> Self {
        Self {
            durability: Durability::TransientLocal,
            depth,
            ..Self::default()
        }
    }

    /// Checks the settings, naming the rejected field and value.
    pub fn validate(&self) -> Result<(), TransportError> {
        if self.depth == 0 {
            return Err(TransportError::InvalidConfig {
                field: "depth",
                value: "0".to_owned(),
                expected: "at least 1",
            });
        }
        Ok(())
    }
}

/// Identity of the node on the ROS 2 graph.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Node name: letters, digits and underscores, not starting with a digit.
    pub name: String,
    /// Absolute namespace, `/` for the root. Relative topic names resolve against it.
    pub namespace: String,
    /// DDS domain id (ROS_DOMAIN_ID), 0 to 232.
    pub domain_id: u16,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            name: "clarify".to_owned(),
            namespace: "/".to_owned(),
            domain_id: 0,
        }
    }
}

/// Largest usable DDS domain id. The default RTPS port mapping (7400 + 250 × domain id,
/// plus small per-participant offsets) leaves the UDP port range above this id.
pub const MAX_DOMAIN_ID: u16 = 232;

impl NodeConfig {
    /// Checks the settings, naming the rejected field and value.
    pub fn validate(&self) -> Result<(), TransportError> {
        let invalid = |field, value: &str, expected| TransportError::InvalidConfig {
            field,
            value: value.to_owned(),
            expected,
        };

        if !is_name_token(&self.name) {
            return Err(invalid(
                "name",
                &self.name,
                "letters, digits and underscores, not starting with a digit",
            ));
        }
        let namespace_ok = self.namespace == "/"
            || (self.namespace.starts_with('/')
                && self.namespace[1..].split('/').all(is_name_token));
        if !namespace_ok {
            return Err(invalid(
                "namespace",
                &self.namespace,
                "`/` or an absolute path such as `/robot1` without a trailing slash",
            ));
        }
        if self.domain_id > MAX_DOMAIN_ID {
            return Err(invalid(
                "domain_id",
                &self.domain_id.to_string(),
                "0 to 232",
            ));
        }
        Ok(())
    }

    /// Resolves a topic or service name to an absolute one: `/x` stays as it is, and a
    /// relative `x` becomes `<namespace>/x`.
    pub fn resolve(&self, name: &str) -> Result<String, TransportError> {
        let (absolute, relative) = match name.strip_prefix('/') {
            Some(rest) => (true, rest),
            None => (false, name),
        };
        if relative.is_empty() || !relative.split('/').all(is_name_token) {
            return Err(TransportError::InvalidName {
                name: name.to_owned(),
            });
        }
        if absolute {
            Ok(name.to_owned())
        } else if self.namespace == "/" {
            Ok(format!("/{relative}"))
        } else {
            Ok(format!("{}/{relative}", self.namespace))
        }
    }
}

fn is_name_token(token: &str) -> bool {
    !token.is_empty()
        && !token.starts_with(|c: char| c.is_ascii_digit())
        && token.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos_defaults_fill_missing_fields() -> Result<(), serde_json::Error> {
        let qos: QosConfig = serde_json::from_str(r#"{"durability": "transient_local"}"#)?;

        assert_eq!(qos.durability, Durability::TransientLocal);
        assert_eq!(qos.reliability, Reliability::Reliable);
        assert_eq!(qos.history, History::KeepLast);
        assert_eq!(qos.depth, 10);
        Ok(())
    }

    #[test]
    fn qos_unknown_field_and_zero_depth_rejected() -> Result<(), serde_json::Error> {
        assert!(serde_json::from_str::<QosConfig>(r#"{"reliabilty": "reliable"}"#).is_err());
        assert!(serde_json::from_str::<QosConfig>(r#"{"history": "keep_some"}"#).is_err());

        let qos: QosConfig = serde_json::from_str(r#"{"depth": 0}"#)?;
        let error = qos.validate().unwrap_err();
        assert!(error.to_string().contains("depth"), "{error}");
        Ok(())
    }

    #[test]
    fn node_config_rejects_bad_names() {
        let cases = [
            (
                "name",
                NodeConfig {
                    name: "9lives".into(),
                    ..NodeConfig::default()
                },
            ),
            (
                "name",
                NodeConfig {
                    name: "a-b".into(),
                    ..NodeConfig::default()
                },
            ),
            (
                "namespace",
                NodeConfig {
                    namespace: "robot".into(),
                    ..NodeConfig::default()
                },
            ),
            (
                "namespace",
                NodeConfig {
                    namespace: "/robot/".into(),
                    ..NodeConfig::default()
                },
            ),
            (
                "domain_id",
                NodeConfig {
                    domain_id: 233,
                    ..NodeConfig::default()
                },
            ),
        ];
        for (field, config) in cases {
            let error = config.validate().unwrap_err();
            assert!(error.to_string().contains(field), "{field}: {error}");
        }
        assert!(NodeConfig::default().validate().is_ok());
    }

    #[test]
    fn relative_names_resolve_against_namespace() -> Result<(), TransportError> {
        let root = NodeConfig::default();
        let robot = NodeConfig {
            namespace: "/robot1".into(),
            ..NodeConfig::default()
        };

        assert_eq!(root.resolve("joint_states")?, "/joint_states");
        assert_eq!(robot.resolve("joint_states")?, "/robot1/joint_states");
        assert_eq!(robot.resolve("/clock")?, "/clock");
        assert_eq!(robot.resolve("clarify/query")?, "/robot1/clarify/query");
        for bad in ["", "/", "a//b", "~/x", "a-b", "x/"] {
            assert!(robot.resolve(bad).is_err(), "{bad}");
        }
        Ok(())
    }
}
