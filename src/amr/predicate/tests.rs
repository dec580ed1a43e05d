use super::*;

fn env() -> Env {
    Env {
        roles: vec!["dev".into(), "access".into()],
        suggested_reviewers: vec!["alice@example.com".into()],
        system_annotations: [("env".to_owned(), vec!["prod".to_owned()])].into(),
        user: "bob@example.com".into(),
        request_reason: "deploy hotfix".into(),
        creation_time: 1_767_225_600, // 2026-01-01T00:00:00Z
        expiry: 1_767_312_000,        // 2026-01-02T00:00:00Z
        resource_labels_intersection: [("team".to_owned(), vec!["payments".to_owned()])].into(),
        requested_resources: 2,
        user_traits: [("team".to_owned(), vec!["dev".to_owned(), "sre".to_owned()])].into(),
        plugin_name: "discord".into(),
    }
}

fn eval_ok(src: &str) -> bool {
    match Predicate::parse(src) {
        Ok(p) => p.matches(&env()).unwrap_or_else(|e| panic!("{src}: {e}")),
        Err(e) => panic!("{src}: {e}"),
    }
}

fn parse_err(src: &str) -> PredicateError {
    match Predicate::parse(src) {
        Ok(p) => panic!("{src} parsed: {p:?}"),
        Err(e) => e,
    }
}

fn eval_err(src: &str) -> PredicateError {
    Predicate::parse(src)
        .unwrap_or_else(|e| panic!("{src}: {e}"))
        .matches(&env())
        .expect_err(src)
}

#[test]
fn documented_examples() {
    assert!(eval_ok(r#"access_request.spec.roles.contains("dev")"#));
    assert!(!eval_ok(r#"access_request.spec.roles.contains("admin")"#));
    assert!(!eval_ok(
        r#"contains_all(set("access"), access_request.spec.roles)"#
    ));
    assert!(eval_ok(
        r#"contains_all(access_request.spec.roles, set("access"))"#
    ));
    assert!(eval_ok(r#"contains_any(user.traits["team"], set("dev"))"#));
    assert!(eval_ok(
        r#"!is_empty(access_request.spec.suggested_reviewers)"#
    ));
    assert!(
        eval_ok(r#"!is_empty(access_request.spec.roles)"#),
        "upstream's TestMessagePostingWithAMR condition"
    );
    assert!(eval_ok(r#"access_request.spec.user == "bob@example.com""#));
    assert!(eval_ok(
        r#"plugin.spec.name == "discord" && (access_request.spec.roles.contains("dev"))"#
    ));
}

#[test]
fn boolean_operators() {
    assert!(eval_ok("true && true"));
    assert!(!eval_ok("true && false"));
    assert!(eval_ok("false || true"));
    assert!(!eval_ok("!true"));
    assert!(eval_ok("!!true"));
    assert!(eval_ok("!(false || false)"));
    assert!(
        eval_ok("true || false && false"),
        "&& binds tighter than ||"
    );
    assert!(!eval_ok("(true || false) && false"));
    assert!(eval_ok(r#""a" != "b""#));
    assert!(!eval_ok(r#""a" != "a""#));
    assert!(eval_ok(r#"set("a", "b") == set("b", "a")"#));
    assert!(eval_ok(
        "access_request.spec.requested_resources.length == 2"
    ));
    assert!(eval_ok("true == !false"));
}

#[test]
fn maps() {
    assert!(eval_ok(r#"user.traits["team"].contains("sre")"#));
    assert!(
        eval_ok(r#"user.traits.team.contains("sre")"#),
        "map.key works like map[\"key\"]"
    );
    assert!(
        eval_ok(r#"is_empty(user.traits["missing"])"#),
        "a missing key is an empty set"
    );
    assert!(eval_ok(
        r#"access_request.spec.system_annotations["env"].contains("prod")"#
    ));
    assert!(eval_ok(
        r#"access_request.spec.resource_labels_intersection["team"].contains("payments")"#
    ));
}

#[test]
fn set_functions_and_methods() {
    assert!(eval_ok(r#"union(set("a"), set("b")) == set("a", "b")"#));
    assert!(eval_ok(r#"set("a").add("b", "c") == set("a", "b", "c")"#));
    assert!(eval_ok(r#"set("a", "b").remove("a") == set("b")"#));
    assert!(eval_ok(
        r#"access_request.spec.roles.contains_any(set("x", "dev"))"#
    ));
    assert!(eval_ok(
        r#"access_request.spec.roles.contains_all(set("dev", "access"))"#
    ));
    assert!(
        !eval_ok(r#"contains_all(access_request.spec.roles, set())"#),
        "contains_all with an empty set is false"
    );
    assert!(!eval_ok(
        r#"contains_any(access_request.spec.roles, set())"#
    ));
    assert!(eval_ok(r#"set().isempty()"#));
    assert!(eval_ok(
        r#"email.local(access_request.spec.suggested_reviewers) == set("alice")"#
    ));
    assert!(eval_ok(
        r#"strings.split(set("a,b"), ",") == set("a", "b")"#
    ));
}

#[test]
fn string_functions() {
    assert!(eval_ok(
        r#"strings.upper(access_request.spec.user) == "BOB@EXAMPLE.COM""#
    ));
    assert!(eval_ok(r#"strings.lower("ABC") == "abc""#));
    assert!(eval_ok(
        r#"strings.replaceall(access_request.spec.request_reason, "hotfix", "fix") == "deploy fix""#
    ));
    assert!(eval_ok(r#"strings.lower(set("A")) == set("a")"#));
    assert!(eval_ok(r#"ifelse(true, "x", "y") == "x""#));
    assert!(
        !eval_ok(r#""tab\there" == `tab\there`"#),
        "raw strings do not process escapes"
    );
    assert!(eval_ok(r#""a\\b" == `a\b`"#));
    assert!(eval_ok("\"\\u0041\" == \"A\""));
}

#[test]
fn time_comparisons() {
    assert!(eval_ok(
        r#"access_request.spec.creation_time.after(time.RFC3339("2025-12-31T23:59:59Z"))"#
    ));
    assert!(eval_ok(
        r#"before(access_request.spec.creation_time, access_request.spec.expiry)"#
    ));
    assert!(eval_ok(
        r#"access_request.spec.expiry.before(time.RFC3339("2026-01-02T01:00:00+01:00")) == false"#
    ));
    assert!(
        eval_ok(
            r#"access_request.spec.creation_time.between(time.RFC3339("2026-01-02T00:00:00Z"), time.RFC3339("2025-12-31T00:00:00Z"))"#
        ),
        "between swaps reversed bounds"
    );
    assert!(
        !eval_ok(
            r#"between(access_request.spec.creation_time, access_request.spec.creation_time, access_request.spec.expiry)"#
        ),
        "between is exclusive"
    );
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(
        parse_rfc3339("2026-01-01T01:00:00.123+01:00"),
        Some(1_767_225_600)
    );
    assert_eq!(parse_rfc3339("2026-13-01T00:00:00Z"), None);
    assert_eq!(parse_rfc3339("2026-01-01 00:00:00Z"), None);
    let e = eval_err(r#"access_request.spec.creation_time.after(time.RFC3339("yesterday"))"#);
    assert!(e.message.contains("RFC 3339"), "{e}");
}

#[test]
fn malformed_conditions_say_where() {
    let e = parse_err(r#"access_request.spec.roles.contains("dev""#);
    assert_eq!(e.pos, 40, "{e}");
    assert!(e.message.contains("')'"), "{e}");
    let e = parse_err(r#"access_request.spec.rolez.contains("dev")"#);
    assert!(
        e.message
            .contains("unknown function or method \"access_request.spec.rolez.contains\"")
            || e.message.contains("unknown identifier"),
        "{e}"
    );
    let e = parse_err(r#"frobnicate(access_request.spec.roles)"#);
    assert_eq!(e.pos, 0);
    assert!(e.message.contains("unknown function \"frobnicate\""), "{e}");
    let e = parse_err(r#"true && "unterminated"#);
    assert_eq!(e.pos, 8, "{e}");
    let e = parse_err("true &&");
    assert!(e.message.contains("unexpected end"), "{e}");
    let e = parse_err("true false");
    assert_eq!(e.pos, 5, "{e}");
    let e = parse_err("access_request.spec.creation_time > 5");
    assert!(e.message.contains("before()"), "{e}");
    let e = parse_err("");
    assert!(e.message.contains("empty"), "{e}");
    let e = parse_err("user.traits[\"a\"].frob()");
    assert!(e.message.contains("unknown method \"frob\""), "{e}");
    assert!(parse_err("a & b").message.contains("unexpected character"));
    assert!(
        parse_err("@everyone")
            .message
            .contains("unexpected character")
    );
}

#[test]
fn type_errors_are_evaluation_errors() {
    let e = eval_err(r#"access_request.spec.user.contains("b")"#);
    assert!(e.message.contains("expects a set, got a string"), "{e}");
    let e = eval_err(r#"access_request.spec.user == access_request.spec.roles"#);
    assert!(
        e.message.contains("cannot compare a string with a set"),
        "{e}"
    );
    let e = eval_err(r#"access_request.spec.roles"#);
    assert!(e.message.contains("not a bool"), "{e}");
    let e = eval_err(r#"is_empty(set(), set())"#);
    assert!(e.message.contains("takes 1 argument"), "{e}");
}

#[test]
fn nesting_is_bounded() {
    let deep = format!("{}true{}", "(".repeat(5_000), ")".repeat(5_000));
    assert!(parse_err(&deep).message.contains("nested too deeply"));
    let nots = format!("{}true", "!".repeat(10_000));
    assert!(parse_err(&nots).message.contains("nested too deeply"));
    let ok = format!("{}true{}", "(".repeat(20), ")".repeat(20));
    assert!(eval_ok(&ok));
    assert!(
        parse_err(&"x".repeat(MAX_LEN + 1))
            .message
            .contains("longer than")
    );
}

proptest::proptest! {
    #[test]
    fn arbitrary_input_never_panics(src in "\\PC{0,200}") {
        if let Ok(p) = Predicate::parse(&src) {
            let _ = p.matches(&env());
        }
    }

    #[test]
    fn token_soup_never_panics(parts in proptest::collection::vec(proptest::sample::select(vec![
        "(", ")", "[", "]", ",", ".", "!", "&&", "||", "==", "!=", "\"x\"", "1", "true", "set", "contains",
        "access_request.spec.roles", "user.traits", "is_empty", "contains_all", "time.RFC3339", "between",
    ]), 0..40)) {
        let src = parts.join(" ");
        if let Ok(p) = Predicate::parse(&src) {
            let _ = p.matches(&env());
        }
    }
}

/// What `fuzz/fuzz_targets/predicate.rs` checks: a parse error points inside
/// the text; a parsed condition evaluates to a value or an error (pointing
/// inside the text) against an extreme request too.
fn check_predicate(src: &str) -> Result<(), proptest::test_runner::TestCaseError> {
    use proptest::prop_assert;
    match Predicate::parse(src) {
        Ok(p) => {
            let extreme = Env {
                creation_time: i64::MIN,
                expiry: i64::MAX,
                requested_resources: i64::MIN,
                ..Env::default()
            };
            for env in [env(), extreme] {
                if let Err(e) = p.evaluate(&env) {
                    prop_assert!(
                        !e.message.is_empty() && e.pos <= src.len(),
                        "{} at {}",
                        e,
                        e.pos
                    );
                }
                let _ = p.matches(&env);
            }
        }
        Err(e) => prop_assert!(
            !e.message.is_empty() && e.pos <= src.len(),
            "{} at {}",
            e,
            e.pos
        ),
    }
    Ok(())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    #[test]
    fn errors_point_inside_the_text(src in "\\PC{0,200}") {
        check_predicate(&src)?;
    }

    #[test]
    fn richer_token_soup_evaluates_or_errs(parts in proptest::collection::vec(proptest::sample::select(vec![
        "(", ")", "[", "]", ",", ".", "!", "&&", "||", "==", "!=", "\"x\"", "\"\"", "\"\\\"\"", "1",
        "-1", "9223372036854775807", "99999999999999999999", "true", "false", "set", "contains",
        "contains_any", "contains_all", "is_empty", "equals", "regexp.match", "strings.upper",
        "strings.lower", "strings.replaceall", "access_request.spec.roles", "access_request.spec.user",
        "access_request.spec.creation_time", "access_request.spec.expiry",
        "access_request.spec.requested_resources.length", "access_request.spec.system_annotations",
        "user.traits", "\"team\"", "time.RFC3339", "\"2026-01-01T00:00:00Z\"",
        "\"9999-12-31T23:59:59Z\"", "\"0000-01-01T00:00:00Z\"", "between", "add", "after", "before",
        "plugin.spec.name", "\"dev\"", "union", "strings.split", "email.local", "ifelse", "remove",
        "isempty", "\"a@b\"", "\"@\"",
    ]), 0..30)) {
        check_predicate(&parts.join(" "))?;
        check_predicate(&parts.concat())?;
    }
}
