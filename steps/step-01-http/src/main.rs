stitch_flow::main!(step_01_http);
