// A producer on Apache Kafka's own Java client (kafka-clients), not on
// librdkafka: the soak's fuzz sends the consumer messages written by it.
//
// Run as a single source file with the jars the Apache Kafka launcher caches
// (kafka-clients and its dependencies are among them):
//
//   java -cp '<cache>/kafka-<version>/libs/*' infra/kafka/ForeignProducer.java \
//       <bootstrap> <topic> [client.setting=value ...] < messages
//
// One message per line on stdin, fields separated by tabs: the key, the
// payload (UTF-8), then each header as `name=<value in hex>`, or `name` alone
// for a header without a value. Header values travel as hex so that any
// bytes (not UTF-8, a tab) survive the trip.
//
// Prints `sent<TAB>key<TAB>partition<TAB>offset` on stdout for each message
// the broker acknowledged; on the first failure, prints why on stderr and
// exits with status 1. Client log lines may be interleaved on stdout.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.Future;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.StringSerializer;

public class ForeignProducer {
    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: ForeignProducer <bootstrap> <topic> [client.setting=value ...] < messages");
            System.exit(2);
        }
        Properties config = new Properties();
        config.put("bootstrap.servers", args[0]);
        config.put("key.serializer", StringSerializer.class.getName());
        config.put("value.serializer", StringSerializer.class.getName());
        // A broker that never answers must end in an error, not a hang.
        config.put("max.block.ms", "10000");
        config.put("request.timeout.ms", "5000");
        config.put("delivery.timeout.ms", "15000");
        config.put("linger.ms", "0");
        for (int i = 2; i < args.length; i++) {
            String[] setting = args[i].split("=", 2);
            if (setting.length != 2) {
                System.err.println("client setting without a value: " + args[i]);
                System.exit(2);
            }
            config.put(setting[0], setting[1]);
        }
        String topic = args[1];

        List<String> keys = new ArrayList<>();
        List<Future<RecordMetadata>> sent = new ArrayList<>();
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(config);
                BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
            String line;
            while ((line = in.readLine()) != null) {
                if (line.isEmpty()) {
                    continue;
                }
                String[] fields = line.split("\t", -1);
                if (fields.length < 2) {
                    throw new IllegalArgumentException("a message needs a key and a payload: " + line);
                }
                ProducerRecord<String, String> record = new ProducerRecord<>(topic, fields[0], fields[1]);
                for (int i = 2; i < fields.length; i++) {
                    String[] header = fields[i].split("=", 2);
                    record.headers().add(new RecordHeader(header[0], header.length == 2 ? hex(header[1]) : null));
                }
                keys.add(fields[0]);
                sent.add(producer.send(record));
            }
            producer.flush();
            for (int i = 0; i < sent.size(); i++) {
                RecordMetadata metadata = sent.get(i).get();
                System.out.println("sent\t" + keys.get(i) + "\t" + metadata.partition() + "\t" + metadata.offset());
            }
        } catch (Exception e) {
            Throwable cause = e.getCause() != null ? e.getCause() : e;
            System.err.println("producing failed: " + cause);
            System.exit(1);
        }
    }

    private static byte[] hex(String text) {
        if (text.length() % 2 != 0) {
            throw new IllegalArgumentException("odd-length hex: " + text);
        }
        byte[] bytes = new byte[text.length() / 2];
        for (int i = 0; i < bytes.length; i++) {
            bytes[i] = (byte) Integer.parseInt(text.substring(2 * i, 2 * i + 2), 16);
        }
        return bytes;
    }
}
