//! Validated domain types. A request body becomes these types before any I/O,
//! with every problem collected under its JSON path; nothing downstream
//! re-checks what a type already guarantees.

pub mod aamva;
pub mod address;
pub mod bank;
pub mod card;
pub mod contact;
pub mod credit;
pub mod currency;
pub mod custom;
pub mod customer;
pub mod event;
pub mod input;
pub mod money;
pub mod provider;
pub mod text;
pub mod webhook;

pub use input::{Obj, Problem, ProblemKind, Problems};
