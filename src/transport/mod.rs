//! Publishing, subscribing and services on ROS 2 topics, behind one interface with
//! interchangeable backends.
//!
//! The [`Transport`] trait is all that node code uses. The default backend,
//! [`dds::DdsNode`], speaks DDS directly through the pure-Rust `ros2-client` crate, so it
//! needs no ROS 2 installation and still appears on the wire as a ROS 2 node: topic `x`
//! becomes the DDS topic `rt/x`, and message types use the DDS names that ROS 2
//! middlewares register (`sensor_msgs::msg::dds_::JointState_`).
//!
//! Backends deliver received messages through bounded queues sized by the topic's QoS
//! depth. Only the waiting calls ([`Subscribe::recv_timeout`], [`CallService::call`])
//! block the caller's thread for long; a reliable publish waits at most 100 ms for space
//! in a full send window. This module must not depend on
//! the learning code; it only moves [`crate::msg`] types.

pub mod config;
pub mod dds;
mod queue;
#[cfg(feature = "r2r")]
pub mod r2r;

use std::time::Duration;

use thiserror::Error;

use crate::msg::{RosMessage, RosService};

pub use config::{Durability, History, NodeConfig, QosConfig, Reliability};

/// Errors of the transports.
#[derive(Debug, Error)]
pub enum TransportError {
    /// A node or QoS setting is out of range.
    #[error("invalid transport setting {field} = {value:?}: expected {expected}")]
    InvalidConfig {
        /// The setting's name.
        field: &'static str,
        /// The rejected value.
        value: String,
        /// Accepted values of the setting.
        expected: &'static str,
    },
    /// A topic or service name is not a valid ROS 2 name.
    #[error(
        "invalid ROS name {name:?}: expected `/`-separated tokens of letters, digits and \
         underscores, each not starting with a digit"
    )]
    InvalidName {
        /// The rejected name.
        name: String,
    },
    /// The middleware failed to create a node, topic, publisher, subscription or service.
    #[error("failed to create {entity}: {detail}")]
    Create {
        /// Kind and name of the entity being created.
        entity: String,
        /// The middleware's error.
        detail: String,
    },
    /// Publishing or sending a request or response failed.
    #[error("failed to send on {topic}: {detail}")]
    Send {
        /// Topic or service name.
        topic: String,
        /// The middleware's error.
        detail: String,
    },
    /// No response arrived in time.
    #[error("service {service} timed out after {timeout_secs} s: is a server running?")]
    Timeout {
        /// Service name.
        service: String,
        /// The waited time in seconds.
        timeout_secs: f64,
    },
    /// The background task that serves a subscription or service stopped.
    #[error("{topic}: the receiving task stopped, so no more messages will arrive")]
    Closed {
        /// Topic or service name.
        topic: String,
    },
}

/// Sends messages of type `M` on one topic.
pub trait Publish<M: RosMessage>: Send {
    /// Publishes one message. With reliable QoS this may wait briefly when the send
    /// window is full.
    fn publish(&self, message: M) -> Result<(), TransportError>;

    /// Returns the absolute topic name.
    fn topic(&self) -> &str;
}

/// Receives messages of type `M` from one topic.
pub trait Subscribe<M: RosMessage>: Send {
    /// Returns the oldest queued message, or `None` when the queue is empty.
    fn try_recv(&self) -> Result<Option<M>, TransportError>;

    /// Waits up to `timeout` for a message; `None` when none arrived in time.
    fn recv_timeout(&self, timeout: Duration) -> Result<Option<M>, TransportError>;

    /// Returns the number of messages dropped because the queue was full (keep-last
    /// history drops the oldest) or because they failed to deserialize.
    fn dropped_count(&self) -> u64;

    /// Returns the absolute topic name.
    fn topic(&self) -> &str;
}

/// Calls a service of type `S`.
pub trait CallService<S: RosService>: Send {
    /// Sends `request` and waits up to `timeout` for the response.
    fn call(&self, request: S::Request, timeout: Duration) -> Result<S::Response, TransportError>;
}

/// A ROS 2 node: creates publishers, subscriptions and services on one graph.
///
/// Topic and service names are ROS names; relative ones resolve against the node's
/// namespace (see [`NodeConfig::resolve`]).
pub trait Transport {
    /// Publisher handle. Dropping it removes the publisher from the graph.
    type Publisher<M: RosMessage>: Publish<M>;
    /// Subscription handle. Dropping it stops delivery.
    type Subscription<M: RosMessage>: Subscribe<M>;
    /// Service server handle. Dropping it stops serving.
    type ServiceServer<S: RosService>: Send;
    /// Service client handle.
    type ServiceClient<S: RosService>: CallService<S>;

    /// Creates a publisher of `M` on `topic`.
    fn create_publisher<M: RosMessage>(
        &mut self,
        topic: &str,
        qos: &QosConfig,
    ) -> Result<Self::Publisher<M>, TransportError>;

    /// Creates a subscription to `M` on `topic`.
    fn create_subscription<M: RosMessage>(
        &mut self,
        topic: &str,
        qos: &QosConfig,
    ) -> Result<Self::Subscription<M>, TransportError>;

    /// Serves `service` on a background thread, answering each request with `handler`.
    fn create_service_server<S, F>(
        &mut self,
        service: &str,
        handler: F,
    ) -> Result<Self::ServiceServer<S>, TransportError>
    where
        S: RosService,
        F: FnMut(S::Request) -> S::Response + Send + 'static;

    /// Creates a client of `service`.
    fn create_service_client<S: RosService>(
        &mut self,
        service: &str,
    ) -> Result<Self::ServiceClient<S>, TransportError>;

    /// Returns how many subscriptions to `topic` this node has discovered, its own
    /// included.
    fn subscription_count(&self, topic: &str) -> Result<usize, TransportError>;

    /// Returns how many publishers on `topic` this node has discovered, its own
    /// included.
    fn publisher_count(&self, topic: &str) -> Result<usize, TransportError>;
}
