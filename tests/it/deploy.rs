//! The deployment files (Dockerfile, fly.toml, systemd unit, Kubernetes
//! manifests) agree with each other and with the service's defaults.

use std::collections::HashMap;
use std::path::Path;

use teleport_discord::app::SHUTDOWN_GRACE;
use teleport_discord::config::{self, env_vars};
use teleport_discord::http::ROUTES;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn served(path: &str) -> bool {
    ROUTES.iter().any(|(m, p)| *m == "GET" && *p == path)
}

/// `(instruction, rest)` for each Dockerfile line of the final stage.
fn dockerfile_final_stage() -> Vec<(String, String)> {
    let text = read("Dockerfile").replace("\\\n", " ");
    let mut stage = Vec::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (instr, rest) = line.split_once(' ').unwrap_or((line, ""));
        if instr.eq_ignore_ascii_case("FROM") {
            stage.clear();
        }
        stage.push((instr.to_ascii_uppercase(), rest.trim().to_owned()));
    }
    stage
}

fn container_port() -> u16 {
    let stage = dockerfile_final_stage();
    let expose: u16 = stage
        .iter()
        .find(|(i, _)| i == "EXPOSE")
        .and_then(|(_, r)| r.split('/').next()?.parse().ok())
        .expect("EXPOSE");
    let env = stage
        .iter()
        .filter(|(i, _)| i == "ENV")
        .map(|(_, r)| r.clone())
        .collect::<Vec<_>>()
        .join(" ");
    let listen = env
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{}=", env_vars::LISTEN_ADDR)))
        .expect("listen address in ENV");
    assert_eq!(
        listen,
        format!("0.0.0.0:{expose}"),
        "the container listens on every interface, on the EXPOSEd port"
    );
    expose
}

#[test]
fn dockerfile_runtime_stage() {
    let stage = dockerfile_final_stage();
    let get = |i: &str| {
        stage
            .iter()
            .find(|(x, _)| x == i)
            .map(|(_, r)| r.clone())
            .unwrap_or_default()
    };
    let _ = container_port();
    assert!(
        get("HEALTHCHECK").contains("\"healthcheck\""),
        "health check uses our verb, no shell: {}",
        get("HEALTHCHECK")
    );
    assert_eq!(get("STOPSIGNAL"), "SIGTERM");
    let user = get("USER");
    assert!(
        user.split(':')
            .all(|p| p.parse::<u32>().is_ok_and(|uid| uid != 0)),
        "numeric non-root user: {user}"
    );
    assert!(get("ENV").contains(&format!("{}=/etc/teleport-discord.toml", env_vars::CONFIG)));
    let build = read("Dockerfile");
    assert!(
        build.contains("cargo build --release --locked"),
        "the image builds as CI does"
    );
    let rust = build
        .lines()
        .find_map(|l| l.strip_prefix("ARG RUST_VERSION="))
        .expect("RUST_VERSION");
    assert_eq!(
        rust.trim(),
        teleport_discord::version::RUSTC,
        "build image matches our toolchain"
    );
}

#[test]
fn fly_toml_matches_the_image_and_routes() {
    let fly: toml::Table = read("fly.toml").parse().expect("fly.toml is TOML");
    let port = container_port();
    let svc = fly["http_service"].as_table().expect("http_service");
    assert_eq!(svc["internal_port"].as_integer(), Some(i64::from(port)));
    assert!(
        svc["min_machines_running"]
            .as_integer()
            .is_some_and(|n| n >= 2),
        "more than one machine"
    );
    let checks = svc["checks"].as_array().expect("checks");
    let paths: Vec<&str> = checks.iter().filter_map(|c| c["path"].as_str()).collect();
    assert_eq!(paths, ["/healthz", "/readyz"]);
    assert!(paths.iter().all(|p| served(p)));
    let metrics = fly["metrics"].as_table().expect("metrics");
    assert_eq!(metrics["port"].as_integer(), Some(i64::from(port)));
    assert!(served(metrics["path"].as_str().expect("path")));
    assert_eq!(fly["kill_signal"].as_str(), Some("SIGTERM"));
    assert!(
        fly["kill_timeout"]
            .as_integer()
            .is_some_and(|t| t as u64 > SHUTDOWN_GRACE.as_secs())
    );
    let env = fly["env"].as_table().expect("env");
    assert_eq!(
        env[env_vars::LISTEN_ADDR].as_str(),
        Some(format!("0.0.0.0:{port}").as_str())
    );

    // The config file it ships loads, with the secrets from the environment.
    let secrets: HashMap<String, String> = [(
        env_vars::DISCORD_TOKEN.to_owned(),
        "from-fly-secrets".to_owned(),
    )]
    .into();
    let loaded = config::parse(
        &read("deploy/fly/teleport-discord.toml"),
        Path::new("fly"),
        &secrets,
    )
    .expect("fly config loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let identity_file = fly["files"]
        .as_array()
        .and_then(|f| f.iter().find(|x| x.get("secret_name").is_some()))
        .and_then(|x| x["guest_path"].as_str())
        .expect("identity secret file");
    assert!(matches!(loaded.config.teleport.credentials,
        config::Credentials::IdentityFile { ref path, .. } if path == Path::new(identity_file)));
}

#[test]
fn kubernetes_manifests_are_consistent() {
    let docs =
        yaml_rust2::YamlLoader::load_from_str(&read("deploy/kubernetes/teleport-discord.yaml"))
            .expect("YAML");
    let kind = |k: &str| {
        docs.iter()
            .find(|d| d["kind"].as_str() == Some(k))
            .unwrap_or_else(|| panic!("no {k}"))
    };
    let deploy = kind("Deployment");
    assert!(deploy["spec"]["replicas"].as_i64().is_some_and(|n| n >= 2));
    let pod = &deploy["spec"]["template"]["spec"];
    assert!(
        pod["terminationGracePeriodSeconds"]
            .as_i64()
            .is_some_and(|t| t as u64 > SHUTDOWN_GRACE.as_secs())
    );
    let c = &pod["containers"][0];
    let port = c["ports"][0]["containerPort"]
        .as_i64()
        .expect("containerPort");
    assert_eq!(port, i64::from(container_port()));
    assert_eq!(
        c["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    let ann = &deploy["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(
        ann["prometheus.io/port"].as_str(),
        Some(port.to_string().as_str())
    );
    assert!(served(ann["prometheus.io/path"].as_str().expect("path")));
    assert_eq!(
        kind("Service")["spec"]["ports"][0]["targetPort"].as_str(),
        Some("http")
    );

    // The ConfigMap's config loads (token files replaced by the environment
    // here), listens on the container port, and points at mounted paths.
    let toml_text = kind("ConfigMap")["data"]["teleport-discord.toml"]
        .as_str()
        .expect("config");
    let env: HashMap<String, String> = [
        (env_vars::DISCORD_TOKEN.to_owned(), "t".to_owned()),
        (
            env_vars::ADMIN_TOKEN.to_owned(),
            "0123456789abcdef-admin".to_owned(),
        ),
    ]
    .into();
    let loaded =
        config::parse(toml_text, Path::new("configmap"), &env).expect("ConfigMap config loads");
    assert_eq!(i64::from(loaded.config.http.listen_addr.port()), port);
    let mounts: Vec<&str> = c["volumeMounts"]
        .as_vec()
        .expect("mounts")
        .iter()
        .filter_map(|m| m["mountPath"].as_str())
        .collect();
    for file in [
        "/var/lib/teleport/plugins/discord/discord-token",
        "/var/lib/teleport/plugins/discord/admin-token",
    ] {
        assert!(toml_text.contains(file) && mounts.contains(&file), "{file}");
    }
    let config::Credentials::IdentityFile { path, .. } = &loaded.config.teleport.credentials else {
        panic!("identity file expected");
    };
    assert!(
        mounts.iter().any(|m| path.starts_with(m)),
        "identity {path:?} is mounted"
    );
    let args: Vec<&str> = c["args"]
        .as_vec()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert!(
        args.iter().any(
            |a| a.ends_with("teleport-discord.toml") && mounts.iter().any(|m| a.starts_with(m))
        )
    );
}

#[test]
fn systemd_unit_reloads_with_sighup_and_verifies() {
    let unit = read("deploy/systemd/teleport-discord.service");
    assert!(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
    assert!(unit.contains(
        "ExecStart=/usr/local/bin/teleport-discord start --config=/etc/teleport-discord.toml"
    ));
    assert!(
        unit.contains("NoNewPrivileges=yes")
            && unit.contains("ProtectSystem=strict")
            && unit.contains("PrivateTmp=yes")
    );
    let timeout: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.parse().ok())
        .expect("TimeoutStopSec");
    assert!(timeout > SHUTDOWN_GRACE.as_secs());
    // systemd-analyze verify, where systemd is installed, against the built binary.
    if std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze not installed; skipping unit verification");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("teleport-discord.service");
    std::fs::write(
        &path,
        unit.replace(
            "/usr/local/bin/teleport-discord",
            env!("CARGO_BIN_EXE_teleport-discord"),
        ),
    )
    .expect("write");
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
