import Assembly
import DiskImage
import FileSystems
import MountPlan

/// The one error type every facade call throws (code, message, disk/partition/path).
@_exported import struct DiskImage.FWError
/// Stops a running job (JobHooks.cancellation; the CLI's signal handlers set the process's).
@_exported import class DiskImage.Cancellation
@_exported import struct FileSystems.Metadata
@_exported import enum FileSystems.FileType
@_exported import struct FileSystems.Timestamp
@_exported import struct FileSystems.DeviceNumber
@_exported import struct FileSystems.ExtendedAttribute
@_exported import protocol FileSystems.FileContents

/// One entry of the booted device's filesystem tree, as `Disk.namespace(_:)` walks it: the same
/// entries, in the same order, with the same fields as the archive `assemble` writes (sockets
/// included: the walk does not filter; `--no-devices` does not apply).
public struct AssembledEntry: Sendable {
    /// Absolute path in the namespace: "/" for the root, "/etc/fstab" below it. Names that are
    /// not UTF-8 are shown with replacement characters; `rawPath` has the exact bytes.
    public var path: String { "/" + String(decoding: rawPath, as: UTF8.self) }
    /// The exact path bytes below the root, without a leading "/" (empty for the root).
    public var rawPath: [UInt8]
    /// Type, mode, owners, times, size, symlink target, device numbers, xattrs, as the booted
    /// device shows them (overlay-private xattrs removed).
    public var metadata: Metadata
    /// For a non-directory already met at another path (a hardlink, or the same inode seen
    /// again through a bind mount): that first path, absolute ("/usr/bin/a").
    public var hardlinkTarget: String?
    /// The mounted filesystem the entry comes from ("partition 8", or a mount point).
    public var origin: String
    let contents: ContentsHandle?

    /// True for a regular file whose bytes `openContents()` can stream.
    public var hasContents: Bool { contents != nil && metadata.type == .regular }

    /// Opens a regular file's contents for streaming reads (`read(into:)` until it returns 0).
    /// Read them on the thread that walks, before asking for the next entry's contents when the
    /// filesystem is shared. Throws `.invalidArgument` for anything but a regular file and
    /// `FWError` naming the path when the filesystem cannot read it.
    public func openContents() throws -> any FileContents {
        guard metadata.type == .regular, let contents else {
            throw FWError(.invalidArgument, "not a regular file with contents", path: path)
        }
        do {
            return try contents.reader.openFile(contents.inode)
        } catch let e as FWError {
            throw e.within(path: path)
        }
    }
}

/// The filesystem reader and inode behind an entry. The readers are not thread-safe; the
/// handle is only carried along with the entry and used by `openContents()` (documented there).
final class ContentsHandle: @unchecked Sendable {
    let reader: any FileSystemReader
    let inode: UInt64

    init(reader: any FileSystemReader, inode: UInt64) {
        self.reader = reader
        self.inode = inode
    }
}

/// The booted device's filesystem tree (the root with every planned mount applied), walked
/// lazily in the archive's order: depth first, names sorted bytewise. Nothing is read until the
/// walk reaches it, so a pipeline can stop early or skip contents it does not need.
///
/// Not thread-safe: walk it (and read contents) from one thread at a time. Each call to
/// `makeIterator()` starts a fresh walk.
public final class AssembledNamespace: Sequence {
    /// The plan the namespace applies.
    public var plan: Plan { booted.plan }
    private let booted: BootedNamespace
    private var lastWalkProblems: [WalkProblem] = []

    init(disk: Disk, plan: Plan, replayJournal: Bool) throws {
        booted = try BootedNamespace(disk: disk, plan: plan, partitions: try PartitionFileSystems(disk: disk, replayJournal: replayJournal))
    }

    /// Problems met so far (mounts not applied, unreadable directories, loops cut), as
    /// "/path: message". Grows as the walk proceeds; complete once a walk has ended.
    public var problems: [String] {
        booted.warnings.map { "\($0.place): \($0.message)" } + booted.namespace.problems.map(\.description) + lastWalkProblems.map(\.placedDescription)
    }

    public func makeIterator() -> Iterator {
        lastWalkProblems = []
        return Iterator(namespace: self, walk: booted.walk())
    }

    /// The walk's iterator.
    public struct Iterator: IteratorProtocol {
        private let namespace: AssembledNamespace
        private var walk: TreeWalk

        init(namespace: AssembledNamespace, walk: TreeWalk) {
            self.namespace = namespace
            self.walk = walk
        }

        public mutating func next() -> AssembledEntry? {
            defer {
                if walk.problems.count > namespace.lastWalkProblems.count {
                    namespace.lastWalkProblems += walk.problems.dropFirst(namespace.lastWalkProblems.count)
                }
            }
            return walk.next().map { AssembledEntry($0, booted: namespace.booted) }
        }
    }
}

@available(*, unavailable, message: "walk an AssembledNamespace from one thread at a time")
extension AssembledNamespace: Sendable {}

extension Disk {
    /// The assembled namespace of `plan` (from `plan(options:)`, possibly edited), for pipelines
    /// that want entries rather than a tarball:
    ///
    ///     let disk = try Disk(path: "haos.img")
    ///     for entry in try disk.namespace(try disk.plan()) { print(entry.path) }
    ///
    /// Throws when the root mount cannot be opened; later problems go to `problems`.
    /// `replayJournal: false` reads ext3/ext4 filesystems that need recovery as they are on disk
    /// (pass the plan's own `--no-replay` choice to see what it planned from).
    public func namespace(_ plan: Plan, replayJournal: Bool = true) throws -> AssembledNamespace {
        try AssembledNamespace(disk: self, plan: plan, replayJournal: replayJournal)
    }
}
