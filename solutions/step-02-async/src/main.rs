stitch_flow::main!(step_02_async_solution);
