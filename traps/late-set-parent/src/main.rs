stitch_flow::main!(trap_late_set_parent);
