//! Build script: compiles the product's trimmed Teleport protos (`../proto`)
//! into server stubs for the Teleport emulator. The emulator has its own
//! generated types, so it meets the product's client only on the wire.
//! Client stubs are generated too (without tonic's transport helpers), for the
//! testkit's own tests of the emulator over gRPC.

fn main() {
    const PROTOS: &[&str] = &[
        "../proto/teleport/legacy/client/proto/authservice.proto",
        "../proto/teleport/legacy/types/types.proto",
        "../proto/teleport/legacy/types/wrappers/wrappers.proto",
        "../proto/teleport/header/v1/metadata.proto",
        "../proto/teleport/accessmonitoringrules/v1/access_monitoring_rules.proto",
        "../proto/teleport/legacy/types/access_requests.proto",
        "../proto/teleport/header/v1/resourceheader.proto",
        "../proto/teleport/users/v1/users_service.proto",
        "../proto/teleport/accesslist/v1/accesslist.proto",
        "../proto/teleport/accesslist/v1/accesslist_service.proto",
    ];
    println!("cargo:rerun-if-changed=../proto");
    for p in PROTOS {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = match protox::compile(PROTOS, ["../proto"]) {
        Ok(fds) => fds,
        Err(e) => panic!("compiling protos: {e:?}"),
    };
    if let Err(e) = tonic_prost_build::configure()
        .build_client(true)
        .build_transport(false)
        .build_server(true)
        .compile_fds(fds)
    {
        panic!("generating gRPC code: {e}");
    }
}
