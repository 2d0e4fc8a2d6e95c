import FirmwareAssembler

// The Docker calls of the C ABI. This build has no Docker inspector in the facade yet.

func dockerJSON(_ disk: Disk, options: CallOptions) throws -> String {
    throw CallError(.notAvailable, "fwa_docker_json: this libfwassemble has no Docker inspector")
}

func exportContainer(_ disk: Disk, reference: String, output: String, options: CallOptions) throws -> String {
    throw CallError(.notAvailable, "fwa_export_container: this libfwassemble has no Docker inspector")
}
