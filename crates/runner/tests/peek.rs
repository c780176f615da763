//! `peek` against a real broker: the newest messages of the orders topic,
//! their keys and headers, as the flow's CLI prints them.

use std::path::Path;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use stitch_components::kafka::{Broker, BrokerKind, BrokerOptions, default_cache_dir, ensure_topic};
use stitch_components::process;

const TOPIC: &str = "orders";

fn traceparent(i: u8) -> String {
    format!("00-4bf92f3577b34da6a3ce929d0e0e47{i:02x}-00f067aa0ba902b7-01")
}

#[test]
fn peek_prints_the_newest_messages_and_their_traceparent() {
    process::build_broker().expect("building stitch-broker");
    let opts = BrokerOptions {
        kind: BrokerKind::Tansu,
        port: 0,
        work_dir: Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("kafka-peek-{}", std::process::id())),
        tansu_binary: process::binary("stitch-broker"),
        cache_dir: default_cache_dir(),
    };
    let broker = Broker::start(&opts).expect("broker starts");
    let bootstrap = broker.bootstrap().to_owned();

    let missing = stitch_flow::peek::peek(&bootstrap, TOPIC, 5, &mut Vec::new()).unwrap_err();
    assert!(format!("{missing:#}").contains("does not exist"), "{missing:#}");

    ensure_topic(&bootstrap, TOPIC, 2).expect("topic created");
    let mut out = Vec::new();
    assert_eq!(stitch_flow::peek::peek(&bootstrap, TOPIC, 5, &mut out).unwrap(), 0);
    assert!(String::from_utf8(out).unwrap().contains("holds no message"));

    let producer: FutureProducer =
        ClientConfig::new().set("bootstrap.servers", &bootstrap).set("linger.ms", "0").create().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for i in 0..4u8 {
        let headers = OwnedHeaders::new()
            .insert(Header { key: "traceparent", value: Some(&traceparent(i)) })
            .insert(Header { key: "binary", value: Some(&[0xff, i][..]) });
        let key = format!("order-{i}");
        let record = FutureRecord::to(TOPIC).key(&key).payload("{}").headers(headers);
        runtime.block_on(producer.send(record, Duration::from_secs(10))).expect("produced");
        // Distinct timestamps: `peek` orders the newest by them.
        std::thread::sleep(Duration::from_millis(5));
    }

    let mut out = Vec::new();
    let printed = stitch_flow::peek::peek(&bootstrap, TOPIC, 2, &mut out).expect("peek reads the topic");
    let out = String::from_utf8(out).unwrap();
    broker.stop();
    eprintln!("{out}");
    assert_eq!(printed, 2);
    for i in [2, 3] {
        assert!(out.contains(&format!("key order-{i}\n")), "{out}");
        assert!(out.contains(&format!("  traceparent: {}\n", traceparent(i))), "{out}");
        assert!(out.contains(&format!("  binary: 0xff{i:02x} (not UTF-8)\n")), "{out}");
    }
    assert!(!out.contains("order-1"), "only the newest two: {out}");
    let order_2 = out.find("order-2").unwrap();
    assert!(order_2 < out.find("order-3").unwrap(), "oldest first: {out}");
}
