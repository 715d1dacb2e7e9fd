//! The default transport: DDS through the pure-Rust `ros2-client` crate (RustDDS).
//!
//! One [`DdsNode`] is one DDS domain participant with one ROS 2 node. It publishes the
//! node on `ros_discovery_info` (the ROS 2 graph topic), so `ros2 node list` on the same
//! domain shows it. Background threads, each running a `futures` executor:
//!
//! - the node's spinner, which tracks discovery and serves the node's parameter services;
//! - one per subscription, moving received messages into the subscription's queue;
//! - one per service server, calling its handler.
//!
//! Every thread stops when its handle is dropped. `ros2-client`'s message streams must be
//! pinned before polling, and a message published with volatile durability before
//! discovery matched a subscription is lost: wait for [`Transport::subscription_count`] or
//! use transient-local durability when the first message matters.

use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use futures::executor::block_on;
use futures::{FutureExt, StreamExt, pin_mut, select};
use ros2_client::qos::{self, QosProfile, WhenFull};
use ros2_client::{
    Context, MessageTypeName, Name, NodeName, NodeOptions, ServiceMapping, ServiceTypeName,
};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use super::config::{Durability, History, NodeConfig, QosConfig, Reliability};
use super::queue::{self, MessageQueue};
use super::{CallService, Publish, Subscribe, Transport, TransportError};
use crate::msg::{RosMessage, RosService};

/// Delay between checks for a service response.
const RESPONSE_POLL_INTERVAL: Duration = Duration::from_millis(2);

/// A ROS 2 node on DDS.
pub struct DdsNode {
    config: NodeConfig,
    // Dropped in Drop before the spinner thread is joined: dropping the node signals the
    // spinner to stop.
    node: Option<ros2_client::Node>,
    spinner: Option<JoinHandle<()>>,
    context: Context,
    // Node names announced on `ros_discovery_info` by other participants, by participant.
    remote_nodes: RemoteNodes,
    service_mapping: ServiceMapping,
}

impl DdsNode {
    /// Creates the domain participant and the node and starts the node's spinner.
    ///
    /// DDS discovery starts at once, on UDP multicast and unicast ports derived from the
    /// domain id.
    pub fn new(config: NodeConfig) -> Result<Self, TransportError> {
        config.validate()?;
        let create_error = |detail: String| TransportError::Create {
            entity: format!("DDS node {}{}", namespace_prefix(&config), config.name),
            detail,
        };

        let options = ros2_client::ContextOptions::new().domain_id(config.domain_id);
        let context = Context::with_options(options).map_err(|e| create_error(e.to_string()))?;
        let node_name = NodeName::new(&config.namespace, &config.name)
            .map_err(|e| create_error(format!("{e:?}")))?;
        let mut node = context
            .new_node(node_name, NodeOptions::new().enable_rosout(false))
            .map_err(|e| create_error(format!("{e:?}")))?;

        let spinner = node.spinner().map_err(|e| create_error(e.to_string()))?;
        // The receiver exists only once the node has a spinner.
        let events = node
            .status_receiver()
            .ok_or_else(|| create_error("node has no spinner".to_owned()))?;
        let remote_nodes = Arc::new(Mutex::new(BTreeMap::new()));
        let spinner_nodes = Arc::clone(&remote_nodes);
        let spinner_thread = thread::Builder::new()
            .name(format!("dds-spin-{}", config.name))
            .spawn(move || spin_and_track_nodes(spinner, events, &spinner_nodes))
            .map_err(|e| create_error(format!("cannot start the spinner thread: {e}")))?;

        info!(
            node = %node.fully_qualified_name(),
            domain_id = config.domain_id,
            "DDS node started"
        );
        Ok(Self {
            config,
            node: Some(node),
            spinner: Some(spinner_thread),
            context,
            remote_nodes,
            service_mapping: ServiceMapping::Enhanced,
        })
    }

    /// Sets how services map onto DDS topics for servers and clients created afterwards.
    ///
    /// The default, `Enhanced`, is the mapping that ros2-client 0.12 documents for ROS 2
    /// on eProsima Fast DDS, and `Cyclone` the one for rmw_cyclonedds.
    /// NOTE: services are tested only between two nodes of this crate, not against a
    /// ROS 2 service server or client.
    pub fn with_service_mapping(mut self, mapping: ServiceMapping) -> Self {
        self.service_mapping = mapping;
        self
    }

    /// Returns the node's settings.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Returns the fully qualified node name, for example `/robot1/clarify`.
    pub fn fully_qualified_name(&self) -> String {
        format!("{}{}", namespace_prefix(&self.config), self.config.name)
    }

    /// Returns the names of the ROS 2 nodes (`/namespace/name`) on the domain: this
    /// participant's own and those that other participants announced on
    /// `ros_discovery_info`, sorted and without duplicates.
    pub fn discovered_node_names(&self) -> Vec<String> {
        let local = self.context.participant_entities_info();
        let mut names: BTreeSet<String> = local
            .nodes()
            .iter()
            .map(|node| node.fully_qualified_name())
            .collect();
        let remote = self.remote_nodes.lock().unwrap_or_else(|p| p.into_inner());
        names.extend(remote.values().flatten().cloned());
        names.into_iter().collect()
    }

    fn node_mut(&mut self) -> &mut ros2_client::Node {
        // The node is only taken in Drop.
        self.node.as_mut().expect("DdsNode used after drop")
    }

    fn node(&self) -> &ros2_client::Node {
        self.node.as_ref().expect("DdsNode used after drop")
    }

    fn create_topic<M: RosMessage>(
        &self,
        topic: &str,
        qos: &QosConfig,
    ) -> Result<(String, ros2_client::dds::rustdds::Topic), TransportError> {
        qos.validate()?;
        let absolute = self.config.resolve(topic)?;
        let name = Name::parse(&absolute).map_err(|_| TransportError::InvalidName {
            name: topic.to_owned(),
        })?;
        let type_name = MessageTypeName::new(M::PACKAGE, M::NAME);
        let dds_topic = self
            .node()
            .create_topic(&name, type_name, &qos_profile(qos))
            .map_err(|e| TransportError::Create {
                entity: format!("topic {absolute} of type {}", M::type_name()),
                detail: e.to_string(),
            })?;
        Ok((absolute, dds_topic))
    }
}

impl Drop for DdsNode {
    fn drop(&mut self) {
        drop(self.node.take());
        if let Some(spinner) = self.spinner.take()
            && spinner.join().is_err()
        {
            warn!(node = %self.fully_qualified_name(), "DDS spinner thread panicked");
        }
        debug!(node = %self.fully_qualified_name(), "DDS node stopped");
    }
}

fn namespace_prefix(config: &NodeConfig) -> String {
    if config.namespace == "/" {
        "/".to_owned()
    } else {
        format!("{}/", config.namespace)
    }
}

type RemoteNodes = Arc<Mutex<BTreeMap<ros2_client::Gid, Vec<String>>>>;

/// Runs the node's spinner and records the node names in its `ros_discovery_info` events,
/// until the spinner stops (when the node is dropped).
fn spin_and_track_nodes(
    spinner: ros2_client::Spinner,
    events: impl futures::Stream<Item = ros2_client::NodeEvent>,
    remote_nodes: &RemoteNodes,
) {
    let track = async {
        let events = events.fuse();
        pin_mut!(events);
        while let Some(event) = events.next().await {
            if let ros2_client::NodeEvent::ParticipantEntities(info) = event {
                let names = info
                    .nodes()
                    .iter()
                    .map(|n| n.fully_qualified_name())
                    .collect();
                let mut map = remote_nodes.lock().unwrap_or_else(|p| p.into_inner());
                map.insert(info.gid(), names);
            }
        }
    };
    block_on(async {
        let spin = spinner.spin().fuse();
        let track = track.fuse();
        pin_mut!(spin, track);
        select! {
            result = spin => if let Err(error) = result {
                warn!(%error, "DDS node spinner stopped with an error; graph events and parameter services are unavailable");
            },
            () = track => {}
        }
    });
}

/// Converts a QoS setting to `ros2-client`'s profile. A reliable publisher whose send
/// window is full waits up to 100 ms, `ros2-client`'s default, and then fails.
fn qos_profile(qos: &QosConfig) -> QosProfile {
    let reliability = match qos.reliability {
        Reliability::Reliable => qos::Reliability::Reliable {
            when_full: WhenFull::DEFAULT,
        },
        Reliability::BestEffort => qos::Reliability::BestEffort,
    };
    let durability = match qos.durability {
        Durability::Volatile => qos::Durability::Volatile,
        Durability::TransientLocal => qos::Durability::TransientLocal,
    };
    let history = match qos.history {
        History::KeepLast => qos::History::KeepLast { depth: qos.depth },
        History::KeepAll => qos::History::KeepAll,
    };
    QosProfile::publisher_default()
        .reliability(reliability)
        .durability(durability)
        .history(history)
}

/// A message as `ros2-client`'s service API needs it: that API requires its own
/// `Message` trait, which this wrapper implements for every serde message type.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(transparent)]
struct Wire<M>(M);

impl<M: RosMessage> ros2_client::Message for Wire<M> {}

/// Publisher handle of [`DdsNode`].
pub struct DdsPublisher<M: RosMessage> {
    inner: ros2_client::Publisher<M>,
    topic: String,
}

impl<M: RosMessage> Publish<M> for DdsPublisher<M> {
    fn publish(&self, message: M) -> Result<(), TransportError> {
        self.inner
            .publish(message)
            .map_err(|error| TransportError::Send {
                topic: self.topic.clone(),
                detail: format!("{error:?}"),
            })
    }

    fn topic(&self) -> &str {
        &self.topic
    }
}

/// A background thread that stops when its stop sender is dropped.
struct Worker {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    fn spawn<F>(name: String, body: F) -> std::io::Result<Self>
    where
        F: FnOnce(oneshot::Receiver<()>) + Send + 'static,
    {
        let (stop, stop_receiver) = oneshot::channel();
        let thread = thread::Builder::new()
            .name(name)
            .spawn(move || body(stop_receiver))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    fn stop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            warn!("DDS transport thread panicked");
        }
    }
}

/// Subscription handle of [`DdsNode`].
pub struct DdsSubscription<M: RosMessage> {
    queue: Arc<MessageQueue<M>>,
    worker: Worker,
    topic: String,
}

impl<M: RosMessage> DdsSubscription<M> {
    fn start(
        subscription: ros2_client::Subscription<M>,
        topic: String,
        qos: &QosConfig,
    ) -> Result<Self, TransportError> {
        let when_full = match qos.history {
            History::KeepLast => queue::WhenFull::DropOldest,
            History::KeepAll => queue::WhenFull::Wait,
        };
        let queue = Arc::new(MessageQueue::new(qos.depth, when_full));

        let worker_queue = Arc::clone(&queue);
        let worker_topic = topic.clone();
        let worker = Worker::spawn(format!("dds-sub-{topic}"), move |stop| {
            receive_into_queue(&subscription, &worker_queue, &worker_topic, stop);
            worker_queue.close();
        })
        .map_err(|e| TransportError::Create {
            entity: format!("receiving thread for {topic}"),
            detail: e.to_string(),
        })?;
        Ok(Self {
            queue,
            worker,
            topic,
        })
    }

    fn closed(&self) -> TransportError {
        TransportError::Closed {
            topic: self.topic.clone(),
        }
    }
}

/// Moves messages from a DDS reader into `queue` until `stop` fires or the queue closes.
fn receive_into_queue<M: RosMessage>(
    subscription: &ros2_client::Subscription<M>,
    queue: &MessageQueue<M>,
    topic: &str,
    stop: oneshot::Receiver<()>,
) {
    let mut failures = 0_u64;
    block_on(async {
        let stream = subscription.async_stream();
        pin_mut!(stream);
        let mut stop = stop.fuse();
        loop {
            select! {
                item = stream.next() => match item {
                    Some(Ok((message, _info))) => {
                        if !queue.push(message) {
                            break;
                        }
                    }
                    Some(Err(error)) => {
                        queue.count_dropped();
                        failures += 1;
                        // Rate-limited: the first failure and then every 100th.
                        if failures % 100 == 1 {
                            warn!(topic, %error, failures, "dropped a message that failed to deserialize");
                        }
                    }
                    None => break,
                },
                _ = stop => break,
            }
        }
    });
}

impl<M: RosMessage> Subscribe<M> for DdsSubscription<M> {
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

impl<M: RosMessage> Drop for DdsSubscription<M> {
    fn drop(&mut self) {
        // Closing first wakes a receiving thread that waits for queue space.
        self.queue.close();
        self.worker.stop();
    }
}

/// Service server handle of [`DdsNode`]. Dropping it stops serving.
pub struct DdsServiceServer<S: RosService> {
    worker: Worker,
    service: PhantomData<S>,
}

impl<S: RosService> Drop for DdsServiceServer<S> {
    fn drop(&mut self) {
        self.worker.stop();
    }
}

type ServerOf<S> =
    ros2_client::Server<Wire<<S as RosService>::Request>, Wire<<S as RosService>::Response>>;
type ClientOf<S> =
    ros2_client::Client<Wire<<S as RosService>::Request>, Wire<<S as RosService>::Response>>;

fn serve_requests<S, F>(
    server: &ServerOf<S>,
    name: &str,
    mut handler: F,
    stop: oneshot::Receiver<()>,
) where
    S: RosService,
    F: FnMut(S::Request) -> S::Response,
{
    block_on(async {
        let requests = server.receive_request_stream();
        pin_mut!(requests);
        let mut stop = stop.fuse();
        loop {
            select! {
                item = requests.next() => match item {
                    Some(Ok((request_id, Wire(request)))) => {
                        let response = handler(request);
                        if let Err(error) = server.async_send_response(request_id, Wire(response)).await {
                            warn!(service = name, ?error, "failed to send a service response");
                        }
                    }
                    Some(Err(error)) => {
                        warn!(service = name, %error, "dropped a service request that failed to deserialize");
                    }
                    None => break,
                },
                _ = stop => break,
            }
        }
    });
}

/// Service client handle of [`DdsNode`].
pub struct DdsServiceClient<S: RosService> {
    inner: ClientOf<S>,
    service: String,
}

impl<S: RosService> CallService<S> for DdsServiceClient<S> {
    fn call(&self, request: S::Request, timeout: Duration) -> Result<S::Response, TransportError> {
        let deadline = Instant::now() + timeout;
        let send_error = |detail: String| TransportError::Send {
            topic: self.service.clone(),
            detail,
        };
        let request_id = self
            .inner
            .send_request(Wire(request))
            .map_err(|e| send_error(format!("{e:?}")))?;

        // The client reader may also hold responses to other clients' requests on the same
        // service, so each response is checked against the request id.
        while Instant::now() < deadline {
            match self.inner.receive_response() {
                Ok(Some((id, Wire(response)))) if id == request_id => return Ok(response),
                Ok(Some(_)) => continue,
                Ok(None) => thread::sleep(RESPONSE_POLL_INTERVAL),
                Err(error) => {
                    warn!(service = %self.service, %error, "dropped a service response that failed to deserialize");
                }
            }
        }
        Err(TransportError::Timeout {
            service: self.service.clone(),
            timeout_secs: timeout.as_secs_f64(),
        })
    }
}

impl DdsNode {
    fn service_names<S: RosService>(
        &self,
        service: &str,
    ) -> Result<(String, Name, ServiceTypeName), TransportError> {
        let absolute = self.config.resolve(service)?;
        let name = Name::parse(&absolute).map_err(|_| TransportError::InvalidName {
            name: service.to_owned(),
        })?;
        Ok((absolute, name, ServiceTypeName::new(S::PACKAGE, S::NAME)))
    }
}

/// Services use the ROS 2 default service profile: reliable, volatile, keep last 10.
fn service_qos() -> QosProfile {
    qos_profile(&QosConfig::default())
}

impl Transport for DdsNode {
    type Publisher<M: RosMessage> = DdsPublisher<M>;
    type Subscription<M: RosMessage> = DdsSubscription<M>;
    type ServiceServer<S: RosService> = DdsServiceServer<S>;
    type ServiceClient<S: RosService> = DdsServiceClient<S>;

    fn create_publisher<M: RosMessage>(
        &mut self,
        topic: &str,
        qos: &QosConfig,
    ) -> Result<DdsPublisher<M>, TransportError> {
        let (absolute, dds_topic) = self.create_topic::<M>(topic, qos)?;
        let inner = self
            .node_mut()
            .create_publisher::<M>(&dds_topic, None)
            .map_err(|e| TransportError::Create {
                entity: format!("publisher on {absolute}"),
                detail: e.to_string(),
            })?;
        debug!(topic = %absolute, type_name = %M::type_name(), "created publisher");
        Ok(DdsPublisher {
            inner,
            topic: absolute,
        })
    }

    fn create_subscription<M: RosMessage>(
        &mut self,
        topic: &str,
        qos: &QosConfig,
    ) -> Result<DdsSubscription<M>, TransportError> {
        let (absolute, dds_topic) = self.create_topic::<M>(topic, qos)?;
        let inner = self
            .node_mut()
            .create_subscription::<M>(&dds_topic, None)
            .map_err(|e| TransportError::Create {
                entity: format!("subscription to {absolute}"),
                detail: e.to_string(),
            })?;
        debug!(topic = %absolute, type_name = %M::type_name(), "created subscription");
        DdsSubscription::start(inner, absolute, qos)
    }

    fn create_service_server<S, F>(
        &mut self,
        service: &str,
        handler: F,
    ) -> Result<DdsServiceServer<S>, TransportError>
    where
        S: RosService,
        F: FnMut(S::Request) -> S::Response + Send + 'static,
    {
        let (absolute, name, type_name) = self.service_names::<S>(service)?;
        let mapping = self.service_mapping;
        let server: ServerOf<S> = self
            .node_mut()
            .create_server(mapping, &name, &type_name, service_qos(), service_qos())
            .map_err(|e| TransportError::Create {
                entity: format!("service server {absolute}"),
                detail: e.to_string(),
            })?;

        let thread_name = format!("dds-srv-{absolute}");
        let worker_name = absolute.clone();
        let worker = Worker::spawn(thread_name, move |stop| {
            serve_requests::<S, F>(&server, &worker_name, handler, stop);
        })
        .map_err(|e| TransportError::Create {
            entity: format!("serving thread for {absolute}"),
            detail: e.to_string(),
        })?;
        debug!(service = %absolute, "created service server");
        Ok(DdsServiceServer {
            worker,
            service: PhantomData,
        })
    }

    fn create_service_client<S: RosService>(
        &mut self,
        service: &str,
    ) -> Result<DdsServiceClient<S>, TransportError> {
        let (absolute, name, type_name) = self.service_names::<S>(service)?;
        let mapping = self.service_mapping;
        let inner: ClientOf<S> = self
            .node_mut()
            .create_client(mapping, &name, &type_name, service_qos(), service_qos())
            .map_err(|e| TransportError::Create {
                entity: format!("service client {absolute}"),
                detail: e.to_string(),
            })?;
        Ok(DdsServiceClient {
            inner,
            service: absolute,
        })
    }

    fn subscription_count(&self, topic: &str) -> Result<usize, TransportError> {
        let absolute = self.config.resolve(topic)?;
        Ok(self.node().subscription_count(&absolute))
    }

    fn publisher_count(&self, topic: &str) -> Result<usize, TransportError> {
        let absolute = self.config.resolve(topic)?;
        Ok(self.node().publisher_count(&absolute))
    }
}
