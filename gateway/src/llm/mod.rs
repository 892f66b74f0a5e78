//! The metered LLM proxy behind `/llm/*`. Agents call it with their per-user credential; Roost
//! adds the operator's provider key (or the user's own, see [`own_key`]), streams the answer back untouched, and records its usage.

mod caller;
pub mod credit_check;
mod forward;
mod metered_body;
mod model_request;
pub mod own_key;
mod refusals;
mod upstreams;
mod usage_recorder;

pub use billing::usage::LlmApi;
pub use caller::authenticate;
pub use forward::{forward_list_models, forward_model_call};
pub use model_request::ModelRequest;
pub use refusals::CreditRefusals;
pub use upstreams::{OwnKeySettings, Upstream, Upstreams, UpstreamsConfig, normalize_base_url};
