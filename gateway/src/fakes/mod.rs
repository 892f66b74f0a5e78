//! Stateful stand-ins for the remote parts, speaking their real wire formats: an OpenClaw
//! gateway and an OpenAI/Anthropic-compatible LLM. Used by the tests, the benchmarks and
//! `roost` development runs; each can inject the failures the real service produces.

pub mod llm;
pub mod openclaw;
