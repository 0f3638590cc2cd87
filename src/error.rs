//! Typed errors of the library. The binary adds context with `anyhow`.
//! Each variant says which kind of thing went wrong: the data (`Read`,
//! `MissingColumn`, `MissingInput`, `Data`, `NotEnoughEvidence`, `Fit`), the
//! usage (`Config`, `Usage`), an artifact (`Artifact`), input or output
//! (`Write`, `Io`, `Polars`), or this program (`Internal`).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum IcpError {
    #[error("{path}: cannot read file: {message}")]
    Read { path: PathBuf, message: String },

    #[error(
        "{path}: required column `{column}` is missing (expected {expected}); columns found: {found}"
    )]
    MissingColumn {
        path: PathBuf,
        column: String,
        expected: String,
        found: String,
    },

    #[error("{dir}: no {what} file found (expected {expected}){hint}")]
    MissingInput {
        dir: PathBuf,
        what: String,
        expected: String,
        /// which shipped mapping fits the folder, when one does
        hint: String,
    },

    /// Data that cannot give a right answer as it is, and what to change.
    #[error("{path}: {message}")]
    Data { path: PathBuf, message: String },

    #[error("config {path}: {message}")]
    Config { path: PathBuf, message: String },

    #[error("not enough evidence to train: {0}")]
    NotEnoughEvidence(String),

    #[error("model artifact {path}: {message}")]
    Artifact { path: PathBuf, message: String },

    #[error("cannot fit the model: {0}")]
    Fit(String),

    #[error("{path}: cannot write: {message}")]
    Write { path: PathBuf, message: String },

    /// A command-line value or setting the program cannot use as given.
    #[error("invalid argument: {0}")]
    Usage(String),

    /// A bug: something this program guarantees did not hold.
    #[error("internal error (a bug; please report it): {0}")]
    Internal(String),

    #[error("data frame engine: {0}")]
    Polars(#[from] polars::prelude::PolarsError),

    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = IcpError> = std::result::Result<T, E>;

impl IcpError {
    pub fn write(path: impl Into<PathBuf>, e: impl std::fmt::Display) -> Self {
        IcpError::Write {
            path: path.into(),
            message: e.to_string(),
        }
    }
    pub fn read(path: impl Into<PathBuf>, e: impl std::fmt::Display) -> Self {
        IcpError::Read {
            path: path.into(),
            message: e.to_string(),
        }
    }
}
