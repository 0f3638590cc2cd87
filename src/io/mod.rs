//! Layer 3, files in and out: the CRM export read and checked ([`load`]),
//! the CSV writer ([`csv_out`]), run directories written atomically
//! ([`publish`]) and the synthetic CRM generator ([`synth`]).

pub mod csv_out;
pub mod load;
pub mod publish;
pub mod synth;
