//! Sales Velocity ICP: score accounts by how likely they are to become fast,
//! successful, retained customers, and explain why.
//!
//! Layers, bottom to top; a module imports only from layers below it, and
//! within a layer only from the modules listed before it
//! (`tests/it/layers.rs` fails on any other import):
//!
//! | layer | modules | holds |
//! |---|---|---|
//! | 0 | [`error`], [`util`] | typed errors; number style, ids and hashing, frame columns, statistics, metrics, progress |
//! | 1 | [`domain`] | the words of the trade: outcomes, bands, CRM statuses, audiences, change actions, segment names |
//! | 2 | [`config`] | the config file parsed once into checked parameters and column names |
//! | 3 | [`io`] | loading and checking the CRM export, the CSV writer, run directories, the generator |
//! | 4 | [`stages`] | label, features, leak guard, model, score, segments |
//! | 5 | [`evidence`] | signals, triggers, painful customers, readiness, the refined ICP, measurement |
//! | 6 | [`feed`] | the published feed: segment membership and add / move / remove changes |
//! | 7 | [`report`] | the brief and the SQL export |
//! | 8 | [`review`] | approvals, the active model, the events log, run comparisons |
//! | 9 | [`pipeline`] | one run or scoring from inputs to a published directory |
//! | 10 | [`cmd`] | one module per subcommand: arguments in, lines printed |

pub mod cmd;
pub mod config;
pub mod domain;
pub mod error;
pub mod evidence;
pub mod feed;
pub mod io;
pub mod pipeline;
pub mod report;
pub mod review;
pub mod stages;
pub mod util;

pub use error::{IcpError, Result};
