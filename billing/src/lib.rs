//! Plans, credits and LLM usage accounting, pure logic with no database; and the Stripe client
//! and webhook signature check (`stripe`), the one module that does I/O.

pub mod access;
pub mod plans;
pub mod refill;
pub mod stripe;
pub mod usage;
