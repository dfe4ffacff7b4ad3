//! What only the relay's tests need.

pub mod dkim;
