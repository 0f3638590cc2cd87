//! Layer 7, what people and warehouses read: the brief ([`brief`]) and the
//! model as one SQL query ([`sql`]).

pub mod brief;
pub mod sql;
