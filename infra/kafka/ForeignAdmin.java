// Creates a topic with Apache Kafka's own Java admin client (kafka-clients),
// then describes it: step 3's table of clients tries it on both brokers.
//
// Run as a single source file with the jars the Apache Kafka launcher caches:
//
//   java -cp '<cache>/kafka-<version>/libs/*' infra/kafka/ForeignAdmin.java \
//       <bootstrap> <topic> <partitions>
//
// Prints `created<TAB>topic<TAB>topic id<TAB>partitions` on stdout once the
// broker describes the new topic; on a failure, prints why on stderr and
// exits with status 1. Client log lines may be interleaved on stdout.

import java.util.List;
import java.util.Properties;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;

public class ForeignAdmin {
    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: ForeignAdmin <bootstrap> <topic> <partitions>");
            System.exit(2);
        }
        Properties config = new Properties();
        config.put("bootstrap.servers", args[0]);
        // A broker that never answers must end in an error, not a hang.
        config.put("request.timeout.ms", "5000");
        config.put("default.api.timeout.ms", "15000");
        String topic = args[1];
        int partitions = Integer.parseInt(args[2]);

        try (Admin admin = Admin.create(config)) {
            admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1)))
                .all()
                .get(20, TimeUnit.SECONDS);
            TopicDescription described = admin.describeTopics(List.of(topic))
                .allTopicNames()
                .get(20, TimeUnit.SECONDS)
                .get(topic);
            System.out.println("created\t" + described.name() + "\t" + described.topicId() + "\t"
                + described.partitions().size());
        } catch (Exception failure) {
            System.err.println("creating the topic failed: " + failure);
            System.exit(1);
        }
    }
}
