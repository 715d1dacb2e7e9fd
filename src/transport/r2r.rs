//! The native ROS 2 transport: rcl through the `r2r` crate (cargo feature `r2r`).
//!
//! For labs with a sourced ROS 2 (Humble, Jazzy): the node joins the graph through the
//! installed rmw, with ROS 2's own discovery, QoS handling and tooling.
//!
//! Standard messages (builtin_interfaces, std_msgs, sensor_msgs, geometry_msgs, nav_msgs)
//! go through r2r's typed publishers and subscriptions. The project's `clarify_msgs` types
//! are not compiled into r2r, so they go through r2r's untyped API, which converts
//! `serde_json` values with the type support library of the installed `clarify_msgs`
//! package (build `msg/` in the ROS workspace and source it). Both paths convert between
//! this crate's types and r2r's through `serde_json`, relying on equal field names.
//!
//! # Building
//!
//! A real build needs a sourced ROS 2: `cargo build --features r2r`. The feature
//! `r2r-doc-only` adds r2r's `doc-only` feature, which type-checks this module without a
//! ROS 2 installation (CI runs `cargo check --features r2r-doc-only`); that build cannot
//! link. NOTE: because of that, this backend has been type-checked only; it has not run
//! against a ROS 2 graph.
//!
//! # Limits
//!
//! - r2r 0.9.7 has no untyped service server, so [`Transport::create_service_server`]
//!   fails for the project's services; service clients work untyped.
//! - r2r exposes no subscription count, so [`Transport::subscription_count`] fails.
//! - r2r's typed publishers are not `Send`, so each one lives on its own thread and
//!   [`Publish::publish`] hands the message over a queue of the topic's depth.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded};
use futures::channel::oneshot;
use futures::executor::block_on;
use futures::{FutureExt, Stream, StreamExt, pin_mut, select};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{debug, warn};

use super::config::{Durability, History, NodeConfig, QosConfig, Reliability};
use super::queue::{self, MessageQueue};
use super::{CallService, Publish, Subscribe, Transport, TransportError};
use crate::msg::{RosMessage, RosService};

/// How long the spinner locks the node for each `spin_once`.
const SPIN_PERIOD: Duration = Duration::from_millis(5);
/// How long a publish waits for room in a full queue, as the DDS backend does.
const PUBLISH_WAIT: Duration = Duration::from_millis(100);

/// Runs `$body` with `$alias` bound to the r2r type of a standard message type name, or
/// `$fallback` for other types.
macro_rules! with_r2r_type {
    ($type_name:expr, $alias:ident => $body:expr, _ => $fallback:expr) => {
        match $type_name {
            "builtin_interfaces/msg/Time" => {
                type $alias = r2r::builtin_interfaces::msg::Time;
                $body
            }
            "builtin_interfaces/msg/Duration" => {
                type $alias = r2r::builtin_interfaces::msg::Duration;
                $body
            }
            "std_msgs/msg/Header" => {
                type $alias = r2r::std_msgs::msg::Header;
                $body
            }
            "std_msgs/msg/String" => {
                type $alias = r2r::std_msgs::msg::String;
                $body
            }
            "std_msgs/msg/Float32MultiArray" => {
                type $alias = r2r::std_msgs::msg::Float32MultiArray;
                $body
            }
            "sensor_msgs/msg/JointState" => {
                type $alias = r2r::sensor_msgs::msg::JointState;
                $body
            }
            "sensor_msgs/msg/Joy" => {
                type $alias = r2r::sensor_msgs::msg::Joy;
                $body
            }
            "geometry_msgs/msg/Twist" => {
                type $alias = r2r::geometry_msgs::msg::Twist;
                $body
            }
            "geometry_msgs/msg/Pose" => {
                type $alias = r2r::geometry_msgs::msg::Pose;
                $body
            }
            "nav_msgs/msg/Odometry" => {
                type $alias = r2r::nav_msgs::msg::Odometry;
                $body
            }
            _ => $fallback,
        }
    };
}

fn convert<A: Serialize, B: DeserializeOwned>(value: &A) -> Result<B, String> {
    let json = serde_json::to_value(value).map_err(|error| error.to_string())?;
    serde_json::from_value(json).map_err(|error| error.to_string())
}

fn r2r_qos(qos: &QosConfig) -> r2r::QosProfile {
    let profile = r2r::QosProfile::default();
    let profile = match qos.history {
        History::KeepLast => profile.keep_last(qos.depth),
        History::KeepAll => profile.keep_all(),
    };
    let profile = match qos.reliability {
        Reliability::Reliable => profile.reliable(),
        Reliability::BestEffort => profile.best_effort(),
    };
    match qos.durability {
        Durability::Volatile => profile.volatile(),
        Durability::TransientLocal => profile.transient_local(),
    }
}

type SharedNode = Arc<Mutex<r2r::Node>>;

fn lock(node: &SharedNode) -> MutexGuard<'_, r2r::Node> {
    node.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A ROS 2 node on rcl. A background thread spins it.
pub struct R2rNode {
    config: NodeConfig,
    node: SharedNode,
    stop: Arc<AtomicBool>,
    spinner: Option<JoinHandle<()>>,
}

impl R2rNode {
    /// Creates the rcl context and the node and starts spinning it.
    pub fn new(config: NodeConfig) -> Result<Self, TransportError> {
        config.validate()?;
        let create_error = |detail: String| TransportError::Create {
            entity: format!("r2r node {}", config.name),
            detail,
        };
        let context = r2r::Context::create().map_err(|e| create_error(e.to_string()))?;
        let node = r2r::Node::create(context, &config.name, &config.namespace)
            .map_err(|e| create_error(e.to_string()))?;
        let node = Arc::new(Mutex::new(node));
        let stop = Arc::new(AtomicBool::new(false));
        let spinner = {
            let node = Arc::clone(&node);
            let stop = Arc::clone(&stop);
            thread::Builder::new()
                .name(format!("r2r-spin-{}", config.name))
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        lock(&node).spin_once(SPIN_PERIOD);
                    }
                })
                .map_err(|e| create_error(format!("cannot start the spinner thread: {e}")))?
        };
        Ok(Self {
            config,
            node,
            stop,
            spinner: Some(spinner),
        })
    }

    /// Returns the node's settings.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }
}

impl Drop for R2rNode {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(spinner) = self.spinner.take()
            && spinner.join().is_err()
        {
            warn!(node = %self.config.name, "r2r spinner thread panicked");
        }
    }
}

enum PublisherInner {
    Untyped(r2r::PublisherUntyped),
    // A thread that owns the typed publisher.
    Typed {
        sender: Option<Sender<serde_json::Value>>,
        thread: Option<JoinHandle<()>>,
    },
}

/// Publisher handle of [`R2rNode`].
pub struct R2rPublisher<M: RosMessage> {
    inner: PublisherInner,
    topic: String,
    message: PhantomData<fn(M)>,
}

impl<M: RosMessage> Publish<M> for R2rPublisher<M> {
    fn publish(&self, message: M) -> Result<(), TransportError> {
        let send_error = |detail: String| TransportError::Send {
            topic: self.topic.clone(),
            detail,
        };
        let json = serde_json::to_value(&message).map_err(|e| send_error(e.to_string()))?;
        match &self.inner {
            PublisherInner::Untyped(publisher) => publisher
                .publish(json)
                .map_err(|e| send_error(e.to_string())),
            PublisherInner::Typed { sender, .. } => sender
                .as_ref()
                .ok_or_else(|| send_error("publisher closed".into()))?
                .send_timeout(json, PUBLISH_WAIT)
                .map_err(|e| send_error(format!("publisher queue: {e}"))),
        }
    }

    fn topic(&self) -> &str {
        &self.topic
    }
}

impl<M: RosMessage> Drop for R2rPublisher<M> {
    fn drop(&mut self) {
        if let PublisherInner::Typed { sender, thread } = &mut self.inner {
            drop(sender.take());
            if let Some(thread) = thread.take()
                && thread.join().is_err()
            {
                warn!(topic = %self.topic, "r2r publisher thread panicked");
            }
        }
    }
}

/// Starts a thread that creates a typed publisher of `T` and publishes what it receives.
fn spawn_typed_publisher<T>(
    node: &SharedNode,
    topic: &str,
    qos: &QosConfig,
) -> Result<PublisherInner, TransportError>
where
    T: r2r::WrappedTypesupport + DeserializeOwned + 'static,
{
    let (sender, receiver): (Sender<serde_json::Value>, Receiver<serde_json::Value>) =
        bounded(qos.depth);
    let (created, creation) = mpsc::channel();
    let node = Arc::clone(node);
    let thread_topic = topic.to_owned();
    let profile = r2r_qos(qos);
    let thread = thread::Builder::new()
        .name(format!("r2r-pub-{topic}"))
        .spawn(move || {
            let publisher = lock(&node).create_publisher::<T>(&thread_topic, profile);
            let publisher = match publisher {
                Ok(publisher) => {
                    let _ = created.send(Ok(()));
                    publisher
                }
                Err(error) => {
                    let _ = created.send(Err(error.to_string()));
                    return;
                }
            };
            for json in receiver.iter() {
                let result = serde_json::from_value::<T>(json)
                    .map_err(|e| e.to_string())
                    .and_then(|message| publisher.publish(&message).map_err(|e| e.to_string()));
                if let Err(error) = result {
                    warn!(topic = %thread_topic, %error, "r2r publish failed");
                }
            }
        })
        .map_err(|e| TransportError::Create {
            entity: format!("publisher thread for {topic}"),
            detail: e.to_string(),
        })?;
    creation
        .recv()
        .map_err(|_| "publisher thread stopped".to_owned())
        .and_then(|result| result)
        .map_err(|detail| TransportError::Create {
            entity: format!("publisher on {topic}"),
            detail,
        })?;
    Ok(PublisherInner::Typed {
        sender: Some(sender),
        thread: Some(thread),
    })
}

/// Subscription handle of [`R2rNode`].
pub struct R2rSubscription<M: RosMessage> {
    queue: Arc<MessageQueue<M>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    topic: String,
}

impl<M: RosMessage> R2rSubscription<M> {
    fn start<St, F>(
        stream: St,
        topic: String,
        qos: &QosConfig,
        convert: F,
    ) -> Result<Self, TransportError>
    where
        St: Stream + Unpin + Send + 'static,
        F: Fn(St::Item) -> Result<M, String> + Send + 'static,
    {
        let when_full = match qos.history {
            History::KeepLast => queue::WhenFull::DropOldest,
            History::KeepAll => queue::WhenFull::Wait,
        };
        let queue = Arc::new(MessageQueue::new(qos.depth, when_full));
        let (stop, stop_receiver) = oneshot::channel::<()>();
        let worker_queue = Arc::clone(&queue);
        let worker_topic = topic.clone();
        let thread = thread::Builder::new()
            .name(format!("r2r-sub-{topic}"))
            .spawn(move || {
                block_on(async {
                    let stream = stream.fuse();
                    pin_mut!(stream);
                    let mut stop = stop_receiver.fuse();
                    loop {
                        select! {
                            item = stream.next() => match item {
                                Some(item) => match convert(item) {
                                    Ok(message) => {
                                        if !worker_queue.push(message) {
                                            break;
                                        }
                                    }
                                    Err(error) => {
                                        worker_queue.count_dropped();
                                        debug!(topic = %worker_topic, %error, "dropped a message that did not convert");
                                    }
                                },
                                None => break,
                            },
                            _ = stop => break,
                        }
                    }
                });
                worker_queue.close();
            })
            .map_err(|e| TransportError::Create {
                entity: format!("receiving thread for {topic}"),
                detail: e.to_string(),
            })?;
        Ok(Self {
            queue,
            stop: Some(stop),
            thread: Some(thread),
            topic,
        })
    }

    fn closed(&self) -> TransportError {
        TransportError::Closed {
            topic: self.topic.clone(),
        }
    }
}

impl<M: RosMessage> Subscribe<M> for R2rSubscription<M> {
    fn try_recv(&self) -> Result<Option<M>, TransportError> {
        self.queue.try_pop().map_err(|()| self.closed())
    }

    fn recv_timeout(&self, timeout: Duration) -> Result<Option<M>, TransportError> {
        self.queue.pop_timeout(timeout).map_err(|()| self.closed())
    }

    fn dropped_count(&self) -> u64 {
        self.queue.dropped()
    }

    fn topic(&self) -> &str {
        &self.topic
    }
}

impl<M: RosMessage> Drop for R2rSubscription<M> {
    fn drop(&mut self) {
        self.queue.close();
        drop(self.stop.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            warn!(topic = %self.topic, "r2r subscription thread panicked");
        }
    }
}

/// Service server handle of [`R2rNode`]; see the module's limits.
pub struct R2rServiceServer<S: RosService> {
    service: PhantomData<fn(S)>,
}

/// Service client handle of [`R2rNode`], on r2r's untyped client.
pub struct R2rServiceClient<S: RosService> {
    client: r2r::ClientUntyped,
    service: String,
    types: PhantomData<fn(S)>,
}

impl<S: RosService> CallService<S> for R2rServiceClient<S> {
    fn call(&self, request: S::Request, timeout: Duration) -> Result<S::Response, TransportError> {
        let send_error = |detail: String| TransportError::Send {
            topic: self.service.clone(),
            detail,
        };
        let json = serde_json::to_value(&request).map_err(|e| send_error(e.to_string()))?;
        let response = self
            .client
            .request(json)
            .map_err(|e| send_error(e.to_string()))?;
        // A timer thread completes `expired` after the timeout.
        let (expire, expired) = oneshot::channel::<()>();
        thread::spawn(move || {
            thread::sleep(timeout);
            let _ = expire.send(());
        });
        let outcome = block_on(async {
            let response = response.fuse();
            pin_mut!(response);
            let mut expired = expired.fuse();
            select! {
                response = response => Some(response),
                _ = expired => None,
            }
        });
        match outcome {
            Some(Ok(Ok(json))) => {
                serde_json::from_value(json).map_err(|e| send_error(e.to_string()))
            }
            Some(Ok(Err(error)) | Err(error)) => Err(send_error(error.to_string())),
            None => Err(TransportError::Timeout {
                service: self.service.clone(),
                timeout_secs: timeout.as_secs_f64(),
            }),
        }
    }
}

impl Transport for R2rNode {
    type Publisher<M: RosMessage> = R2rPublisher<M>;
    type Subscription<M: RosMessage> = R2rSubscription<M>;
    type ServiceServer<S: RosService> = R2rServiceServer<S>;
    type ServiceClient<S: RosService> = R2rServiceClient<S>;

    fn create_publisher<M: RosMessage>(
        &mut self,
        topic: &str,
        qos: &QosConfig,
    ) -> Result<R2rPublisher<M>, TransportError> {
        qos.validate()?;
        let absolute = self.config.resolve(topic)?;
        let type_name = M::type_name();
        let inner = with_r2r_type!(type_name.as_str(), T => {
            spawn_typed_publisher::<T>(&self.node, &absolute, qos)?
        }, _ => {
            let publisher = lock(&self.node)
                .create_publisher_untyped(&absolute, &type_name, r2r_qos(qos))
                .map_err(|e| TransportError::Create {
                    entity: format!("publisher on {absolute} of type {type_name}"),
                    detail: e.to_string(),
                })?;
            PublisherInner::Untyped(publisher)
        });
        Ok(R2rPublisher {
            inner,
            topic: absolute,
            message: PhantomData,
        })
    }

    fn create_subscription<M: RosMessage>(
        &mut self,
        topic: &str,
        qos: &QosConfig,
    ) -> Result<R2rSubscription<M>, TransportError> {
        qos.validate()?;
        let absolute = self.config.resolve(topic)?;
        let type_name = M::type_name();
        let create_error = |detail: String| TransportError::Create {
            entity: format!("subscription to {absolute} of type {type_name}"),
            detail,
        };
        with_r2r_type!(type_name.as_str(), T => {
            let stream = lock(&self.node)
                .subscribe::<T>(&absolute, r2r_qos(qos))
                .map_err(|e| create_error(e.to_string()))?;
            R2rSubscription::start(stream, absolute.clone(), qos, |message: T| convert(&message))
        }, _ => {
            let stream = lock(&self.node)
                .subscribe_untyped(&absolute, &type_name, r2r_qos(qos))
                .map_err(|e| create_error(e.to_string()))?;
            R2rSubscription::start(stream, absolute.clone(), qos, |item: r2r::Result<serde_json::Value>| {
                let json = item.map_err(|e| e.to_string())?;
                serde_json::from_value(json).map_err(|e| e.to_string())
            })
        })
    }

    fn create_service_server<S, F>(
        &mut self,
        service: &str,
        _handler: F,
    ) -> Result<R2rServiceServer<S>, TransportError>
    where
        S: RosService,
        F: FnMut(S::Request) -> S::Response + Send + 'static,
    {
        let absolute = self.config.resolve(service)?;
        Err(TransportError::Create {
            entity: format!(
                "service server {absolute} of type {}/srv/{}",
                S::PACKAGE,
                S::NAME
            ),
            detail: "r2r 0.9.7 serves only service types compiled into it, and it has no \
                     untyped service server; serve this service with the DDS backend"
                .to_owned(),
        })
    }

    fn create_service_client<S: RosService>(
        &mut self,
        service: &str,
    ) -> Result<R2rServiceClient<S>, TransportError> {
        let absolute = self.config.resolve(service)?;
        let type_name = format!("{}/srv/{}", S::PACKAGE, S::NAME);
        let client = lock(&self.node)
            .create_client_untyped(&absolute, &type_name, r2r::QosProfile::services_default())
            .map_err(|e| TransportError::Create {
                entity: format!("service client {absolute} of type {type_name}"),
                detail: e.to_string(),
            })?;
        Ok(R2rServiceClient {
            client,
            service: absolute,
            types: PhantomData,
        })
    }

    fn subscription_count(&self, topic: &str) -> Result<usize, TransportError> {
        let absolute = self.config.resolve(topic)?;
        Err(TransportError::Create {
            entity: format!("subscription count of {absolute}"),
            detail: "r2r 0.9.7 does not expose subscription counts".to_owned(),
        })
    }

    fn publisher_count(&self, topic: &str) -> Result<usize, TransportError> {
        let absolute = self.config.resolve(topic)?;
        lock(&self.node)
            .get_publishers_info_by_topic(&absolute, false)
            .map(|publishers| publishers.len())
            .map_err(|e| TransportError::Create {
                entity: format!("publisher count of {absolute}"),
                detail: e.to_string(),
            })
    }
}
