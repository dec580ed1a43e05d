//! Access monitoring rules: Teleport resources that route access-request
//! notifications. This module owns the condition language ([`predicate`]).

pub mod predicate;
