import DiskImage

/// A read-only overlayfs view of directory layers (top first) as one filesystem: lookups,
/// directory listings and file reads go through `OverlayMerge` (whiteouts, opaque directories).
/// Used by the mount planner to read a firmware's configuration through a planned overlay root
/// (balenaOS's hostapp) before any namespace exists.
///
/// Inode numbers are synthetic, handed out as entries are met (1 is the root); the table grows
/// only with what callers look at.
public final class MergedFileSystem: FileSystemReader {
    public let formatName = "overlay"
    public let sourceName: String
    public let rootInode: UInt64 = 1

    private enum Node {
        case directory([Layer], Metadata)
        case file(Layer, UInt64, Metadata)
    }

    private struct Key: Hashable {
        var parts: [UInt64]
        var filesystems: [ObjectIdentifier]
    }

    private var nodes: [UInt64: Node] = [:]
    private var ids: [Key: UInt64] = [:]
    private var next: UInt64 = 2
    /// Problems met while merging (unreadable layers or entries), for reports.
    public private(set) var problems: [String] = []

    /// `layers` top first; each must be a directory.
    public init(layers: [Layer], name: String) throws {
        guard let top = layers.first else {
            throw FWError(.invalidArgument, "an overlay needs at least one layer", disk: name)
        }
        sourceName = name
        let meta = try top.reader.metadata(of: top.inode)
        guard meta.type == .directory else {
            throw FWError(.invalidArgument, "overlay layer is not a directory", disk: name)
        }
        nodes[1] = .directory(layers, meta)
        ids[Self.key(layers)] = 1
    }

    private static func key(_ layers: [Layer]) -> Key {
        Key(parts: layers.map(\.inode), filesystems: layers.map(\.filesystem))
    }

    private func node(_ inode: UInt64) throws -> Node {
        guard let n = nodes[inode] else {
            throw FWError(.notFound, "overlay inode \(inode) was never listed", disk: sourceName)
        }
        return n
    }

    public func metadata(of inode: UInt64) throws -> Metadata {
        var meta: Metadata
        switch try node(inode) {
        case .directory(_, let m): meta = m
        case .file(_, _, let m): meta = m
        }
        meta = OverlayMerge.visible(meta)
        meta.inode = inode
        return meta
    }

    public func directoryEntries(of inode: UInt64) throws -> [DirectoryEntry] {
        guard case .directory(let layers, _) = try node(inode) else {
            throw FWError(.invalidArgument, "overlay inode \(inode) is not a directory", disk: sourceName)
        }
        let children = OverlayMerge.children(of: layers) { what, error in
            problems.append("\(what): \(FWError(error).message)")
        }
        return children.map { c in
            let key: Key
            let made: Node
            switch c.child {
            case .file(let layer, let entry, let meta):
                key = Key(parts: [entry.inode], filesystems: [layer.filesystem])
                made = .file(layer, entry.inode, meta)
            case .directory(let dirLayers, let meta):
                key = Self.key(dirLayers)
                made = .directory(dirLayers, meta)
            }
            if let id = ids[key] { return DirectoryEntry(name: c.name, inode: id) }
            let id = next
            next += 1
            ids[key] = id
            nodes[id] = made
            return DirectoryEntry(name: c.name, inode: id)
        }
    }

    public func openFile(_ inode: UInt64) throws -> any FileContents {
        guard case .file(let layer, let real, _) = try node(inode) else {
            throw FWError(.invalidArgument, "overlay inode \(inode) is not a file", disk: sourceName)
        }
        return try layer.reader.openFile(real)
    }
}

/// A directory of another filesystem seen as the root of its own (a chroot): absolute symlinks
/// and ".." at the top resolve inside it. The OSTree planner reads the booted deployment this way.
public final class SubtreeFileSystem: FileSystemReader {
    public let base: any FileSystemReader
    public let rootInode: UInt64
    public let sourceName: String
    public var formatName: String { base.formatName }

    public init(base: any FileSystemReader, root: UInt64, name: String) {
        self.base = base
        self.rootInode = root
        self.sourceName = name
    }

    public func metadata(of inode: UInt64) throws -> Metadata { try base.metadata(of: inode) }
    public func directoryEntries(of inode: UInt64) throws -> [DirectoryEntry] { try base.directoryEntries(of: inode) }
    public func openFile(_ inode: UInt64) throws -> any FileContents { try base.openFile(inode) }
    public func entry(named name: [UInt8], in directory: UInt64) throws -> DirectoryEntry? {
        try base.entry(named: name, in: directory)
    }
}
