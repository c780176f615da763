stitch_flow::main!(step_06_mesh_solution);
