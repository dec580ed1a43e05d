//! The TOML config loader: any text either loads or fails with errors that
//! name a key (and a line within the file) or, for TOML syntax, a line and
//! column. Never panics.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use teleport_discord::config::{ConfigError, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // No environment overrides: the file alone decides.
    let env = BTreeMap::<String, String>::new();
    let lines = text.split('\n').count();
    match parse(text, Path::new("fuzz.toml"), &env) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                assert!(!w.key.is_empty(), "warning without a key: {w}");
                assert!(w.line.is_none_or(|l| (1..=lines).contains(&l)), "{w}");
            }
        }
        Err(ConfigError::Syntax { message, .. }) => {
            assert!(
                message.contains("line "),
                "syntax error without a line: {message}"
            );
        }
        Err(ConfigError::Invalid { problems, .. }) => {
            assert!(!problems.is_empty(), "invalid without a problem");
            for p in &problems {
                assert!(!p.key.is_empty(), "problem without a key: {p}");
                assert!(!p.message.is_empty(), "problem without a message: {p:?}");
                assert!(p.line.is_none_or(|l| (1..=lines).contains(&l)), "{p}");
            }
        }
        Err(ConfigError::Read { .. }) => panic!("parse never reads the config file"),
    }
});
