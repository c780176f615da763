//! The fuzz's foreign producer (Apache Kafka's Java client) on both
//! brokers: every case's headers arrive byte for byte, read back with
//! `peek`. Needs a JDK 17+ and Maven, like the Apache broker.

use std::path::{Path, PathBuf};

use stitch_campaigns::soak::cases::foreign as foreign_cases;
use stitch_campaigns::soak::foreign;
use stitch_components::kafka::{Broker, BrokerKind, BrokerOptions, default_cache_dir, ensure_topic};
use stitch_components::process;

const TOPIC: &str = "orders";

fn work_dir(kind: BrokerKind) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("foreign-{kind}-{}", std::process::id()))
}

fn round_trip(kind: BrokerKind) {
    if kind == BrokerKind::Tansu {
        process::build_broker().expect("building stitch-broker");
    }
    let opts = BrokerOptions {
        kind,
        port: 0,
        work_dir: work_dir(kind),
        tansu_binary: process::binary("stitch-broker"),
        cache_dir: default_cache_dir(),
    };
    let broker = Broker::start(&opts).expect("broker starts");
    let bootstrap = broker.bootstrap().to_owned();
    ensure_topic(&bootstrap, TOPIC, 2).expect("topic created");

    let cases = foreign_cases(42, 0);
    let keys: Vec<String> = cases.iter().map(|case| format!("foreign-{}", case.index)).collect();
    // The client's defaults: why the fuzz turns the cluster check off (see
    // CLIENT_SETTINGS). When Tansu passes here, it decodes ApiVersions v5
    // and the setting can go.
    let started = std::time::Instant::now();
    let log = work_dir(kind).join("java-defaults.log");
    let key = ["defaults".to_owned()];
    let defaults = foreign::send_with(&bootstrap, TOPIC, &cases[..1], &key, &[], &log);
    eprintln!("{kind}, client defaults: {defaults:?} in {:.1?}", started.elapsed());
    let started = std::time::Instant::now();
    let sent = foreign::send(&bootstrap, TOPIC, &cases, &keys, &work_dir(kind).join("java.log"));
    eprintln!("{kind}: the Java producer took {:.1?}", started.elapsed());
    let mut out = Vec::new();
    let peeked = sent.is_ok().then(|| stitch_flow::peek::peek(&bootstrap, TOPIC, cases.len(), &mut out));
    broker.stop();
    match kind {
        // Tansu drops each connection to its node: nothing is ever sent.
        BrokerKind::Tansu => assert!(defaults.is_err_and(|err| format!("{err:#}").contains("Expiring"))),
        BrokerKind::Apache => assert_eq!(defaults.expect("the Java producer runs"), [Ok(())]),
    }
    let sent = sent.expect("the Java producer runs");
    assert!(sent.iter().all(Result::is_ok), "{kind}: {sent:?}");
    let out_text = String::from_utf8(out.clone()).unwrap();
    eprintln!("{out_text}");
    assert_eq!(peeked.unwrap().expect("peek reads the topic"), cases.len());
    let out = out_text;
    for (case, key) in cases.iter().zip(&keys) {
        let at = out.find(&format!("key {key}\n")).unwrap_or_else(|| panic!("{key} missing:\n{out}"));
        let printed = out[at..].lines().skip(1).take_while(|line| line.starts_with("  ")).collect::<Vec<_>>();
        let mut expected = Vec::new();
        for (name, value) in &case.headers {
            let value = value.as_deref().unwrap();
            let shown = match std::str::from_utf8(value) {
                Ok(text) => text.to_owned(),
                Err(_) => format!("0x{} (not UTF-8)", value.iter().map(|b| format!("{b:02x}")).collect::<String>()),
            };
            expected.push(format!("  {name}: {shown}"));
        }
        if expected.is_empty() {
            expected.push("  (no headers)".to_owned());
        }
        assert_eq!(printed, expected, "{kind}, {}", case.kind);
    }
}

#[test]
fn tansu_takes_the_java_producers_messages() {
    round_trip(BrokerKind::Tansu);
}

#[test]
fn apache_takes_the_java_producers_messages() {
    round_trip(BrokerKind::Apache);
}
