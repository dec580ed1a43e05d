//! The reconciler: turns the latest state of each access request into Discord
//! messages and plugin data. The Teleport watch only marks request IDs dirty;
//! workers take them from the [`queue::WorkQueue`] and converge.

pub mod queue;
