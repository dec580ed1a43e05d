//! The one way this crate takes a `std::sync::Mutex`.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`. A holder that panicked leaves the data as it was at the panic;
/// every structure guarded here stays consistent between statements, so the
/// service goes on with it rather than panicking in every later caller.
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
