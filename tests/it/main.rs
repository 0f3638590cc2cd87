//! Integration tests, one module per command, in one test crate (each test
//! binary links all of polars, so there is only one).

mod approve;
mod bench;
mod brief;
mod common;
mod crm;
mod exports;
mod feed;
mod generate;
mod hardening;
mod layers;
mod load;
mod run;
mod score;
mod segments;
mod sql;
mod validate;
