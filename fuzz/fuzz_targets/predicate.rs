//! The access-monitoring-rule condition language: any text parses or fails
//! with a position inside the text; a parsed condition evaluates (to a value
//! or an error) without panicking, against a few request shapes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use teleport_discord::amr::predicate::{Env, Predicate};

fn envs() -> [Env; 2] {
    let full = Env {
        roles: vec!["dev".into(), "access".into(), String::new()],
        suggested_reviewers: vec!["alice@example.com".into()],
        system_annotations: [("env".to_owned(), vec!["prod".to_owned()])].into(),
        user: "bob@example.com".into(),
        request_reason: "deploy \"hotfix\" \u{202e}".into(),
        creation_time: 1_767_225_600,
        expiry: i64::MAX,
        resource_labels_intersection: [("team".to_owned(), vec!["payments".to_owned()])].into(),
        requested_resources: i64::MIN,
        user_traits: [("team".to_owned(), vec!["dev".to_owned(), "sre".to_owned()])].into(),
        plugin_name: "discord".into(),
    };
    [
        full,
        Env {
            creation_time: i64::MIN,
            ..Env::default()
        },
    ]
}

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    match Predicate::parse(src) {
        Ok(p) => {
            for env in envs() {
                if let Err(e) = p.evaluate(&env) {
                    assert!(!e.message.is_empty());
                    assert!(e.pos <= src.len(), "{e} at {}", e.pos);
                }
                let _ = p.matches(&env);
            }
        }
        Err(e) => {
            assert!(!e.message.is_empty());
            assert!(e.pos <= src.len(), "{e} at {}", e.pos);
        }
    }
});
