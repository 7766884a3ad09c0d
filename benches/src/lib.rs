//! twinmq's benchmark support: the machine's own ceiling and workload helpers shared by the
//! criterion benches in `benches/benches/`, and the timed storage measurements of the comparison
//! report (`measure`).

pub mod ceiling;
pub mod measure;
pub mod workload;
