//! Plans, credits and LLM usage accounting. Pure logic: no IO, no database.

pub mod plans;
pub mod usage;
