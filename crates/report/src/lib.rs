//! twinmq's comparison report (`twinmq compare`): the standard matrix measured on embedded
//! servers of both models, its results as data, and the report drawn from that data.
//!
//! Measuring:
//! - [`matrix`]: what is measured at each scale; [`workload`]: the load generator's settings
//!   for one point.
//! - [`storage`]: the storage layouts against the machine's sequential-write ceiling.
//! - [`clusters`]: embedded servers of either model, one broker or replicated;
//!   [`runner`]: the load points on them; [`progress`]: what a caller sees meanwhile.
//! - [`results`]: everything measured, as `results.json`.
//!
//! Drawing, from the results alone:
//! - [`headline`]: the goals and the measured ratios; [`figures`] and [`chart`]: the charts
//!   (SVG and PNG); [`durability`]: the simulator's table, rendered when given.
//! - [`page`]: the report as a [`document::Document`], rendered by [`markdown`] and [`html`];
//!   [`output`]: the report directory.

pub mod chart;
pub mod clusters;
pub mod date;
pub mod document;
pub mod durability;
pub mod figures;
pub mod headline;
pub mod html;
pub mod markdown;
pub mod matrix;
pub mod output;
pub mod page;
pub mod progress;
pub mod results;
pub mod runner;
pub mod storage;
pub mod workload;

pub use durability::DurabilityTable;
pub use matrix::{Plan, Scale};
pub use output::{OutputError, read_results, write_report};
pub use progress::{Progress, Silent};
pub use results::{Results, Setup};
pub use runner::{LoadRun, run_load};
pub use storage::run_storage;
