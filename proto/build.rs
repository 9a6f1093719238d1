//! Compiles `proto/ember.proto` with a vendored protoc, so no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: build scripts are single-threaded; nothing else reads the environment.
    unsafe { std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("ember_descriptor.bin"))
        .bytes(".ember.v1.ControlMessage")
        .bytes(".ember.v1.TopologyDelta")
        // Effects carry a write's arguments: shared with the log's frames, not copied.
        .bytes(".ember.v1.Effect")
        .bytes(".ember.v1.PubSubMessage")
        .compile_protos(&["proto/ember.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto/ember.proto");
    Ok(())
}
