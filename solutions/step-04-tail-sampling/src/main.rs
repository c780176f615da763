stitch_flow::main!(step_04_tail_sampling_solution);
