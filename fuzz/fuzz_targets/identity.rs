//! The identity-file parser (and the `--format=tls` triple): any text either
//! parses or fails with an error that names the file. Never panics, and a
//! parsed identity's `Debug` never shows the key.
#![no_main]

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use teleport_discord::teleport::identity::{parse_identity_file, parse_triple};

const PATH: &str = "/fuzz/identity";

fuzz_target!(|data: &[u8]| {
    // The first byte picks "now" (expiry checks), the rest is the file.
    let Some((&when, rest)) = data.split_first() else {
        return;
    };
    let now = UNIX_EPOCH + Duration::from_secs(u64::from(when) * 30 * 86_400 * 12);
    let text = String::from_utf8_lossy(rest);
    check(parse_identity_file(&text, Path::new(PATH), now), &text);
    check(
        parse_identity_file(&text, Path::new(PATH), SystemTime::now()),
        &text,
    );
    // The same bytes as a triple: split at two NUL-free markers if present.
    let mut parts = text.splitn(3, "\n%%\n");
    if let (Some(k), Some(c), Some(a)) = (parts.next(), parts.next(), parts.next()) {
        let r = parse_triple(
            (k, Path::new("/fuzz/key")),
            (c, Path::new("/fuzz/crt")),
            (a, Path::new("/fuzz/cas")),
            now,
        );
        if let Err(e) = &r {
            let m = e.to_string();
            assert!(m.contains("/fuzz/"), "error without the file: {m}");
        }
    }
});

fn check(
    r: Result<teleport_discord::teleport::Identity, teleport_discord::teleport::TeleportError>,
    text: &str,
) {
    match r {
        Ok(id) => {
            let shown = format!("{id:?}");
            assert!(!shown.contains("PRIVATE"), "Debug shows the key: {shown}");
            assert!(!id.cas().is_empty());
            assert!(!id.cert_chain().is_empty());
        }
        Err(e) => {
            let m = e.to_string();
            assert!(m.contains(PATH), "error without the file: {m}");
            // No line of base64 key material is echoed in an error.
            for line in text
                .lines()
                .map(str::trim)
                .filter(|l| l.len() >= 40 && !l.starts_with("-----"))
            {
                assert!(!m.contains(line), "error echoes input line {line:?}: {m}");
            }
        }
    }
}
