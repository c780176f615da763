stitch_flow::main!(step_07_browser);
