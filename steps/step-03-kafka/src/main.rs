stitch_flow::main!(step_03_kafka);
