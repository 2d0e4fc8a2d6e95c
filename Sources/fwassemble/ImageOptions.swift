import ArgumentParser
import FirmwareAssembler

/// Options for opening container images (qcow2 backing files and snapshots), shared by every
/// command that reads a disk.
struct ImageOptions: ParsableArguments {
    @Option(name: .customLong("backing-dir"), help: ArgumentHelp("Folder to look in for qcow2 backing files that are not next to the image.", valueName: "dir"))
    var backingDir: String?

    @Option(help: ArgumentHelp("Read this qcow2 internal snapshot (name or ID) instead of the active state.", valueName: "name"))
    var snapshot: String?

    /// Opens `image` (any supported container format, detected by content).
    func disk(_ image: String) throws -> Disk {
        try Disk(path: image, backingDirectory: backingDir, snapshot: snapshot)
    }
}
