//! `peek`: the newest messages of the orders topic, with their keys and
//! headers as a consumer receives them, to look at a real `traceparent`.
//!
//! It assigns itself the partitions and seeks: it joins no consumer group,
//! commits nothing, and no running consumer loses a message to it.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::{Headers as _, Message as _};
use rdkafka::{Offset, TopicPartitionList};

use crate::kafka::KafkaArgs;

/// How long the broker gets to answer each request, and to deliver the
/// messages that its watermarks promise.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Reading goes on until no message came for this long, past the high
/// watermarks: Tansu 0.6 keeping its data in memory answered watermarks
/// below the last offsets after messages from Apache Kafka's Java client
/// (3 for 6 records, 1 for 4). On SQLite, as `stitch-broker` runs it now,
/// they matched; a broker that lags still costs no message.
const QUIET: Duration = Duration::from_millis(500);

/// A value longer than this is cut: the fuzz sends 100 KiB headers.
const SHOWN_BYTES: usize = 200;

/// `peek`'s command line.
#[derive(clap::Args, Debug)]
pub(crate) struct PeekArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// How many of the newest messages to print (over all partitions).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub last: u64,
}

/// One message as read.
#[derive(Debug, Clone)]
pub struct Peeked {
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Peeked {
    /// The value of the first header named `name` (any case), when it is UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        let (_, value) = self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name))?;
        std::str::from_utf8(value.as_deref()?).ok()
    }
}

/// `peek` on the command line: prints to stdout.
pub(crate) fn run(args: &PeekArgs) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    peek(&args.kafka.bootstrap, &args.kafka.topic, args.last as usize, &mut stdout)?;
    Ok(())
}

/// Writes the `last` newest messages of `topic` (by timestamp, oldest
/// first) to `out`: partition, offset and key, then each header as
/// `name: value`, a value that is not printable UTF-8 in hex. Returns how
/// many it wrote.
pub fn peek(bootstrap: &str, topic: &str, last: usize, out: &mut impl Write) -> anyhow::Result<usize> {
    let newest = newest(bootstrap, topic, last)?;
    if newest.is_empty() {
        writeln!(out, "topic {topic:?} on {bootstrap} holds no message yet")?;
    }
    for message in &newest {
        write_message(out, message)?;
    }
    Ok(newest.len())
}

/// The `last` newest messages of `topic` (by timestamp, oldest first);
/// none when the topic holds none.
pub fn newest(bootstrap: &str, topic: &str, last: usize) -> anyhow::Result<Vec<Peeked>> {
    if last == 0 {
        bail!("--last 0: nothing to print; ask for at least one message");
    }
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        // librdkafka refuses to assign without a group id; assigning never
        // joins the group, and with no commit it leaves no trace there.
        .set("group.id", format!("stitch-peek-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("allow.auto.create.topics", "false")
        .create()
        .context("creating the Kafka client")?;
    let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT).with_context(|| {
        format!("Kafka at {bootstrap} did not answer: is it running? (`cargo xtask up` starts it on 127.0.0.1:9092)")
    })?;
    let partitions: Vec<i32> = match metadata.topics().iter().find(|t| t.name() == topic) {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => t.partitions().iter().map(|p| p.id()).collect(),
        _ => bail!(
            "topic {topic:?} does not exist on {bootstrap}: the flow's worker and consumer create it when they start"
        ),
    };

    // Per partition, the last `last` offsets: the newest `last` of the
    // topic are among them, whatever the producers' partitioning did.
    let mut assignment = TopicPartitionList::new();
    let mut pending = Vec::new();
    for &partition in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, TIMEOUT)
            .with_context(|| format!("reading the offsets of {topic}/{partition} on {bootstrap}"))?;
        let start = low.max(high - last as i64);
        if start < high {
            assignment.add_partition_offset(topic, partition, Offset::Offset(start))?;
            pending.push((partition, high));
        }
    }
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    consumer.assign(&assignment).context("assigning the partitions")?;

    let mut messages = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    let mut last_message = Instant::now();
    while !pending.is_empty() || last_message.elapsed() < QUIET {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            if pending.is_empty() {
                break;
            }
            let missing: Vec<String> = pending.iter().map(|(p, high)| format!("{topic}/{p} up to {high}")).collect();
            bail!("the broker did not deliver {} within {TIMEOUT:?}", missing.join(", "));
        }
        let Some(message) = consumer.poll(remaining.min(Duration::from_millis(100))) else { continue };
        last_message = Instant::now();
        let message = message.with_context(|| format!("reading {topic} on {bootstrap}"))?;
        let (partition, offset) = (message.partition(), message.offset());
        if let Some(at) = pending.iter().position(|&(p, high)| p == partition && offset + 1 >= high) {
            pending.swap_remove(at);
        }
        messages.push(Peeked {
            partition,
            offset,
            timestamp: message.timestamp().to_millis(),
            key: message.key().map(<[u8]>::to_vec),
            headers: message
                .headers()
                .map(|headers| headers.iter().map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec))).collect())
                .unwrap_or_default(),
        });
    }

    messages.sort_by_key(|m| (m.timestamp, m.partition, m.offset));
    let skip = messages.len().saturating_sub(last);
    Ok(messages.split_off(skip))
}

fn write_message(out: &mut impl Write, message: &Peeked) -> std::io::Result<()> {
    let key = message.key.as_deref().map_or_else(|| "(none)".to_owned(), show);
    writeln!(out, "partition {}  offset {}  key {key}", message.partition, message.offset)?;
    if message.headers.is_empty() {
        writeln!(out, "  (no headers)")?;
    }
    for (name, value) in &message.headers {
        let value = value.as_deref().map_or_else(|| "(no value)".to_owned(), show);
        writeln!(out, "  {name}: {value}")?;
    }
    Ok(())
}

/// Printable UTF-8 as it is; anything else (a byte that is not UTF-8, a
/// control character that would garble the terminal) in hex.
fn show(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(SHOWN_BYTES)];
    let cut = if shown.len() < bytes.len() { format!(" … ({} bytes)", bytes.len()) } else { String::new() };
    if bytes.is_empty() {
        return "(empty)".to_owned();
    }
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.chars().any(char::is_control) => {
            // Cut on a character boundary.
            let end = (0..=shown.len()).rev().find(|&end| text.is_char_boundary(end)).unwrap_or(0);
            format!("{}{cut}", &text[..end])
        }
        Ok(_) => format!("0x{} (control characters){cut}", hex::encode(shown)),
        Err(_) => format!("0x{} (not UTF-8){cut}", hex::encode(shown)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_print_as_text_or_hex() {
        assert_eq!(show(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").len(), 55);
        assert_eq!(show(&[0xff, 0x00, 0x80]), "0xff0080 (not UTF-8)");
        assert_eq!(show(b"a\nb"), "0x610a62 (control characters)");
        assert_eq!(show(b""), "(empty)");
        assert_eq!(show("é".repeat(150).as_bytes()), format!("{} … (300 bytes)", "é".repeat(100)));
    }

    #[test]
    fn a_message_prints_its_key_and_every_header() {
        let message = Peeked {
            partition: 1,
            offset: 7,
            timestamp: None,
            key: Some(b"order-1".to_vec()),
            headers: vec![("traceparent".to_owned(), Some(b"00-ab-cd-01".to_vec())), ("absent".to_owned(), None)],
        };
        let mut out = Vec::new();
        write_message(&mut out, &message).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "partition 1  offset 7  key order-1\n  traceparent: 00-ab-cd-01\n  absent: (no value)\n"
        );
    }
}
