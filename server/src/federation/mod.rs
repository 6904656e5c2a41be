//! Federation (issue #17): peer gateways contacted, their tools, prompts and resources
//! discovered, health-checked and served through this gateway.

pub mod health;
pub mod lease;
pub mod lifecycle;
