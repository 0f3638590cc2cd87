//! Sales Velocity ICP: score accounts by how likely they are to become fast,
//! successful, retained customers, and explain why.
//!
//! Data flows one way, one module per stage:
//! [`load`] -> [`label`] -> [`features`] -> [`model`] -> [`score`] -> [`segments`],
//! with [`publish`] writing run directories atomically, [`ranked`] putting
//! accounts scored in pieces back in order, and [`cmd`] holding
//! one module per subcommand of the `icp` binary. At the bottom, shared by
//! the stages: [`util`], [`domain`], [`ids`] and [`csv_out`].

pub mod brief;
pub mod cmd;
pub mod config;
pub mod csv_out;
pub mod domain;
pub mod error;
pub mod features;
pub mod feed;
pub mod guard;
pub mod icp;
pub mod ids;
pub mod label;
pub mod load;
pub mod metrics;
pub mod model;
pub mod outcomes;
pub mod progress;
pub mod publish;
pub mod ranked;
pub mod review;
pub mod score;
pub mod segments;
pub mod signals;
pub mod sql;
pub mod synth;
pub mod util;

pub use error::{IcpError, Result};
