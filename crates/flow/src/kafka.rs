//! Kafka clients of the flow. Nothing here propagates context: that is the
//! messaging boundary's job.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;

/// Where the services find Kafka, from their command line.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct KafkaArgs {
    /// Kafka bootstrap servers.
    #[arg(long = "kafka", default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Topic the orders go through.
    #[arg(long, default_value = "orders")]
    pub topic: String,
}

/// Partitions of the orders topic: two, so a consumer group has something to split.
const PARTITIONS: i32 = 2;

/// How often the consumer commits the offsets of the messages it processed:
/// what a killed consumer had processed since its last commit is delivered
/// again to the next.
pub const COMMIT_EVERY: Duration = Duration::from_secs(1);

/// How long the group waits for a silent consumer before handing its
/// partitions on. Generous: on a loaded machine a broker can answer
/// heartbeats late, and a session that times out revokes the partitions
/// mid-run. It is also how long a killed consumer's partitions stay idle.
pub const CONSUMER_SESSION_TIMEOUT: Duration = Duration::from_secs(30);

/// Creates the topic unless it exists. Some brokers (Tansu) never auto-create
/// topics, and a producer to a missing topic only times out.
pub(crate) async fn ensure_topic(bootstrap: &str, topic: &str) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap).create().context("creating the Kafka admin client")?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(&[NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1))], &options)
        .await
        .with_context(|| format!("creating topic {topic:?} on {bootstrap}: is Kafka running? (`cargo xtask up`)"))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => anyhow::bail!("creating topic {name:?} on {bootstrap}: {code}"),
        }
    }
    Ok(())
}

pub(crate) fn producer(bootstrap: &str) -> anyhow::Result<FutureProducer> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("message.timeout.ms", "5000")
        // Small batches: a workshop flow is about latency, not throughput.
        .set("linger.ms", "2")
        .create()
        .context("creating the Kafka producer")
}

/// What the group has assigned this consumer, as its rebalances say.
#[derive(Default)]
pub(crate) struct Assignment(Mutex<Assigned>);

#[derive(Default, Clone, Copy)]
enum Assigned {
    /// Before the first assignment, and after a revocation.
    #[default]
    Waiting,
    /// At least one partition: the consumer is ready.
    Partitions,
    /// No partition, since then.
    Nothing(Instant),
}

impl Assignment {
    fn get(&self) -> Assigned {
        self.0.lock().map_or(Assigned::Waiting, |assigned| *assigned)
    }

    fn set(&self, assigned: Assigned) {
        if let Ok(mut current) = self.0.lock() {
            *current = assigned;
        }
    }

    pub(crate) fn ready(&self) -> bool {
        matches!(self.get(), Assigned::Partitions)
    }

    /// How long the last assignment, an empty one, has held.
    pub(crate) fn empty_for(&self) -> Option<Duration> {
        match self.get() {
            Assigned::Nothing(since) => Some(since.elapsed()),
            Assigned::Waiting | Assigned::Partitions => None,
        }
    }
}

/// Keeps [`Assignment`] up to date from the consumer's rebalances.
pub(crate) struct AssignmentContext(Arc<Assignment>);

impl rdkafka::ClientContext for AssignmentContext {}

impl ConsumerContext for AssignmentContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                let count = partitions.count();
                tracing::info!(partitions = count, "partitions assigned");
                // The flow's only consumer of its group: an assignment of no
                // partition consumes nothing, and must not read as ready
                // (seen on Tansu after a consumer's restart).
                if count == 0 {
                    tracing::warn!("assigned no partition: not ready until the group hands this consumer one");
                }
                self.0.set(if count == 0 { Assigned::Nothing(Instant::now()) } else { Assigned::Partitions });
            }
            Rebalance::Revoke(_) => self.0.set(Assigned::Waiting),
            Rebalance::Error(err) => tracing::warn!(%err, "rebalance failed"),
        }
    }
}

pub(crate) fn consumer(
    bootstrap: &str,
    group: &str,
    assigned: Arc<Assignment>,
) -> anyhow::Result<StreamConsumer<AssignmentContext>> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        // At least once: an offset is stored once its message is processed,
        // and the stored offsets are committed every COMMIT_EVERY. A commit
        // per message kept Tansu's coordinator so busy past capacity that
        // the group's heartbeats timed out behind the commits.
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", COMMIT_EVERY.as_millis().to_string())
        // Poll often: the consumer's fetch wait is the largest share of the
        // time a request needs to become one connected trace.
        .set("fetch.wait.max.ms", "20")
        .set("session.timeout.ms", CONSUMER_SESSION_TIMEOUT.as_millis().to_string())
        .create_with_context(AssignmentContext(assigned))
        .context("creating the Kafka consumer")
}
