//! Emulators of the two outside services, for tests and `demo`: they follow
//! Teleport's and Discord's documented behaviour, not our client's convenience.

pub mod chaos;
pub mod discord;
pub mod sandbox;
pub mod teleport;
