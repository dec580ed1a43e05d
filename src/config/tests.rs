use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use super::*;

fn no_env() -> HashMap<String, String> {
    HashMap::new()
}

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn ok(text: &str) -> Loaded {
    ok_env(text, &no_env())
}

fn ok_env(text: &str, env: &dyn Env) -> Loaded {
    match parse(text, Path::new("test.toml"), env) {
        Ok(l) => l,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

fn problems(text: &str) -> Vec<Problem> {
    problems_env(text, &no_env())
}

fn problems_env(text: &str, env: &dyn Env) -> Vec<Problem> {
    match parse(text, Path::new("test.toml"), env) {
        Ok(_) => panic!("expected the config to be refused"),
        Err(ConfigError::Invalid { problems, .. }) => problems,
        Err(other) => panic!("expected validation problems, got {other}"),
    }
}

fn has(problems: &[Problem], key: &str, needle: &str) -> bool {
    problems
        .iter()
        .any(|p| p.key == key && p.message.contains(needle))
}

const MINIMAL: &str = r#"
[teleport]
addr = "teleport.example.com:3025"
identity = "/var/lib/teleport/plugins/discord/auth_id"

[discord]
token = "bot-token-value"

[role_to_recipients]
"*" = "1111111111"
"#;

/// The Go plugin's example file (`teleport-discord configure` of upstream):
/// the same keys, values and commented-out lines, comments reworded.
const UPSTREAM_EXAMPLE: &str = r#"# Example discord plugin configuration TOML file

[teleport]
# Auth or Proxy address
# addr = "example.com:3025"

# When using --format=file:
# identity = "/var/lib/teleport/plugins/discord/auth_id"    # Identity file
# refresh_identity = true                                   # Refresh identity file periodically
#
# When using --format=tls:
# client_key = "/var/lib/teleport/plugins/discord/auth.key" # TLS secret key
# client_crt = "/var/lib/teleport/plugins/discord/auth.crt" # TLS certificate
# root_cas = "/var/lib/teleport/plugins/discord/auth.cas"   # CA certs

[discord]
# Discord Bot OAuth token
token = "secret-token"

[role_to_recipients]
# "dev" = "0987654321"
# "*" = ["1234567890", "0987654321"]

[log]
output = "stderr" # "stdout", "stderr" or a file path
severity = "INFO" # "INFO", "ERROR", "DEBUG" or "WARN"
"#;

#[test]
fn upstream_example_as_shipped_is_refused_like_upstream() {
    // Upstream ships its example with the recipients commented out, so its
    // loader refuses it with "missing required value role_to_recipients.".
    let p = problems(UPSTREAM_EXAMPLE);
    assert!(
        has(
            &p,
            "role_to_recipients",
            "missing required value role_to_recipients."
        ),
        "{p:?}"
    );
    assert!(has(&p, "teleport", "no credentials configured"), "{p:?}");
}

#[test]
fn upstream_example_filled_in_loads_with_the_same_meaning() {
    let text = UPSTREAM_EXAMPLE
        .replace(
            "# addr = \"example.com:3025\"",
            "addr = \"example.com:3025\"",
        )
        .replace("# identity = ", "identity = ")
        .replace("# refresh_identity = true", "refresh_identity = true")
        .replace("# \"dev\" = ", "\"dev\" = ")
        .replace("# \"*\" = ", "\"*\" = ");
    let l = ok(&text);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let c = &l.config;
    assert_eq!(c.teleport.addr.to_string(), "example.com:3025");
    assert_eq!(
        c.teleport.credentials,
        Credentials::IdentityFile {
            path: "/var/lib/teleport/plugins/discord/auth_id".into(),
            refresh: true,
            refresh_interval: ConfigDuration::new(DEFAULT_REFRESH_IDENTITY_INTERVAL),
        }
    );
    assert_eq!(c.teleport.connect_via, ConnectVia::Auto);
    assert_eq!(c.discord.token.expose(), "secret-token");
    assert_eq!(c.discord.api_url.as_str(), DEFAULT_DISCORD_API_URL);
    assert_eq!(c.discord.global_rate_limit, 50);
    assert_eq!(
        c.role_to_recipients.entries()["dev"],
        vec![Recipient::new("0987654321")]
    );
    assert_eq!(
        c.role_to_recipients.entries()["*"],
        vec![Recipient::new("1234567890"), Recipient::new("0987654321")]
    );
    assert_eq!(c.log.output, LogOutput::Stderr);
    assert_eq!(c.log.severity, Severity::Info);
    assert_eq!(c.log.format, LogFormat::Text);
    assert_eq!(c.http.listen_addr.to_string(), DEFAULT_LISTEN_ADDR);
    assert!(c.http.admin_token.is_none());
}

#[test]
fn example_printed_by_configure_is_valid_and_complete() {
    let l = ok(EXAMPLE_CONFIG);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    // Every key the loader knows appears in the example (active or commented).
    for key in [
        "addr",
        "auth_server",
        "connect_via",
        "identity",
        "refresh_identity",
        "refresh_identity_interval",
        "client_key",
        "client_crt",
        "root_cas",
        "token",
        "api_url",
        "apiurl",
        "global_rate_limit",
        "role_to_recipients",
        "output",
        "severity",
        "format",
        "listen_addr",
        "admin_token",
    ] {
        assert!(
            EXAMPLE_CONFIG.contains(key),
            "example config does not mention `{key}`"
        );
    }
    for var in env_vars::ALL {
        assert!(
            EXAMPLE_CONFIG.contains(var) || var == env_vars::CONFIG,
            "example does not mention {var}"
        );
    }
}

#[test]
fn defaults_apply() {
    let l = ok(
        "[teleport]\nidentity = \"/id\"\n[discord]\ntoken = \"t\"\n[role_to_recipients]\n\"*\" = \"1\"\n",
    );
    assert_eq!(l.config.teleport.addr.to_string(), DEFAULT_TELEPORT_ADDR);
    assert_eq!(l.config.log.severity, Severity::Info);
    assert_eq!(l.config.http.listen_addr.ip().to_string(), "127.0.0.1");
}

#[test]
fn recipients_accept_string_or_array() {
    let l = ok(&MINIMAL.replace(
        "\"*\" = \"1111111111\"",
        "\"*\" = \"1111111111\"\n\"dev\" = [\"2222222222\", \"3333333333\", \"2222222222\"]\nops = \"4444444444\"",
    ));
    let e = l.config.role_to_recipients.entries();
    assert_eq!(e["*"], vec![Recipient::new("1111111111")]);
    assert_eq!(
        e["dev"],
        vec![Recipient::new("2222222222"), Recipient::new("3333333333")]
    );
    assert_eq!(e["ops"], vec![Recipient::new("4444444444")]);
}

#[test]
fn recipient_errors_name_the_key() {
    let p = problems(&MINIMAL.replace("\"*\" = \"1111111111\"", "\"*\" = 12345"));
    assert!(
        has(
            &p,
            "role_to_recipients.\"*\"",
            "unexpected type for recipients value"
        ),
        "{p:?}"
    );
    let p = problems(&MINIMAL.replace("\"*\" = \"1111111111\"", "\"*\" = [\"1\", 2]"));
    assert!(
        has(&p, "role_to_recipients.\"*\"[1]", "found an integer"),
        "{p:?}"
    );
    let p = problems(&MINIMAL.replace("\"*\" = \"1111111111\"", "\"*\" = []\ndev = \"1\""));
    assert!(
        has(
            &p,
            "role_to_recipients.\"*\"",
            "missing required value role_to_recipients[*]."
        ),
        "{p:?}"
    );
    let p = problems(&MINIMAL.replace("\"*\" = \"1111111111\"", "dev = \"1\""));
    assert!(
        has(&p, "role_to_recipients.\"*\"", "role_to_recipients[*]"),
        "{p:?}"
    );
    let p = problems(&MINIMAL.replace("\"*\" = \"1111111111\"", ""));
    assert!(
        has(
            &p,
            "role_to_recipients",
            "missing required value role_to_recipients."
        ),
        "{p:?}"
    );
    let p = problems(&MINIMAL.replace("\"*\" = \"1111111111\"", "\"*\" = [\"1\", \" \"]"));
    assert!(
        has(&p, "role_to_recipients.\"*\"[1]", "empty recipient"),
        "{p:?}"
    );
    let no_table = format!(
        "role_to_recipients = \"1\"\n{}",
        MINIMAL.replace("[role_to_recipients]\n\"*\" = \"1111111111\"", "")
    );
    let p = problems(&no_table);
    assert!(has(&p, "role_to_recipients", "expected a table"), "{p:?}");
}

#[test]
fn non_channel_recipients_are_kept_with_a_warning() {
    let l = ok(&MINIMAL.replace(
        "\"*\" = \"1111111111\"",
        "\"*\" = [\"1111111111\", \"alice@example.com\"]",
    ));
    let w = &l.warnings;
    assert!(
        w.iter().any(|p| p.key == "role_to_recipients.\"*\"[1]"
            && p.message.contains("not a Discord channel ID")),
        "{w:?}"
    );
    assert_eq!(l.config.role_to_recipients.entries()["*"].len(), 2);
    assert_eq!(Recipient::new("alice@example.com").channel_id(), None);
    assert_eq!(
        Recipient::new("1111111111").channel_id(),
        Some(1_111_111_111)
    );
}

#[test]
fn recipients_for_follows_upstream() {
    let l = ok(&MINIMAL.replace(
        "\"*\" = \"1111111111\"",
        "\"*\" = [\"9\", \"8\"]\ndev = [\"1\", \"2\"]\nops = [\"2\", \"3\"]\nempty = []",
    ));
    let r = &l.config.role_to_recipients;
    let ids = |roles: &[&str]| {
        r.recipients_for(roles.iter().copied())
            .iter()
            .map(|x| x.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&["dev"]), ["1", "2"]);
    assert_eq!(ids(&["dev", "ops"]), ["1", "2", "3"]);
    assert_eq!(ids(&["unknown"]), ["9", "8"]);
    assert_eq!(ids(&["dev", "unknown"]), ["1", "2", "9", "8"]);
    assert_eq!(
        ids(&["empty"]),
        ["9", "8"],
        "a role with an empty list uses \"*\""
    );
    assert_eq!(ids(&[]), ["9", "8"]);
}

#[test]
fn tls_triple_rules() {
    let base = MINIMAL.replace(
        "identity = \"/var/lib/teleport/plugins/discord/auth_id\"",
        "",
    );
    let l = ok(&base.replace(
        "[discord]",
        "client_key = \"/k\"\nclient_crt = \"/c\"\nroot_cas = \"/ca\"\n[discord]",
    ));
    assert_eq!(
        l.config.teleport.credentials,
        Credentials::KeyPair {
            key: "/k".into(),
            cert: "/c".into(),
            root_cas: "/ca".into()
        }
    );
    let p = problems(&base.replace("[discord]", "client_key = \"/k\"\n[discord]"));
    assert!(
        has(
            &p,
            "teleport",
            "configuration setting(s) `client_key` are provided but setting(s) `client_crt`, `root_cas` are missing"
        ),
        "{p:?}"
    );
    let p = problems(&MINIMAL.replace("[discord]", "client_crt = \"/c\"\n[discord]"));
    assert!(has(&p, "teleport.identity", "mutually exclusive"), "{p:?}");
    let p = problems(&base.replace("[discord]", "refresh_identity = true\nclient_key = \"/k\"\nclient_crt = \"/c\"\nroot_cas = \"/ca\"\n[discord]"));
    assert!(
        has(
            &p,
            "teleport.refresh_identity",
            "`refresh_identity` requires that `identity` be set"
        ),
        "{p:?}"
    );
    let p = problems(&base);
    assert!(has(&p, "teleport", "no credentials configured"), "{p:?}");
}

#[test]
fn teleport_values_are_checked() {
    let p = problems(&MINIMAL.replace("teleport.example.com:3025", "https://teleport.example.com"));
    assert!(has(&p, "teleport.addr", "without a scheme"), "{p:?}");
    let p = problems(&MINIMAL.replace("teleport.example.com:3025", "teleport.example.com"));
    assert!(has(&p, "teleport.addr", "has no port"), "{p:?}");
    let p = problems(&MINIMAL.replace("teleport.example.com:3025", "teleport.example.com:99999"));
    assert!(has(&p, "teleport.addr", "invalid port"), "{p:?}");
    let p = problems(&MINIMAL.replace("[discord]", "refresh_identity = \"yes\"\n[discord]"));
    assert!(
        has(&p, "teleport.refresh_identity", "expected a boolean"),
        "{p:?}"
    );
    let p = problems(&MINIMAL.replace(
        "[discord]",
        "refresh_identity_interval = \"ten minutes\"\n[discord]",
    ));
    assert!(
        has(&p, "teleport.refresh_identity_interval", "ten minutes"),
        "{p:?}"
    );
    let p = problems(&MINIMAL.replace("[discord]", "refresh_identity_interval = 60\n[discord]"));
    assert!(
        has(
            &p,
            "teleport.refresh_identity_interval",
            "expected a duration string"
        ),
        "{p:?}"
    );
    let p = problems(&MINIMAL.replace(
        "[discord]",
        "refresh_identity_interval = \"100ms\"\n[discord]",
    ));
    assert!(
        has(&p, "teleport.refresh_identity_interval", "too short"),
        "{p:?}"
    );
    let p = problems(&MINIMAL.replace("[discord]", "connect_via = \"tunnel\"\n[discord]"));
    assert!(
        has(
            &p,
            "teleport.connect_via",
            "\"auto\", \"auth\" or \"proxy\""
        ),
        "{p:?}"
    );
    let l = ok(&MINIMAL.replace("[discord]", "refresh_identity = true\nrefresh_identity_interval = \"30s\"\nconnect_via = \"Proxy\"\n[discord]"));
    assert_eq!(l.config.teleport.connect_via, ConnectVia::Proxy);
    assert!(matches!(
        l.config.teleport.credentials,
        Credentials::IdentityFile { refresh: true, refresh_interval, .. } if refresh_interval.get() == std::time::Duration::from_secs(30)
    ));
}

#[test]
fn ipv6_teleport_addr() {
    let l = ok(&MINIMAL.replace("teleport.example.com:3025", "[::1]:3025"));
    assert_eq!(l.config.teleport.addr.host(), "::1");
    assert_eq!(l.config.teleport.addr.to_string(), "[::1]:3025");
}

#[test]
fn auth_server_is_a_deprecated_alias() {
    let l = ok(&MINIMAL.replace("addr = ", "auth_server = "));
    assert_eq!(
        l.config.teleport.addr.to_string(),
        "teleport.example.com:3025"
    );
    assert!(
        l.warnings
            .iter()
            .any(|w| w.key == "teleport.auth_server" && w.message.contains("deprecated")),
        "{:?}",
        l.warnings
    );
    let l = ok(&MINIMAL.replace("[discord]", "auth_server = \"old:3025\"\n[discord]"));
    assert_eq!(
        l.config.teleport.addr.to_string(),
        "teleport.example.com:3025",
        "addr wins"
    );
    assert!(
        l.warnings
            .iter()
            .any(|w| w.key == "teleport.auth_server" && w.message.contains("ignored"))
    );
}

#[test]
fn discord_keys_match_like_go_toml() {
    for spelling in ["token", "Token", "TOKEN"] {
        let l = ok(&MINIMAL.replace("token = ", &format!("{spelling} = ")));
        assert_eq!(
            l.config.discord.token.expose(),
            "bot-token-value",
            "{spelling}"
        );
    }
    for spelling in ["apiurl", "APIURL", "aPIURL", "api_url"] {
        let l = ok(&MINIMAL.replace(
            "[role_to_recipients]",
            &format!("{spelling} = \"http://127.0.0.1:9999/api/v10/\"\n[role_to_recipients]"),
        ));
        assert_eq!(
            l.config.discord.api_url.as_str(),
            "http://127.0.0.1:9999/api/v10",
            "{spelling}"
        );
    }
    let p = problems(&MINIMAL.replace(
        "[role_to_recipients]",
        "apiurl = \"http://a/\"\napi_url = \"http://b/\"\n[role_to_recipients]",
    ));
    assert!(p.iter().any(|x| x.message.contains("both")), "{p:?}");
    let p = problems(
        &MINIMAL
            .replace(
                "[role_to_recipients]",
                "token = \"again\"\n[role_to_recipients]",
            )
            .replace("token = \"bot", "Token = \"bot"),
    );
    assert!(
        p.iter()
            .any(|x| x.key == "discord.token" && x.message.contains("set twice")),
        "{p:?}"
    );
}

#[test]
fn unversioned_discord_url_is_pinned_to_v10() {
    for url in ["https://discord.com/api/", "https://discord.com/api"] {
        let l = ok(&MINIMAL.replace(
            "[role_to_recipients]",
            &format!("apiurl = \"{url}\"\n[role_to_recipients]"),
        ));
        assert_eq!(l.config.discord.api_url.as_str(), DEFAULT_DISCORD_API_URL);
        assert!(
            l.warnings
                .iter()
                .any(|w| w.key == "discord.apiurl" && w.message.contains("no API version"))
        );
    }
    let p = problems(&MINIMAL.replace(
        "[role_to_recipients]",
        "api_url = \"ftp://x\"\n[role_to_recipients]",
    ));
    assert!(has(&p, "discord.api_url", "http:// or https://"), "{p:?}");
    let p = problems(&MINIMAL.replace(
        "[role_to_recipients]",
        "api_url = \"not a url\"\n[role_to_recipients]",
    ));
    assert!(has(&p, "discord.api_url", "not a valid URL"), "{p:?}");
}

#[test]
fn global_rate_limit_is_checked() {
    let l = ok(&MINIMAL.replace(
        "[role_to_recipients]",
        "global_rate_limit = 40\n[role_to_recipients]",
    ));
    assert_eq!(l.config.discord.global_rate_limit, 40);
    let p = problems(&MINIMAL.replace(
        "[role_to_recipients]",
        "global_rate_limit = 0\n[role_to_recipients]",
    ));
    assert!(
        has(&p, "discord.global_rate_limit", "out of range"),
        "{p:?}"
    );
    let p = problems(&MINIMAL.replace(
        "[role_to_recipients]",
        "global_rate_limit = \"50\"\n[role_to_recipients]",
    ));
    assert!(
        has(&p, "discord.global_rate_limit", "expected an integer"),
        "{p:?}"
    );
}

#[test]
fn missing_token_is_named() {
    let p = problems(&MINIMAL.replace("token = \"bot-token-value\"", ""));
    assert!(
        has(&p, "discord.token", "missing required value discord.token"),
        "{p:?}"
    );
}

#[test]
fn token_from_file_is_read_and_trimmed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("discord-token");
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(b"  file-token-value\n\n"))
        .expect("write");
    let l = ok(&MINIMAL.replace("bot-token-value", &path.display().to_string()));
    assert_eq!(l.config.discord.token.expose(), "file-token-value");

    let missing = dir.path().join("nope");
    let p = problems(&MINIMAL.replace("bot-token-value", &missing.display().to_string()));
    assert!(has(&p, "discord.token", "cannot read file"), "{p:?}");
    assert!(p[0].message.contains(&missing.display().to_string()));

    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").expect("write");
    let p = problems(&MINIMAL.replace("bot-token-value", &empty.display().to_string()));
    assert!(has(&p, "discord.token", "is empty"), "{p:?}");
}

#[test]
fn unknown_keys_warn_with_line_and_suggestion() {
    let text =
        MINIMAL.replace("[discord]", "refresh_identiy = true\n[discord]") + "\n[extra]\nfoo = 1\n";
    let l = ok(&text);
    let w = l
        .warnings
        .iter()
        .find(|w| w.key == "teleport.refresh_identiy")
        .unwrap_or_else(|| panic!("{:?}", l.warnings));
    assert_eq!(w.line, Some(6));
    assert!(
        w.message
            .contains("did you mean `teleport.refresh_identity`?"),
        "{w}"
    );
    assert_eq!(
        w.to_string(),
        "line 6: `teleport.refresh_identiy`: unknown key, ignored; did you mean `teleport.refresh_identity`?"
    );
    assert!(
        l.warnings.iter().any(|w| w.key == "extra"),
        "{:?}",
        l.warnings
    );
}

#[test]
fn legacy_and_compat_keys_warn_but_load() {
    let text = format!(
        "PluginType = \"discord\"\n{}",
        MINIMAL.replace("token = ", "recipients = [\"x\"]\ntoken = ")
    );
    let l = ok(&text);
    assert!(
        l.warnings.iter().any(|w| w.key == "PluginType"),
        "{:?}",
        l.warnings
    );
    assert!(
        l.warnings.iter().any(|w| w.key == "discord.recipients"),
        "{:?}",
        l.warnings
    );
}

#[test]
fn log_settings() {
    for (v, want) in [
        ("INFO", Severity::Info),
        ("debug", Severity::Debug),
        ("Warning", Severity::Warn),
        ("err", Severity::Error),
        ("TRACE", Severity::Trace),
    ] {
        let l = ok(&format!("{MINIMAL}\n[log]\nseverity = \"{v}\"\n"));
        assert_eq!(l.config.log.severity, want, "{v}");
    }
    let p = problems(&format!("{MINIMAL}\n[log]\nseverity = \"loud\"\n"));
    assert!(
        has(&p, "log.severity", "unsupported logger severity: 'loud'"),
        "{p:?}"
    );
    for (v, want) in [
        ("stdout", LogOutput::Stdout),
        ("1", LogOutput::Stdout),
        ("error", LogOutput::Stderr),
        ("/var/log/td.log", LogOutput::File("/var/log/td.log".into())),
    ] {
        let l = ok(&format!("{MINIMAL}\n[log]\noutput = \"{v}\"\n"));
        assert_eq!(l.config.log.output, want, "{v}");
    }
    let l = ok(&format!("{MINIMAL}\n[log]\nformat = \"JSON\"\n"));
    assert_eq!(l.config.log.format, LogFormat::Json);
    let p = problems(&format!("{MINIMAL}\n[log]\nformat = \"xml\"\n"));
    assert!(has(&p, "log.format", "\"text\" or \"json\""), "{p:?}");
}

#[test]
fn http_settings() {
    let l = ok(&format!(
        "{MINIMAL}\n[http]\nlisten_addr = \"0.0.0.0:9090\"\nadmin_token = \"0123456789abcdef0123\"\n"
    ));
    assert_eq!(l.config.http.listen_addr.to_string(), "0.0.0.0:9090");
    assert_eq!(
        l.config.http.admin_token.as_ref().map(Secret::expose),
        Some("0123456789abcdef0123")
    );
    let p = problems(&format!("{MINIMAL}\n[http]\nlisten_addr = \":8080\"\n"));
    assert!(has(&p, "http.listen_addr", "not an IP:port"), "{p:?}");
    let p = problems(&format!("{MINIMAL}\n[http]\nadmin_token = \"short\"\n"));
    assert!(has(&p, "http.admin_token", "too short"), "{p:?}");
    assert!(
        !p[0].message.contains("short\""),
        "the token value must not be echoed: {p:?}"
    );
}

#[test]
fn reconcile_settings() {
    let l = ok(MINIMAL);
    assert_eq!(
        l.config.reconcile.resync_interval.get(),
        DEFAULT_RESYNC_INTERVAL
    );
    assert_eq!(l.config.reconcile.workers, DEFAULT_RECONCILE_WORKERS);
    let l = ok(&format!(
        "{MINIMAL}\n[reconcile]\nresync_interval = \"30s\"\nworkers = 2\n"
    ));
    assert_eq!(
        l.config.reconcile.resync_interval.get(),
        std::time::Duration::from_secs(30)
    );
    assert_eq!(l.config.reconcile.workers, 2);
    let p = problems(&format!(
        "{MINIMAL}\n[reconcile]\nresync_interval = \"1s\"\nworkers = 0\n"
    ));
    assert!(has(&p, "reconcile.resync_interval", "too short"), "{p:?}");
    assert!(has(&p, "reconcile.workers", "out of range"), "{p:?}");
}

#[test]
fn fail_fast_comes_from_the_environment_with_go_spelling() {
    assert!(!ok(MINIMAL).config.teleport.fail_fast);
    for (v, want) in [
        ("true", true),
        ("1", true),
        ("T", true),
        ("FALSE", false),
        ("0", false),
    ] {
        let l = ok_env(MINIMAL, &env(&[(env_vars::FAIL_FAST, v)]));
        assert_eq!(l.config.teleport.fail_fast, want, "{v}");
    }
    let p = problems_env(MINIMAL, &env(&[(env_vars::FAIL_FAST, "yes")]));
    assert!(
        has(
            &p,
            env_vars::FAIL_FAST,
            "failed to parse content 'yes' of the TELEPORT_PLUGIN_FAIL_FAST environment variable"
        ),
        "{p:?}"
    );
}

#[test]
fn env_overrides_win() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin_file = dir.path().join("admin");
    std::fs::write(&admin_file, "admin-token-from-file-0123\n").expect("write");
    let e = env(&[
        (env_vars::DISCORD_TOKEN, "env-bot-token"),
        (env_vars::ADMIN_TOKEN, &admin_file.display().to_string()),
        (env_vars::LISTEN_ADDR, "0.0.0.0:8081"),
        (env_vars::TELEPORT_ADDR, "proxy.example.com:443"),
        (env_vars::IDENTITY, "/run/secrets/identity"),
        (env_vars::LOG_SEVERITY, "debug"),
        (env_vars::LOG_FORMAT, "json"),
    ]);
    let l = ok_env(MINIMAL, &e);
    let c = &l.config;
    assert_eq!(c.discord.token.expose(), "env-bot-token");
    assert_eq!(
        c.http.admin_token.as_ref().map(Secret::expose),
        Some("admin-token-from-file-0123")
    );
    assert_eq!(c.http.listen_addr.to_string(), "0.0.0.0:8081");
    assert_eq!(c.teleport.addr.to_string(), "proxy.example.com:443");
    assert!(
        matches!(&c.teleport.credentials, Credentials::IdentityFile { path, .. } if path == Path::new("/run/secrets/identity"))
    );
    assert_eq!(c.log.severity, Severity::Debug);
    assert_eq!(c.log.format, LogFormat::Json);

    // The token may come only from the environment.
    let l = ok_env(
        &MINIMAL.replace("token = \"bot-token-value\"", ""),
        &env(&[(env_vars::DISCORD_TOKEN, "only-env")]),
    );
    assert_eq!(l.config.discord.token.expose(), "only-env");
    // Blank variables count as unset.
    let l = ok_env(MINIMAL, &env(&[(env_vars::DISCORD_TOKEN, "  ")]));
    assert_eq!(l.config.discord.token.expose(), "bot-token-value");
    // A bad value from the environment names the variable.
    let p = problems_env(MINIMAL, &env(&[(env_vars::LISTEN_ADDR, "nowhere")]));
    assert!(
        has(
            &p,
            "http.listen_addr (from TELEPORT_DISCORD_LISTEN_ADDR)",
            "not an IP:port"
        ),
        "{p:?}"
    );
}

#[test]
fn every_problem_is_listed_at_once() {
    let text =
        "[teleport]\naddr = \"x\"\n[discord]\n[role_to_recipients]\n[log]\nseverity = \"loud\"\n";
    let p = problems(text);
    for key in [
        "teleport.addr",
        "teleport",
        "discord.token",
        "role_to_recipients",
        "log.severity",
    ] {
        assert!(p.iter().any(|x| x.key == key), "missing {key} in {p:?}");
    }
    let err = parse(text, Path::new("/etc/teleport-discord.toml"), &no_env()).expect_err("invalid");
    let shown = err.to_string();
    assert!(
        shown.starts_with("config file /etc/teleport-discord.toml is invalid (5 problems):"),
        "{shown}"
    );
    assert!(shown.contains("line 2: `teleport.addr`"), "{shown}");
}

#[test]
fn syntax_errors_have_a_position() {
    let err = parse("[teleport\naddr = 1", Path::new("x.toml"), &no_env()).expect_err("invalid");
    match err {
        ConfigError::Syntax { message, .. } => assert!(message.contains("line 1"), "{message}"),
        other => panic!("{other}"),
    }
    let err = parse("a = 1\na = 2\n", Path::new("x.toml"), &no_env()).expect_err("duplicate");
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
}

#[test]
fn wrong_types_are_named() {
    let p = problems(&MINIMAL.replace("token = \"bot-token-value\"", "token = 42"));
    assert!(
        has(&p, "discord.token", "expected a string, found an integer"),
        "{p:?}"
    );
    let p = problems(&MINIMAL.replace("[teleport]", "teleport = 5\n[other]"));
    assert!(
        p.iter()
            .any(|x| x.key == "teleport" && x.message.contains("expected a table")),
        "{p:?}"
    );
}

#[test]
fn secrets_do_not_show_in_debug() {
    let l = ok_env(
        &format!("{MINIMAL}\n[http]\nadmin_token = \"admin-secret-0123456789\"\n"),
        &no_env(),
    );
    let shown = format!("{:?}", l.config);
    assert!(!shown.contains("bot-token-value"), "{shown}");
    assert!(!shown.contains("admin-secret-0123456789"), "{shown}");
}

#[test]
fn diff_names_changed_keys() {
    let a = ok(MINIMAL).config;
    let b = ok(&format!(
        "{}\n[log]\nseverity = \"debug\"\n[http]\nlisten_addr = \"127.0.0.1:9999\"\n",
        MINIMAL
            .replace("bot-token-value", "other-token")
            .replace("\"*\" = \"1111111111\"", "\"*\" = \"2\"")
    ))
    .config;
    let d = ConfigDiff::between(&a, &b);
    assert_eq!(
        d.changed,
        [
            "discord.token",
            "role_to_recipients",
            "log.severity",
            "http.listen_addr"
        ]
    );
    assert_eq!(d.restart_required, ["http.listen_addr"]);
    assert_eq!(ConfigDiff::between(&a, &a), ConfigDiff::default());
}

#[test]
fn load_reports_missing_file() {
    let err =
        load(Path::new("/nonexistent/teleport-discord.toml"), &no_env()).expect_err("missing");
    assert!(
        err.to_string()
            .contains("cannot read config file /nonexistent/teleport-discord.toml"),
        "{err}"
    );
}

proptest::proptest! {
    #[test]
    fn loader_never_panics(text in "\\PC{0,400}") {
        let _ = parse(&text, Path::new("fuzz.toml"), &no_env());
    }

    #[test]
    fn loader_never_panics_on_tomlish_input(
        section in proptest::sample::select(vec!["teleport", "discord", "role_to_recipients", "log", "http", "x"]),
        key in "[a-zA-Z_*\"]{1,20}",
        value in proptest::sample::select(vec!["1", "\"\"", "\"/\"", "true", "[]", "[1, \"a\"]", "{a = 1}", "1.5", "1979-05-27", "\"a:1\""]),
    ) {
        let text = format!("{MINIMAL}\n[{section}]\n{key} = {value}\n");
        let _ = parse(&text, Path::new("fuzz.toml"), &no_env());
    }
}

/// What `fuzz/fuzz_targets/config.rs` checks: every outcome names a key and a
/// line inside the text (or, for TOML syntax, a line and column).
fn check_outcome(text: &str) -> Result<(), proptest::test_runner::TestCaseError> {
    use proptest::prop_assert;
    let lines = text.split('\n').count();
    match parse(text, Path::new("fuzz.toml"), &no_env()) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                prop_assert!(!w.key.is_empty(), "warning without a key: {}", w);
                prop_assert!(w.line.is_none_or(|l| (1..=lines).contains(&l)), "{}", w);
            }
        }
        Err(ConfigError::Syntax { message, .. }) => {
            prop_assert!(message.contains("line "), "no line: {}", message);
        }
        Err(ConfigError::Invalid { problems, .. }) => {
            prop_assert!(!problems.is_empty());
            for p in &problems {
                prop_assert!(!p.key.is_empty() && !p.message.is_empty(), "{:?}", p);
                prop_assert!(p.line.is_none_or(|l| (1..=lines).contains(&l)), "{}", p);
            }
        }
        Err(e @ ConfigError::Read { .. }) => prop_assert!(false, "parse read a file: {}", e),
        Err(e @ ConfigError::NotApplied { .. }) => {
            prop_assert!(false, "parsing applies nothing: {}", e)
        }
    }
    Ok(())
}

fn toml_line() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let section = proptest::sample::select(vec![
        "[teleport]",
        "[discord]",
        "[role_to_recipients]",
        "[log]",
        "[http]",
        "[reconcile]",
        "[[teleport]]",
        "[discord.x]",
        "[x]",
        "[log",
        "",
    ]);
    let key = proptest::sample::select(vec![
        "addr",
        "auth_server",
        "identity",
        "refresh_identity",
        "refresh_identity_interval",
        "client_key",
        "client_crt",
        "root_cas",
        "connect_via",
        "token",
        "Token",
        "APIURL",
        "api_url",
        "global_rate_limit",
        "\"*\"",
        "dev",
        "output",
        "severity",
        "format",
        "listen_addr",
        "admin_token",
        "resync_interval",
        "workers",
        "teleport.addr",
        "discord.token",
        "refresh_identiy",
        "\"\"",
        "'a b'",
    ]);
    let value = proptest::sample::select(vec![
        "1",
        "0",
        "-1",
        "99999999999999999999",
        "\"\"",
        "\"/\"",
        "\"/nonexistent\"",
        "true",
        "[]",
        "[1, \"a\"]",
        "[\"1\", \"2\"]",
        "{a = 1}",
        "1.5",
        "nan",
        "1979-05-27",
        "\"a:1\"",
        "\"127.0.0.1:0\"",
        "\"[::1]:99999\"",
        "\"1h30m\"",
        "\"0s\"",
        "\"-5s\"",
        "\"9999999999h\"",
        "\"trace\"",
        "\"json\"",
        "\"stdout\"",
        "\"0123456789abcdef\"",
        "\"1111111111\"",
        "\"\\u0000\"",
        "'''\nx'''",
        "\"🙂\"",
    ]);
    prop_oneof![
        section.prop_map(str::to_owned),
        (key, value).prop_map(|(k, v)| format!("{k} = {v}")),
        "\\PC{0,30}",
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    #[test]
    fn any_text_names_a_key_and_a_line(text in "\\PC{0,300}") {
        check_outcome(&text)?;
    }

    #[test]
    fn tomlish_text_names_a_key_and_a_line(
        lines in proptest::collection::vec(toml_line(), 0..24),
        base in proptest::bool::ANY,
    ) {
        let text = format!("{}\n{}", if base { MINIMAL } else { "" }, lines.join("\n"));
        check_outcome(&text)?;
    }
}

#[test]
fn review_is_off_by_default_and_needs_a_key_and_a_mapping_when_on() {
    let c = ok(MINIMAL).config;
    assert!(!c.review.enabled);
    assert_eq!(c.review.discord_user_id_trait, "discord_user_id");
    let p = problems(&format!("{MINIMAL}\n[review]\nenabled = true\n"));
    assert!(has(&p, "review.enabled", "discord.public_key"), "{p:?}");
    let key = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    let with_key = MINIMAL.replace(
        "token = \"bot-token-value\"",
        &format!("token = \"bot-token-value\"\npublic_key = \"{key}\""),
    );
    let on = ok(&format!("{with_key}\n[review]\nenabled = true\n")).config;
    assert!(on.review.enabled);
    let p = problems(&format!(
        "{with_key}\n[review]\nenabled = true\ndiscord_user_id_trait = \"\"\n"
    ));
    assert!(has(&p, "review.enabled", "[review.users]"), "{p:?}");
    let table = ok(&format!(
        "{with_key}\n[review]\nenabled = true\ndiscord_user_id_trait = \"\"\n[review.users]\n\"123456789012345678\" = \" alice \"\n"
    ))
    .config;
    assert_eq!(
        table
            .review
            .users
            .get("123456789012345678")
            .map(String::as_str),
        Some("alice")
    );
}

#[test]
fn review_mistakes_name_their_key() {
    let p = problems(&format!(
        "{MINIMAL}\n[review]\nenabled = \"yes\"\nlisten_addr = \"nowhere\"\n[review.users]\n\"alice\" = \"alice\"\n\"123\" = 5\n\"124\" = \"\"\n"
    ));
    assert!(has(&p, "review.enabled", "expected a boolean"), "{p:?}");
    assert!(has(&p, "review.listen_addr", "not an IP:port"), "{p:?}");
    assert!(
        has(&p, "review.users.alice", "not a Discord user ID"),
        "{p:?}"
    );
    assert!(has(&p, "review.users.123", "expected a string"), "{p:?}");
    assert!(
        has(&p, "review.users.124", "empty Teleport user name"),
        "{p:?}"
    );
    let p = problems(&format!(
        "{MINIMAL}\n[http]\nlisten_addr = \"127.0.0.1:9000\"\n[review]\nlisten_addr = \"127.0.0.1:9000\"\n"
    ));
    assert!(
        has(&p, "review.listen_addr", "already http.listen_addr"),
        "{p:?}"
    );
}

#[test]
fn review_enabled_and_listener_changes_need_a_restart_the_mapping_does_not() {
    let a = ok(MINIMAL).config;
    let mut b = a.clone();
    b.review.enabled = true;
    b.review.users.insert("1".into(), "x".into());
    let d = ConfigDiff::between(&a, &b);
    assert_eq!(d.changed, ["review.enabled", "review.users"]);
    assert_eq!(d.restart_required, ["review.enabled"]);
}

#[test]
fn notices_default_as_upstream_and_mistakes_name_their_key() {
    let c = ok(MINIMAL).config;
    assert!(!c.notify.requester);
    assert!(c.access_list.reminders);
    assert_eq!(c.access_list.channel, None);
    assert_eq!(
        c.access_list.interval.get(),
        std::time::Duration::from_secs(3 * 3600)
    );
    let on = ok(&format!(
        "{MINIMAL}\n[notify]\nrequester = true\n[access_list]\nreminders = false\nchannel = \"2222222222\"\ninterval = \"10m\"\n"
    ))
    .config;
    assert!(on.notify.requester && !on.access_list.reminders);
    assert_eq!(
        on.access_list.channel.as_ref().map(|c| c.as_str()),
        Some("2222222222")
    );
    let p = problems(&format!(
        "{MINIMAL}\n[notify]\nrequester = 1\n[access_list]\nchannel = \"#reviews\"\ninterval = \"soon\"\n"
    ));
    assert!(has(&p, "notify.requester", "expected a boolean"), "{p:?}");
    assert!(
        has(&p, "access_list.channel", "not a Discord channel ID"),
        "{p:?}"
    );
    assert!(p.iter().any(|x| x.key == "access_list.interval"), "{p:?}");
}
