stitch_flow::main!(step_00_broken);
