//! Build script: records the git commit and compiler version for `version`,
//! and compiles `proto/*.proto` (our own trimmed Teleport protos) with protox
//! and tonic-prost-build into client stubs (no `protoc` needed). The testkit
//! compiles the same files into server stubs for its emulator.
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=TELEPORT_DISCORD_GIT_COMMIT");
    println!("cargo:rerun-if-changed=.git/HEAD");
    if let Ok(head) = std::fs::read_to_string(".git/HEAD")
        && let Some(r) = head.strip_prefix("ref: ")
    {
        println!("cargo:rerun-if-changed=.git/{}", r.trim());
    }
    let commit = std::env::var("TELEPORT_DISCORD_GIT_COMMIT")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| run("git", &["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=TELEPORT_DISCORD_GIT_COMMIT={commit}");

    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let version = run(&rustc, &["--version"])
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=TELEPORT_DISCORD_RUSTC={version}");

    compile_protos();
}

const PROTOS: &[&str] = &[
    "proto/teleport/legacy/client/proto/authservice.proto",
    "proto/teleport/legacy/types/types.proto",
    "proto/teleport/legacy/types/wrappers/wrappers.proto",
    "proto/teleport/header/v1/metadata.proto",
    "proto/teleport/accessmonitoringrules/v1/access_monitoring_rules.proto",
    "proto/teleport/legacy/types/access_requests.proto",
    "proto/teleport/header/v1/resourceheader.proto",
    "proto/teleport/users/v1/users_service.proto",
    "proto/teleport/accesslist/v1/accesslist.proto",
    "proto/teleport/accesslist/v1/accesslist_service.proto",
];

fn compile_protos() {
    println!("cargo:rerun-if-changed=proto");
    for p in PROTOS {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = match protox::compile(PROTOS, ["proto"]) {
        Ok(fds) => fds,
        Err(e) => panic!("compiling protos: {e:?}"),
    };
    if let Err(e) = tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .compile_fds(fds)
    {
        panic!("generating gRPC code: {e}");
    }
}

fn run(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!s.is_empty()).then_some(s)
}
