//! The soak's fuzz, small, on the final flow and Tansu: the Java producer's
//! messages reach the consumer and are judged like librdkafka's. Needs a
//! JDK 17+ and Maven.

use stitch_campaigns::soak::cases::Edge;
use stitch_campaigns::soak::fuzz;
use stitch_components::kafka::BrokerKind;
use stitch_runner::check::with_flow;

#[test]
fn the_consumer_handles_every_foreign_message() {
    let step = stitch_runner::step::final_flow().expect("the steps are found");
    let spans_per_request = step.full_expectation().expect("the final flow's expectation").spans_per_request;
    let result =
        with_flow(&step, BrokerKind::Tansu, "test-fuzz-foreign", |flow| fuzz::run(flow, 42, 25, spans_per_request))
            .expect("the fuzz runs");
    eprintln!("{result:#?}");
    assert_eq!(result.crashes, 0);
    let foreign = result.edges.iter().find(|edge| edge.edge == Edge::Foreign).expect("foreign cases ran");
    assert_eq!(foreign.cases, 10);
    assert_eq!(foreign.violations, 0, "{:?}", result.examples);
    // Valid contexts are continued (or unsampled), the rest start new traces.
    assert_eq!(foreign.continued + foreign.continued_unsampled + foreign.new_root, 10);
    assert!(foreign.continued > 0 && foreign.new_root > 0, "{foreign:?}");
}
