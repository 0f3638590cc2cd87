//! Layer 4, the model's stages in pipeline order: deals labelled
//! ([`label`]), account columns turned into features ([`features`]), columns
//! set by the sale kept out ([`guard`]), the fit and its holdout
//! ([`model`]), every account scored ([`score`], [`ranked`] for scores
//! written in pieces) and the segment files cut ([`segments`]).

pub mod features;
pub mod guard;
pub mod label;
pub mod model;
pub mod ranked;
pub mod score;
pub mod segments;
