//! twinmq's benchmark support: the machine's own ceiling and workload helpers shared by the
//! criterion benches in `benches/benches/` (and, later, the load generator and reports).

pub mod ceiling;
pub mod workload;
