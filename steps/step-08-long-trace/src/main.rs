stitch_flow::main!(step_08_long_trace);
