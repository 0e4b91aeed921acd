//! Compiles every file under `proto/` with protox (pure Rust, no protoc binary needed)
//! and generates prost messages plus tonic clients and servers.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = "../../proto";
    let files = [
        "strata/common.proto",
        "strata/error.proto",
        "strata/stream.proto",
        "strata/partition.proto",
        "strata/manager.proto",
        "strata/location.proto",
        "strata/raft.proto",
        "strata/record.proto",
    ];
    let paths: Vec<String> = files.iter().map(|f| format!("{proto_root}/{f}")).collect();
    for path in &paths {
        println!("cargo:rerun-if-changed={path}");
    }
    let descriptors = protox::compile(&paths, [proto_root])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
