//! Small helpers the testkit's parts share.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, going on with the data if a holder panicked (a panicking test
/// thread must not take every later assertion down with it).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A uniformly random number in `[0, 1)` from the system's secure source.
pub fn random_unit() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A random `u64` from the system's secure source.
pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // The system source does not fail on the platforms we run on; a zero
    // value would only make a fault plan less random.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    u64::from_le_bytes(b)
}

/// The seconds and nanoseconds of a time on the wire (`google.protobuf.Timestamp`).
pub fn timestamp(t: std::time::SystemTime) -> prost_types::Timestamp {
    prost_types::Timestamp::from(t)
}

/// Seconds of Go's zero `time.Time` (0001-01-01T00:00:00Z): Teleport's "unset".
pub const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

/// SNI and server name of every Teleport-issued certificate.
pub const API_DOMAIN: &str = "teleport.cluster.local";

/// A directory under the system temp dir, private to this user, removed with
/// everything in it on drop (`demo`'s and the chaos runner's).
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// `teleport-discord-<what>-<pid>-<random>`, mode 0700.
    pub fn create_for(what: &str) -> std::io::Result<Self> {
        let base = std::env::temp_dir();
        let mut last = None;
        for _ in 0..32 {
            let path = base.join(format!(
                "teleport-discord-{what}-{}-{:08x}",
                std::process::id(),
                random_u64() as u32
            ));
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    #[cfg(unix)]
                    {
                        use std::os::unix::fs::PermissionsExt;
                        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))?;
                    }
                    return Ok(Self(path));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no free name")))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_unit_is_in_range_and_varies() {
        let xs: Vec<f64> = (0..64).map(|_| random_unit()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        assert!(xs.windows(2).any(|w| w[0] != w[1]));
    }

    #[test]
    fn temp_dir_is_private_and_removed() {
        let d = TempDir::create_for("unit").expect("create");
        let p = d.path().to_owned();
        assert!(p.is_dir());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        drop(d);
        assert!(!p.exists());
    }
}
