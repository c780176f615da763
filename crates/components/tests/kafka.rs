//! Both brokers, end to end: start, create a topic, produce with headers,
//! consume in a group, commit, stop.
//!
//! The Tansu tests build `stitch-broker` with cargo (a no-op when it is
//! fresh); the Apache tests need `java` and `mvn` and download Kafka's jars
//! into the stitch cache (`~/.cache/stitch`) on their first run.

use std::{
    collections::BTreeMap,
    net::TcpListener,
    path::{Path, PathBuf},
    sync::OnceLock,
    time::{Duration, Instant},
};

use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, CommitMode, Consumer},
    message::{BorrowedHeaders, Header, Headers, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};
use stitch_components::{
    kafka::{Broker, BrokerKind, BrokerOptions, default_cache_dir, ensure_topic},
    process::{self, free_port},
};

const MESSAGES: usize = 20;
const PARTITIONS: i32 = 2;
/// Bytes that are not UTF-8 in any position.
const NOT_UTF8: &[u8] = &[0xff, 0xfe, 0x00, 0x80, 0xc3, 0x28];

/// `stitch-broker` is a workspace of its own, so `CARGO_BIN_EXE_*` cannot
/// name it; build it once per test binary (a no-op when it is fresh).
fn tansu_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            process::build_broker().expect("building stitch-broker");
            process::binary("stitch-broker")
        })
        .clone()
}

fn options(kind: BrokerKind, name: &str, port: u16) -> BrokerOptions {
    BrokerOptions {
        kind,
        port,
        work_dir: Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("kafka-{name}-{kind}-{}", std::process::id())),
        tansu_binary: match kind {
            BrokerKind::Tansu => tansu_binary(),
            BrokerKind::Apache => PathBuf::new(),
        },
        cache_dir: default_cache_dir(),
    }
}

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[derive(Debug, PartialEq, Eq)]
struct Record {
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

fn record(i: usize) -> Record {
    let trace_id = format!("{:032x}", 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736_u128 + i as u128);
    let mut headers = vec![
        ("traceparent".to_owned(), Some(format!("00-{trace_id}-00f067aa0ba902b7-01").into_bytes())),
        ("tracestate".to_owned(), Some(b"stitch=t61rcWkgMzE".to_vec())),
        ("binary".to_owned(), Some(NOT_UTF8.to_vec())),
        ("seq".to_owned(), Some(i.to_string().into_bytes())),
        ("empty".to_owned(), Some(Vec::new())),
        // Header keys may repeat; order is part of the record.
        ("baggage".to_owned(), Some(b"user=alice".to_vec())),
        ("baggage".to_owned(), Some(b"step=01".to_vec())),
    ];
    if i.is_multiple_of(5) {
        headers.push(("absent".to_owned(), None));
    }
    let mut payload = format!("order #{i} ✓ ").into_bytes();
    payload.extend_from_slice(NOT_UTF8);
    Record { key: (i != 7).then(|| format!("key-{i}").into_bytes()), payload: (i != 11).then_some(payload), headers }
}

fn headers_of(headers: Option<&BorrowedHeaders>) -> Vec<(String, Option<Vec<u8>>)> {
    headers
        .map(|headers| headers.iter().map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec))).collect())
        .unwrap_or_default()
}

fn round_trip(kind: BrokerKind) {
    let opts = options(kind, "round-trip", 0);
    let started = Instant::now();
    let broker = Broker::start(&opts).expect("broker starts");
    eprintln!("{kind}: ready in {:.1?} on {}", started.elapsed(), broker.bootstrap());
    let mut broker = broker;
    broker.check_alive().expect("broker alive");
    let pid = broker.pid();
    let port: u16 = broker.bootstrap().rsplit(':').next().unwrap().parse().unwrap();
    assert!(process_exists(pid));

    let topic = "stitch.orders";
    ensure_topic(broker.bootstrap(), topic, PARTITIONS).expect("topic created");
    // A second call finds the topic and is fine with it.
    ensure_topic(broker.bootstrap(), topic, PARTITIONS).expect("ensure_topic is idempotent");
    assert!(ensure_topic(broker.bootstrap(), topic, PARTITIONS + 1).is_err());

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("message.timeout.ms", "10000")
        .set("linger.ms", "0")
        .create()
        .unwrap();
    let sent: Vec<Record> = (0..MESSAGES).map(record).collect();
    let mut partitions_used = BTreeMap::<i32, usize>::new();
    for (i, r) in sent.iter().enumerate() {
        let mut headers = OwnedHeaders::new();
        for (key, value) in &r.headers {
            headers = headers.insert(Header { key, value: value.as_deref() });
        }
        let mut rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
        if let Some(key) = &r.key {
            rec = rec.key(key.as_slice());
        } else {
            // Null keys are spread round the partitions; pin this one so
            // the partition check below stays deterministic.
            rec = rec.partition(1);
        }
        if let Some(payload) = &r.payload {
            rec = rec.payload(payload.as_slice());
        }
        let delivery = producer.send_result(rec).map_err(|(e, _)| e).unwrap();
        let delivered = futures::executor::block_on(delivery)
            .unwrap()
            .unwrap_or_else(|(err, _)| panic!("message {i} not delivered: {err}"));
        assert!(delivered.offset >= 0);
        *partitions_used.entry(delivered.partition).or_default() += 1;
    }
    assert_eq!(partitions_used.len(), 2, "keys land on both partitions: {partitions_used:?}");
    eprintln!("{kind}: produced at {:.1?}", started.elapsed());

    let group = format!("stitch-test-{kind}-{}", std::process::id());
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", &group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut received = BTreeMap::<usize, Record>::new();
    let mut next_offsets = BTreeMap::<i32, i64>::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while received.len() < MESSAGES && Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.expect("consume");
        let got = Record {
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            headers: headers_of(message.headers()),
        };
        let seq = got
            .headers
            .iter()
            .find(|(k, _)| k == "seq")
            .and_then(|(_, v)| std::str::from_utf8(v.as_deref()?).ok()?.parse().ok())
            .expect("seq header");
        next_offsets.insert(message.partition(), message.offset() + 1);
        assert!(received.insert(seq, got).is_none(), "message {seq} delivered twice");
    }
    eprintln!("{kind}: consumed {} at {:.1?}", received.len(), started.elapsed());
    assert_eq!(received.len(), MESSAGES, "all messages consumed within 30 s");
    for (i, expected) in sent.iter().enumerate() {
        assert_eq!(&received[&i], expected, "message {i} round-trips byte for byte");
    }

    consumer.commit_consumer_state(CommitMode::Sync).expect("commit");
    drop(consumer);

    // A fresh member of the group, without joining it, reads what the
    // coordinator stored.
    let checker: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", broker.bootstrap()).set("group.id", &group).create().unwrap();
    let mut wanted = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        wanted.add_partition(topic, partition);
    }
    let committed = checker.committed_offsets(wanted, Duration::from_secs(10)).expect("committed offsets");
    for partition in 0..PARTITIONS {
        let offset = committed.find_partition(topic, partition).unwrap().offset();
        assert_eq!(offset, Offset::Offset(next_offsets[&partition]), "committed offset of partition {partition}");
    }
    let total: i64 = next_offsets.values().sum();
    assert_eq!(total, MESSAGES as i64, "offsets account for every message");
    drop(checker);
    drop(producer);

    let stopping = Instant::now();
    broker.stop();
    eprintln!("{kind}: stopped in {:.1?}", stopping.elapsed());
    assert!(!process_exists(pid), "process {pid} is gone");
    TcpListener::bind(("127.0.0.1", port)).expect("port is free again");
    // Kept when an assertion fails, for its logs.
    let _ = std::fs::remove_dir_all(&opts.work_dir);
}

fn port_in_use(kind: BrokerKind) {
    let taken = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let opts = options(kind, "port-in-use", port);
    let err = Broker::start(&opts).expect_err("a taken port is refused").to_string();
    assert!(err.contains(&port.to_string()), "{err}");
    assert!(err.contains("already in use"), "{err}");
    let _ = std::fs::remove_dir_all(&opts.work_dir);
}

#[test]
fn tansu_round_trip() {
    round_trip(BrokerKind::Tansu);
}

#[test]
fn apache_round_trip() {
    round_trip(BrokerKind::Apache);
}

#[test]
fn tansu_refuses_a_port_in_use() {
    port_in_use(BrokerKind::Tansu);
}

#[test]
fn apache_refuses_a_port_in_use() {
    port_in_use(BrokerKind::Apache);
}

#[test]
fn stitch_broker_explains_a_port_in_use() {
    let taken = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let data = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("kafka-port-taken-{}", std::process::id()));
    let output = std::process::Command::new(tansu_binary())
        .args(["--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(&data)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port} is already in use")), "{stderr}");
}

#[test]
fn stop_leaves_nothing_behind_on_drop() {
    let opts = options(BrokerKind::Tansu, "drop", free_port().unwrap());
    let broker = Broker::start(&opts).expect("broker starts");
    let pid = broker.pid();
    drop(broker);
    assert!(!process_exists(pid), "dropping a Broker kills and reaps it");
    let _ = std::fs::remove_dir_all(&opts.work_dir);
}

#[test]
fn check_alive_reports_a_broker_that_died() {
    let opts = options(BrokerKind::Tansu, "dies", 0);
    let mut broker = Broker::start(&opts).expect("broker starts");
    broker.check_alive().expect("alive after start");
    let pid = rustix::process::Pid::from_raw(broker.pid() as i32).expect("a pid");
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("SIGKILL to our own child");
    let deadline = Instant::now() + Duration::from_secs(5);
    let err = loop {
        match broker.check_alive() {
            Err(err) => break err.to_string(),
            Ok(()) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(()) => panic!("check_alive still Ok after SIGKILL"),
        }
    };
    assert!(err.contains("exited unexpectedly"), "{err}");
    assert!(err.contains("serving Kafka from SQLite"), "log tail quoted: {err}");
    drop(broker);
    let _ = std::fs::remove_dir_all(&opts.work_dir);
}

/// Produces `count` messages to `topic`, each acknowledged.
fn produce(bootstrap: &str, topic: &str, count: usize) {
    produce_keyed(bootstrap, topic, "key", count);
}

/// Produces `count` messages keyed `{prefix}-{i}` to `topic`, each acknowledged.
fn produce_keyed(bootstrap: &str, topic: &str, prefix: &str, count: usize) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("message.timeout.ms", "10000")
        .set("linger.ms", "0")
        .create()
        .unwrap();
    for i in 0..count {
        let key = format!("{prefix}-{i}");
        let delivery = producer.send_result(FutureRecord::<str, str>::to(topic).key(&key).payload("{}")).unwrap();
        futures::executor::block_on(delivery).unwrap().unwrap_or_else(|(err, _)| panic!("message {i}: {err}"));
    }
}

/// The messages `topic` holds, from its partitions' watermarks.
fn messages_held(bootstrap: &str, topic: &str) -> Result<i64, String> {
    let client: BaseConsumer = ClientConfig::new().set("bootstrap.servers", bootstrap).create().unwrap();
    let metadata = client.fetch_metadata(Some(topic), Duration::from_secs(10)).map_err(|err| err.to_string())?;
    let partitions = metadata.topics().first().map_or(0, |found| found.partitions().len()) as i32;
    if partitions == 0 {
        return Err(format!("topic {topic:?} has no partition"));
    }
    let mut total = 0;
    for partition in 0..partitions {
        let (low, high) = client
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .map_err(|err| format!("partition {partition}: {err}"))?;
        total += high - low;
    }
    Ok(total)
}

/// The topic's id, base64, as the broker's metadata gives it. rdkafka 0.39
/// does not wrap librdkafka's DescribeTopics, so this calls it directly.
fn topic_id(bootstrap: &str, topic: &str) -> Result<String, String> {
    use rdkafka::bindings as rd;
    use std::ffi::{CStr, CString};

    let client: BaseConsumer = ClientConfig::new().set("bootstrap.servers", bootstrap).create().unwrap();
    let name = CString::new(topic).unwrap();
    let text = |ptr: *const std::ffi::c_char| {
        // SAFETY: librdkafka returns NUL-terminated strings that live as
        // long as the event they came from, which outlives this call.
        unsafe { CStr::from_ptr(ptr) }.to_string_lossy().into_owned()
    };
    // SAFETY: every pointer comes from librdkafka and is used while the
    // client, the queue and the event it belongs to are alive; the queue and
    // the event are destroyed once, at the end.
    unsafe {
        let rk = client.client().native_ptr();
        let queue = rd::rd_kafka_queue_new(rk);
        let mut names = [name.as_ptr()];
        let topics = rd::rd_kafka_TopicCollection_of_topic_names(names.as_mut_ptr(), names.len());
        rd::rd_kafka_DescribeTopics(rk, topics, std::ptr::null(), queue);
        rd::rd_kafka_TopicCollection_destroy(topics);
        let event = rd::rd_kafka_queue_poll(queue, 10_000);
        let answer = if event.is_null() {
            Err("no DescribeTopics answer within 10 s".to_owned())
        } else if rd::rd_kafka_event_error(event) != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            Err(text(rd::rd_kafka_event_error_string(event)))
        } else {
            let mut count = 0;
            let descriptions =
                rd::rd_kafka_DescribeTopics_result_topics(rd::rd_kafka_event_DescribeTopics_result(event), &mut count);
            match std::slice::from_raw_parts(descriptions, count) {
                [description] if rd::rd_kafka_TopicDescription_error(*description).is_null() => {
                    Ok(text(rd::rd_kafka_Uuid_base64str(rd::rd_kafka_TopicDescription_topic_id(*description))))
                }
                [description] => {
                    Err(text(rd::rd_kafka_error_string(rd::rd_kafka_TopicDescription_error(*description))))
                }
                other => Err(format!("{} topics described, not 1", other.len())),
            }
        };
        if !event.is_null() {
            rd::rd_kafka_event_destroy(event);
        }
        rd::rd_kafka_queue_destroy(queue);
        answer
    }
}

/// The offsets `group` committed on `topic`'s partitions.
fn committed(bootstrap: &str, group: &str, topic: &str) -> Vec<Offset> {
    let checker: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", bootstrap).set("group.id", group).create().unwrap();
    let mut wanted = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        wanted.add_partition(topic, partition);
    }
    let offsets = checker.committed_offsets(wanted, Duration::from_secs(10)).expect("committed offsets");
    (0..PARTITIONS).map(|partition| offsets.find_partition(topic, partition).unwrap().offset()).collect()
}

/// A consumer of `group` on `topic`, subscribed, committing only when told.
fn group_consumer(bootstrap: &str, group: &str, topic: &str) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    consumer
}

/// Polls `consumer` until it has `count` messages or `within` has passed;
/// returns their keys.
fn consume(consumer: &BaseConsumer, count: usize, within: Duration) -> Vec<String> {
    let mut keys = Vec::new();
    let deadline = Instant::now() + within;
    while keys.len() < count && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => keys.push(String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned()),
            // While a broker restarts the client reports its connections
            // down, and reconnects on its own, as the flow's consumer does.
            Some(Err(err)) => eprintln!("consuming: {err}"),
            None => {}
        }
    }
    keys
}

/// A restart stops the process and comes back on the same port with what
/// the last process stored: the topic with its id, its messages, and the
/// group's committed offsets.
fn restart(kind: BrokerKind) {
    let opts = options(kind, "restart", 0);
    let mut broker = Broker::start(&opts).expect("broker starts");
    let bootstrap = broker.bootstrap().to_owned();
    let first_pid = broker.pid();
    let topic = "stitch.kept";
    ensure_topic(&bootstrap, topic, PARTITIONS).expect("topic created");
    produce(&bootstrap, topic, MESSAGES);
    let id = topic_id(&bootstrap, topic).expect("the topic's id");
    let group = format!("stitch-restart-{kind}-{}", std::process::id());
    let consumer = group_consumer(&bootstrap, &group, topic);
    assert_eq!(consume(&consumer, MESSAGES, Duration::from_secs(30)).len(), MESSAGES);
    consumer.commit_consumer_state(CommitMode::Sync).expect("commit");
    drop(consumer);
    let offsets = committed(&bootstrap, &group, topic);
    assert_eq!(
        offsets.iter().map(|offset| offset.to_raw().unwrap()).sum::<i64>(),
        MESSAGES as i64,
        "committed: {offsets:?}"
    );

    let restarting = Instant::now();
    broker.restart().expect("broker restarts");
    eprintln!("{kind}: restarted in {:.1?}", restarting.elapsed());
    assert_eq!(broker.bootstrap(), bootstrap, "the same address");
    assert!(!process_exists(first_pid), "the first process is gone");
    assert!(broker.log_path().ends_with(format!("kafka-{kind}.restart-1.log")), "{}", broker.log_path().display());
    assert_eq!(topic_id(&bootstrap, topic), Ok(id), "the topic keeps its id");
    assert_eq!(messages_held(&bootstrap, topic), Ok(MESSAGES as i64), "the messages are kept");
    assert_eq!(committed(&bootstrap, &group, topic), offsets, "the group's offsets are kept");
    let pid = broker.pid();
    broker.stop();
    assert!(!process_exists(pid), "the restarted process stops too");

    // A new start is a new cluster, from the same work dir.
    let broker = Broker::start(&opts).expect("broker starts again, afresh");
    assert!(messages_held(broker.bootstrap(), topic).is_err(), "a fresh start has no topic");
    broker.stop();
    let _ = std::fs::remove_dir_all(&opts.work_dir);
}

#[test]
fn tansu_restart_keeps_the_log() {
    restart(BrokerKind::Tansu);
}

#[test]
fn apache_restart_keeps_the_log() {
    restart(BrokerKind::Apache);
}

/// A consumer in a group polls through a broker restart, as the flow's
/// consumer does: it reads what is produced after the restart, and nothing
/// it committed before comes again. On Tansu in memory this crashed the
/// test process (librdkafka's SIGSEGV, see the chapter "Under load and
/// faults").
fn consumer_reads_on_across_a_restart(kind: BrokerKind) {
    let opts = options(kind, "consume-across", 0);
    let mut broker = Broker::start(&opts).expect("broker starts");
    let bootstrap = broker.bootstrap().to_owned();
    let topic = "stitch.across";
    ensure_topic(&bootstrap, topic, PARTITIONS).expect("topic created");
    produce_keyed(&bootstrap, topic, "before", MESSAGES);
    let group = format!("stitch-across-{kind}-{}", std::process::id());
    let consumer = group_consumer(&bootstrap, &group, topic);
    let before = consume(&consumer, MESSAGES, Duration::from_secs(30));
    assert_eq!(before.len(), MESSAGES, "{before:?}");
    consumer.commit_consumer_state(CommitMode::Sync).expect("commit");

    broker.restart().expect("broker restarts");
    // The consumer fetches while the broker is down and as it comes back.
    let during = consume(&consumer, 1, Duration::from_secs(3));
    assert!(during.is_empty(), "nothing new yet, nothing again: {during:?}");
    produce_keyed(&bootstrap, topic, "after", MESSAGES);
    let after = consume(&consumer, MESSAGES, Duration::from_secs(30));
    assert_eq!(after.len(), MESSAGES, "every message produced after the restart: {after:?}");
    assert!(after.iter().all(|key| key.starts_with("after-")), "nothing read twice: {after:?}");
    drop(consumer);
    broker.stop();
    let _ = std::fs::remove_dir_all(&opts.work_dir);
}

#[test]
fn tansu_consumer_reads_on_across_a_restart() {
    consumer_reads_on_across_a_restart(BrokerKind::Tansu);
}

#[test]
fn apache_consumer_reads_on_across_a_restart() {
    consumer_reads_on_across_a_restart(BrokerKind::Apache);
}

/// The child process of [`deleted_topic_under_a_consumer`]: its broker.
const CHILD_BOOTSTRAP: &str = "STITCH_TEST_DELETED_TOPIC_BOOTSTRAP";
const CHILD_DELETED: &str = "deleted the topic under the consumer";
const CHILD_SURVIVED: &str = "the consumer fetched on for 10 s";
const DELETED_TOPIC: &str = "stitch.deleted";

/// The smallest sequence that crashes librdkafka 2.12.1 on Tansu 0.6.0: a
/// consumer fetches a topic's partition, the topic is deleted, and the next
/// fetch's answer names a topic librdkafka cannot look up (see the chapter
/// "Under load and faults"). The consumer runs in a child process, this
/// test binary running [`deleted_topic_consumer`], so that a crash is an
/// exit status and not this test's own death.
fn deleted_topic_under_a_consumer(kind: BrokerKind) -> (std::process::ExitStatus, String) {
    let opts = options(kind, "deleted-topic", 0);
    let broker = Broker::start(&opts).expect("broker starts");
    ensure_topic(broker.bootstrap(), DELETED_TOPIC, 1).expect("topic created");
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["deleted_topic_consumer", "--exact", "--ignored", "--nocapture", "--test-threads", "1"])
        .env(CHILD_BOOTSTRAP, broker.bootstrap())
        .output()
        .expect("the child test runs");
    broker.stop();
    let _ = std::fs::remove_dir_all(&opts.work_dir);
    (child.status, String::from_utf8_lossy(&child.stderr).into_owned())
}

/// Upstream's bug, pinned: when this fails, a Tansu or librdkafka release
/// fixed it, and the chapter's account must change.
#[test]
fn tansu_deleted_topic_crashes_librdkafka() {
    use std::os::unix::process::ExitStatusExt as _;
    let (status, stderr) = deleted_topic_under_a_consumer(BrokerKind::Tansu);
    assert!(stderr.contains(CHILD_DELETED), "the crash comes after the deletion: {status}\n{stderr}");
    assert_eq!(status.signal(), Some(11), "SIGSEGV: {status}\n{stderr}");
}

#[test]
fn apache_deleted_topic_leaves_librdkafka_running() {
    let (status, stderr) = deleted_topic_under_a_consumer(BrokerKind::Apache);
    assert!(status.success() && stderr.contains(CHILD_SURVIVED), "{status}\n{stderr}");
}

#[test]
#[ignore = "the child process of the deleted-topic tests, which run it"]
fn deleted_topic_consumer() {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::error::KafkaError;
    use rdkafka::types::RDKafkaErrorCode;

    let bootstrap = std::env::var(CHILD_BOOTSTRAP).expect("started by a deleted-topic test");
    // Assigned, not subscribed: no group is needed for the crash
    // (librdkafka wants a group id all the same).
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "stitch-deleted-topic")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut partitions = TopicPartitionList::new();
    partitions.add_partition_offset(DELETED_TOPIC, 0, Offset::Beginning).unwrap();
    consumer.assign(&partitions).unwrap();
    // The first answered fetch of the empty partition reports its end.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "no fetch answered within 30 s");
        if let Some(Err(KafkaError::PartitionEOF(0))) = consumer.poll(Duration::from_millis(100)) {
            break;
        }
    }
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", &bootstrap).create().unwrap();
    let deleted = futures::executor::block_on(admin.delete_topics(&[DELETED_TOPIC], &AdminOptions::new()))
        .expect("delete topics answered");
    assert!(matches!(deleted.as_slice(), [Ok(_)]), "{deleted:?}");
    eprintln!("{CHILD_DELETED}");
    let fetching = Instant::now();
    while fetching.elapsed() < Duration::from_secs(10) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::UnknownTopicOrPartition))) | None => {}
            Some(other) => eprintln!("polled: {other:?}"),
        }
    }
    eprintln!("{CHILD_SURVIVED}");
}
