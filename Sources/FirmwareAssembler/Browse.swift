import Assembly
import DiskImage
import DockerState
import FileSystemExt4
import FileSystems
import Foundation
import MountPlan

@_exported import struct Assembly.Provenance

/// `ls`, `cat`, `stat`, `find` (and each side of `diff`): which tree is looked at. The booted
/// namespace by default; `partition` looks at one filesystem instead.
public struct BrowseRequest: Sendable, Equatable, Codable, FlatRequest {
    public var source = SourceRequest()
    /// `--root`: the root partition (number, GPT name or label), whatever the bootloader says.
    public var root: String?
    /// `--partition`: one partition's filesystem (number, GPT name or label) instead of the
    /// booted namespace.
    public var partition: String?

    public init(source: SourceRequest = SourceRequest(), root: String? = nil, partition: String? = nil) {
        self.source = source
        self.root = root
        self.partition = partition
    }

    /// Every default: the booted namespace.
    public init() { self.init(source: SourceRequest()) }

    static let job = "browse"

    enum CodingKeys: String, CodingKey, CaseIterable { case root, partition }

    /// Every key of the JSON form: the source group's and these.
    public static let keys = Set(CodingKeys.allCases.map(\.rawValue) + SourceRequest.CodingKeys.allCases.map(\.rawValue))

    mutating func fields(_ f: RequestFields<CodingKeys>) throws {
        try f.selector(&root, .root)
        try f.selector(&partition, .partition)
    }

    mutating func groups(_ g: RequestGroups) throws {
        try g.code(&source)
    }

    public static func decode(_ json: [UInt8]) throws -> BrowseRequest { try RequestKeys.decode(json) }

    /// `--root` and `--partition` exclude each other; neither may be empty (`.invalidArgument`).
    public func validate() throws {
        if root != nil, partition != nil {
            throw FWError(.invalidArgument, "--root chooses the booted namespace's root; --partition looks at one filesystem instead: give one")
        }
        if root?.isEmpty == true { throw FWError(.invalidArgument, "--root is empty") }
        if partition?.isEmpty == true { throw FWError(.invalidArgument, "--partition is empty") }
    }
}

/// The tree a disk shows (the booted namespace, or one partition's filesystem), looked at path
/// by path: `stat`, `list`, `contents(of:)` and `read` resolve one path through the namespace's
/// resolver (symlinks followed inside the tree, never outside it) and list only the directories
/// on the way; `walk` streams a subtree in the archive's order.
///
/// Not thread-safe: use it from one thread at a time.
public final class DeviceTree {
    /// For messages: "disk.img booted namespace", "disk.img partition 2 (rootfs)".
    public let name: String
    /// The plan applied (nil for one partition).
    public var plan: Plan? { booted?.plan }
    let reader: any FileSystemReader
    let booted: BootedNamespace?
    private let disk: Disk
    /// The partition table's warnings (read once, when the tree was opened).
    private let table: [String]

    init(disk: Disk, request: BrowseRequest) throws {
        try request.validate()
        self.disk = disk
        self.table = try disk.table().warnings
        if let partition = request.partition {
            let (reader, description) = try disk.openFileSystem(partition: partition, replayJournal: !request.source.noReplay)
            (self.reader, self.name, self.booted) = (reader, description, nil)
        } else {
            let booted = try BootedNamespace(disk: disk, options: PlanOptions(root: request.root, replayJournal: !request.source.noReplay))
            (self.reader, self.name, self.booted) = (booted.namespace, booted.namespace.sourceName, booted)
        }
    }

    /// What opening and looking met that did not stop anything, as assemble reports it: the
    /// partition table's and the plan's warnings, vfat options, the namespace engine's problems
    /// (grows as paths are looked up), journal replay warnings, `--device` files no btrfs read
    /// took. A walk's own are its `problems`.
    public var warnings: [RunWarning] {
        guard let booted else {
            return table.map { RunWarning(code: .partitionTable, place: "partition table", message: $0) }
                + replayWarnings(of: reader).map { RunWarning(code: .journal, place: name, message: $0) } + disk.deviceWarnings()
        }
        let journals = booted.partitions.journalWarnings.map { RunWarning(code: .journal, place: $0.place, message: $0.message) }
        return booted.setupWarnings(table: table) + booted.namespaceWarnings + journals + disk.deviceWarnings()
    }

    /// The inode `path` names and the path it was found at (symlinks in the middle followed,
    /// the last one when `followLast` is set; absolute targets from the tree's root, ".." never
    /// above it). Throws `.notFound` naming the path when a component does not exist.
    func resolve(_ path: String, followLast: Bool) throws -> (inode: UInt64, path: NamespacePath) {
        let reader = self.reader
        let namespace = booted?.namespace
        let resolver = PathResolver<UInt64>(root: reader.rootInode, child: { parent, parentPath, name in
            guard try reader.metadata(of: parent).type == .directory else { return nil }
            // A namespace directory shows the mount points below it only when given its path.
            guard let namespace else { return try reader.entry(named: name, in: parent)?.inode }
            return try namespace.entry(named: name, in: parent, at: NamespacePath(components: parentPath))?.inode
        }, symlinkTarget: { inode in
            let meta = try reader.metadata(of: inode)
            return meta.type == .symlink ? meta.symlinkTarget : nil
        })
        do {
            guard let found = try resolver.resolve(PathComponents.split(Array(path.utf8)), followLast: followLast) else {
                throw FWError(.notFound, "no such file or directory", path: path)
            }
            return (found.node, NamespacePath(components: found.path))
        } catch let e as FWError {
            throw e.within(disk: disk.path, path: path)
        }
    }

    /// The entry at `path` (the last symlink not followed unless `followSymlinks`), without its
    /// hardlink target (only a walk knows which path came first).
    public func entry(_ path: String, followSymlinks: Bool = false) throws -> AssembledEntry {
        let (inode, at) = try resolve(path, followLast: followSymlinks)
        return try entry(inode: inode, at: at)
    }

    private func entry(inode: UInt64, at path: NamespacePath) throws -> AssembledEntry {
        do {
            let meta = try reader.metadata(of: inode)
            return AssembledEntry(WalkEntry(path: path.relativeBytes, metadata: meta, reader: reader), booted: booted)
        } catch let e as FWError {
            throw e.within(disk: disk.path, path: path.display)
        }
    }

    /// Every field of the entry at `path` and where it comes from.
    public func stat(_ path: String, followSymlinks: Bool = false) throws -> EntryStatus {
        let (inode, at) = try resolve(path, followLast: followSymlinks)
        let entry = try entry(inode: inode, at: at)
        var source: Provenance
        if let namespace = booted?.namespace {
            source = namespace.provenance(of: inode, at: at)
        } else {
            source = Provenance(mount: 0, mountPoint: "/", origin: name, filesystem: reader.sourceName,
                                format: reader.formatName, inode: inode)
        }
        if source.filesystem == nil { source.inode = nil }
        return EntryStatus(path: path, entry: entry, source: source)
    }

    /// The children of the directory at `path` (a symlink to one followed), sorted bytewise by
    /// name; a path that is not a directory lists itself, as ls(1) does.
    public func list(_ path: String = "/") throws -> [AssembledEntry] {
        let (inode, at) = try resolve(path, followLast: true)
        let meta = try entry(inode: inode, at: at).metadata
        guard meta.type == .directory else { return [try entry(inode: inode, at: at)] }
        do {
            var children = try reader.directoryEntries(of: inode, at: at)
            children.removeAll { NamespacePath.isDotEntry($0.name) || !NamespacePath.isValidName($0.name) }
            children.sort { $0.name.lexicographicallyPrecedes($1.name) }
            return try children.map { try entry(inode: $0.inode, at: at.child($0.name)) }
        } catch let e as FWError {
            throw e.within(disk: disk.path, path: at.display)
        }
    }

    /// A stream over the bytes of the regular file at `path` (symlinks followed inside the tree).
    public func contents(of path: String) throws -> any FileContents {
        let (inode, at) = try resolve(path, followLast: true)
        let meta = try entry(inode: inode, at: at).metadata
        guard meta.type == .regular else {
            throw FWError(.invalidArgument, meta.type == .directory ? "is a directory" : "not a regular file (\(meta.type.rawValue))",
                          disk: disk.path, path: path)
        }
        do {
            return try reader.openFile(inode)
        } catch let e as FWError {
            throw e.within(disk: disk.path, path: at.display)
        }
    }

    /// The whole file at `path`; `.limitExceeded` past `limit` bytes (stream bigger ones with
    /// `contents(of:)`).
    public func read(_ path: String, limit: Int = 256 << 20) throws -> [UInt8] {
        let file = try contents(of: path)
        guard file.size <= UInt64(limit) else {
            throw FWError(.limitExceeded, "\(file.size) bytes, over the \(limit)-byte limit of read (stream it with contents(of:))",
                          disk: disk.path, path: path)
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(file.size))
        try file.forEachChunk { bytes.append(contentsOf: $0) }
        return bytes
    }

    /// The subtree at `path` (a symlink to a directory followed), walked lazily in the archive's
    /// order with the archive's fields; memory stays bounded by the open directories.
    public func walk(_ path: String = "/") throws -> Walk {
        let (inode, at) = try resolve(path, followLast: true)
        let excluded = booted == nil ? [:] : NamespaceFileSystem.penguinDirectories
        return Walk(walk: TreeWalk(reader, from: inode, path: at.relativeBytes, excluding: excluded), booted: booted)
    }

    /// A walk of a `DeviceTree`: `AssembledEntry`s, and the problems met so far.
    public struct Walk: Sequence, IteratorProtocol {
        var walk: TreeWalk
        let booted: BootedNamespace?

        public mutating func next() -> AssembledEntry? {
            walk.next().map { AssembledEntry($0, booted: booted) }
        }

        /// Entries that could not be read and were skipped (code `walk`, the path, the error).
        public var problems: [RunWarning] {
            walk.problems.map { RunWarning(code: .walk, place: $0.path, message: $0.error.description) }
        }
    }
}

@available(*, unavailable, message: "use a DeviceTree from one thread at a time")
extension DeviceTree: Sendable {}

extension Disk {
    /// The tree `request` chooses (the booted namespace, or `request.partition`'s filesystem),
    /// to look at path by path; `request.source` is not read (this disk is the source):
    ///
    ///     let tree = try Disk(path: "haos.img").tree()
    ///     print(String(decoding: try tree.read("/etc/hostname"), as: UTF8.self))
    public func tree(_ request: BrowseRequest = BrowseRequest()) throws -> DeviceTree {
        do {
            return try DeviceTree(disk: self, request: request)
        } catch {
            throw placed(error)
        }
    }
}

extension AssembledEntry {
    /// A walk entry as the facade shows it: the filesystem's own inode number, the origin, the
    /// reader behind its contents.
    init(_ e: WalkEntry, booted: BootedNamespace?) {
        var meta = e.metadata
        meta.inode = e.reader.linkIdentity(of: meta.inode).inode
        self.init(rawPath: e.path, metadata: meta,
                  hardlinkTarget: e.hardlinkTarget.map { "/" + String(decoding: $0, as: UTF8.self) },
                  origin: booted?.origin(of: e) ?? e.reader.sourceName,
                  contents: ContentsHandle(reader: e.reader, inode: e.metadata.inode))
    }

    /// The last component ("/" for the root).
    public var name: String {
        rawPath.isEmpty ? "/" : String(decoding: rawPath.split(separator: 0x2F).last ?? [], as: UTF8.self)
    }
}
