import ArgumentParser
import FirmwareAssembler
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Options for opening container images (qcow2 backing files and snapshots), shared by every
/// command that reads a disk.
struct ImageOptions: ParsableArguments {
    @Option(name: .customLong("backing-dir"), help: ArgumentHelp("Folder to look in for qcow2 backing files that are not next to the image.", valueName: "dir"))
    var backingDir: String?

    @Option(help: ArgumentHelp("Read this qcow2 internal snapshot (name or ID) instead of the active state.", valueName: "name"))
    var snapshot: String?

    @Option(name: .customLong("flash-geometry"), help: ArgumentHelp("A raw NAND dump's page and spare (OOB) sizes, stripped before UBI is read (default: detected).", valueName: "page+spare"))
    var flashGeometry: String?

    @Option(name: .customLong("device"), help: ArgumentHelp("Another device of a multi-device filesystem, e.g. a btrfs RAID member; matched by filesystem UUID and device id (repeatable).", valueName: "path"))
    var devices: [String] = []

    /// The request's source group for `image`.
    func source(_ image: String?, noReplay: Bool = false) -> SourceRequest {
        SourceRequest(disk: image, backingDir: backingDir, snapshot: snapshot, noReplay: noReplay, flashGeometry: flashGeometry,
                      devices: devices)
    }

    /// Opens `image` (any supported container format, detected by content). On a terminal, the
    /// decompression of a compressed image shows its progress on stderr.
    func disk(_ image: String) throws -> Disk {
        try Self.open(source(image))
    }

    /// Opens a request's disk, with the decompression progress on a terminal.
    static func open(_ source: SourceRequest) throws -> Disk {
        var progress: (@Sendable (UInt64, UInt64?) -> Void)? = nil
        if isatty(2) == 1 {
            progress = { done, total in
                let finished = total.map { $0 == done } ?? false
                let line = finished ? "\rdecompressed \(done >> 20) MiB\u{1B}[K\n" : "\rdecompressing: \(done >> 20) MiB\u{1B}[K"
                var bytes = Array(line.utf8)
                _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
            }
        }
        return try source.open(decompressionProgress: progress)
    }
}

/// The disk a command boots and looks at (plan, docker): the image, how it is opened, which root.
struct BootedDisk: ParsableArguments {
    @Argument(help: "The raw disk image.")
    var image: String

    @OptionGroup var imageOptions: ImageOptions

    @OptionGroup var rootOption: RootOption

    func open() throws -> Disk { try imageOptions.disk(image) }
}

/// `--root`, shared by the commands that plan the boot (plan, assemble, docker).
struct RootOption: ParsableArguments {
    @Option(help: "Use this root partition (number, GPT name or filesystem label) whatever the bootloader says.")
    var root: String?

    var planOptions: PlanOptions { PlanOptions(root: root) }
}

/// `--no-replay` (extract, assemble): read ext3/ext4 filesystems that need recovery, and UBIFS
/// volumes whose journal holds uncommitted nodes, as they are on disk instead of replaying their
/// journal as the kernel does when it mounts them.
struct ReplayOption: ParsableArguments {
    @Flag(name: .customLong("no-replay"), help: "Do not replay journals (ext3/ext4 filesystems that need recovery, btrfs log trees, UBIFS journals: snapshots of running devices, dumps of mounted flash): read the stale committed state.")
    var noReplay = false

    var replayJournal: Bool { !noReplay }

    /// A progress line on a terminal while a big journal (over 4096 blocks) is replayed.
    static func progressLine(enabled: Bool) -> JournalReplayProgress? {
        guard enabled else { return nil }
        return { partition, done, total in
            guard total > 4096 else { return }
            Fwassemble.writeError(done >= total
                ? "\r" + String(repeating: " ", count: 100) + "\r"
                : "\r\(partition): replaying the journal: \(done * 100 / max(total, 1))% of \(total) blocks   ")
        }
    }
}
