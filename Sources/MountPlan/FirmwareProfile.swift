import Assembly
import DiskImage
import FileSystemBtrfs
import FileSystems

/// The firmware families fwassemble recognises; the raw value is the plan's `profile` (JSON).
public enum FirmwareFamily: String, Sendable, CaseIterable {
    case haos
    case balenaos
    case ostree
    case openwrt
    case raspberrypiOS = "raspberrypi-os"
    case mender
    case flatcar
    /// openSUSE MicroOS / SLE Micro: the booted root is a snapper snapshot of a btrfs root, the
    /// default subvolume.
    case microos
    case generic
}

/// Firmware families detected from the disk's contents. The generic path (fstab + units) needs
/// no profile; a profile names the family in the report and, for the families whose booted root
/// is not simply the root partition (balenaOS's hostapp container, an OSTree deployment), builds
/// that root and the boot-time mounts that are neither fstab nor mount units.
struct FirmwareProfile {
    var family: FirmwareFamily
    var warnings: [String] = []

    static func detect(disk: any PlanningDisk, root: any FileSystemReader) -> FirmwareProfile {
        let names = disk.partitions.compactMap { $0.name ?? $0.label }
        // Asking what the disk looks like: an unreadable path answers no, as a missing one.
        func exists(_ path: String) -> Bool { root.probe(path) != nil }
        // Except /etc/os-release, which systemd reads at boot: an unreadable one is a warning.
        var warnings: [String] = []
        if names.contains(where: { $0.hasPrefix("hassos-") }) { return FirmwareProfile(family: .haos) }
        if FlatcarProfile.detect(disk) { return FirmwareProfile(family: .flatcar) }
        if names.contains(where: { $0.hasPrefix("resin-") || $0.hasPrefix("balena-") }) || exists("/balena") {
            return FirmwareProfile(family: .balenaos)
        }
        if exists("/ostree") {
            return FirmwareProfile(family: .ostree)
        }
        if exists("/etc/openwrt_release") {
            return FirmwareProfile(family: .openwrt)
        }
        if disk.partitions.contains(where: { $0.label == "bootfs" || $0.label == "boot" }), exists("/boot/firmware") || exists("/boot") {
            if let text = ProfilePaths.text("/etc/os-release", in: root, limit: 65536, warnings: &warnings),
               text.contains("raspberrypi") || text.contains("Raspbian") {
                return FirmwareProfile(family: .raspberrypiOS)
            }
        }
        if let btrfs = root as? BtrfsReader, let path = try? btrfs.rootSubvolumePath,   // a probe: unreadable is no snapshot
           SnapperSnapshot(subvolumePath: path) != nil {
            return FirmwareProfile(family: .microos, warnings: warnings)
        }
        return FirmwareProfile(family: exists("/etc/mender") || exists("/data/mender") ? .mender : .generic, warnings: warnings)
    }

    /// The booted root: the mounts that make "/" (the root partition first) and the view of it
    /// the booted system's fstab and units are read from.
    /// `options`: the root mount's (a btrfs root's `subvol=`).
    func bootedRoot(disk: any PlanningDisk, root: RootChoice, physical: any FileSystemReader, options: String = "") -> BootedRoot {
        let plain = BootedRoot(mounts: [PlannedMount(where: "/", kind: .partition, partition: root.partition, fstype: root.filesystem,
                                                     options: options, source: .other(root.reason))],
                               config: physical)
        let found: (root: BootedRoot?, warnings: [String])
        switch family {
        case .balenaos: found = BalenaProfile.bootedRoot(root: root, physical: physical)
        case .ostree: found = OSTreeProfile.bootedRoot(root: root, physical: physical)
        case .openwrt: found = OpenWrtProfile.bootedRoot(disk: disk, root: root, physical: physical)
        case .flatcar: found = FlatcarProfile.bootedRoot(disk: disk, root: root, physical: physical)
        case .haos, .raspberrypiOS, .mender, .microos, .generic: return plain
        }
        return (found.root ?? plain).with(warnings: found.warnings)
    }
}

/// What a profile makes of the root partition.
struct BootedRoot {
    /// Mounts applied before everything else, in order (the root partition first).
    var mounts: [PlannedMount]
    /// The booted root as the system sees it, for reading /etc/fstab and systemd units.
    var config: any FileSystemReader
    var warnings: [String] = []

    func with(warnings: [String]) -> BootedRoot {
        var copy = self
        copy.warnings += warnings
        return copy
    }
}

/// Path helpers over one filesystem, for profiles that follow symlinks by hand to name the
/// directories they plan (namespace paths must be written out, not inode numbers). A path that
/// cannot be read answers as a missing one, and the error is added to `warnings` (what the
/// device's init would log before it carried on).
enum ProfilePaths {
    /// `body`'s answer, nil when it throws (the error noted in `warnings` against `path`).
    static func reading<T>(_ path: String, _ warnings: inout [String], _ body: () throws -> T?) -> T? {
        do {
            return try body()
        } catch {
            warnings.append("\(path): unreadable (\(FWError(error).message))")
            return nil
        }
    }

    /// Whether `path` exists in `fs` (the last symlink not followed).
    static func exists(_ path: String, in fs: any FileSystemReader, warnings: inout [String]) -> Bool {
        reading(path, &warnings) { try fs.lookup(path) } != nil
    }

    /// The inode of the directory at `path`, nil when it is missing or not a directory.
    static func directory(_ path: String, in fs: any FileSystemReader, followLast: Bool = false, warnings: inout [String]) -> UInt64? {
        reading(path, &warnings) {
            guard let inode = try fs.lookup(Array(path.utf8), followLast: followLast),
                  try fs.metadata(of: inode).type == .directory else { return nil }
            return inode
        }
    }

    /// The canonical path of `path` inside `fs` (every symlink, the last one too, resolved;
    /// at most 40 hops), nil when a component does not exist.
    static func canonical(_ path: String, in fs: any FileSystemReader, warnings: inout [String]) -> String? {
        let view = NamespaceFileSystem(name: fs.sourceName)
        guard reading("/", &warnings, { try view.mount(fs, at: .root, origin: fs.sourceName) }) != nil else { return nil }
        return view.canonicalPath(NamespacePath(path))?.display
    }

    /// A small text file's contents with surrounding whitespace removed, nil when missing.
    static func text(_ path: String, in fs: any FileSystemReader, limit: Int = 64 * 1024, warnings: inout [String]) -> String? {
        reading(path, &warnings) {
            guard let inode = try fs.lookup(Array(path.utf8), followLast: true) else { return nil }
            let bytes = try fs.readSmallFile(inode, limit: limit)
            return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: " \t\r\n")
        }
    }

    /// The target of a symlink, nil when `path` is not one.
    static func symlinkTarget(_ path: String, in fs: any FileSystemReader, warnings: inout [String]) -> String? {
        reading(path, &warnings) {
            guard let inode = try fs.lookup(path) else { return nil }
            let meta = try fs.metadata(of: inode)
            guard meta.type == .symlink, let target = meta.symlinkTarget else { return nil }
            return String(decoding: target, as: UTF8.self)
        }
    }

    /// Names in a directory, sorted; empty when it does not exist.
    static func names(in path: String, of fs: any FileSystemReader, warnings: inout [String]) -> [String] {
        let entries = reading(path, &warnings) { () -> [DirectoryEntry]? in
            guard let inode = try fs.lookup(Array(path.utf8), followLast: true) else { return nil }
            return try fs.directoryEntries(of: inode)
        }
        return (entries ?? []).map { String(decoding: $0.name, as: UTF8.self) }.filter { $0 != "." && $0 != ".." }.sorted()
    }

    /// A single path component fit to be spliced into a path read from the disk.
    static func isPlainName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 255 && s != "." && s != ".." && !s.contains("/") && !s.utf8.contains(0)
    }
}
