import DiskImage

/// A small filesystem held in memory, built entry by entry: for tests of the layers above the
/// readers (mount planning, assembly) and for synthesised trees.
public final class MemoryFileSystem: FileSystemReader {
    public let formatName: String
    public let sourceName: String
    public let rootInode: UInt64 = 1
    private var nodes: [UInt64: Node] = [:]
    private var nextInode: UInt64 = 2

    private struct Node {
        var metadata: Metadata
        var children: [DirectoryEntry] = []
        var content: [UInt8] = []
    }

    public init(formatName: String = "memory", sourceName: String = "memory", rootMetadata: Metadata? = nil) {
        self.formatName = formatName
        self.sourceName = sourceName
        nodes[1] = Node(metadata: rootMetadata ?? Metadata(type: .directory, permissions: 0o755, uid: 0, gid: 0, size: 0,
                                                           mtime: Timestamp(seconds: 0), inode: 1))
    }

    /// Adds a directory (and missing parents).
    @discardableResult
    public func addDirectory(_ path: String, permissions: UInt16 = 0o755, uid: UInt32 = 0, gid: UInt32 = 0,
                             xattrs: [ExtendedAttribute] = []) -> UInt64 {
        let parts = path.split(separator: "/").map(String.init)
        var current = rootInode
        for (i, part) in parts.enumerated() {
            if let existing = nodes[current]?.children.first(where: { $0.name == Array(part.utf8) }) {
                current = existing.inode
                if i == parts.count - 1 {
                    nodes[current]?.metadata.permissions = permissions
                    nodes[current]?.metadata.uid = uid
                    nodes[current]?.metadata.gid = gid
                    nodes[current]?.metadata.xattrs = xattrs
                }
                continue
            }
            let isLast = i == parts.count - 1
            let meta = Metadata(type: .directory, permissions: isLast ? permissions : 0o755, uid: isLast ? uid : 0,
                                gid: isLast ? gid : 0, size: 0, mtime: Timestamp(seconds: 0), inode: nextInode,
                                xattrs: isLast ? xattrs : [])
            current = insert(Node(metadata: meta), name: part, into: current)
        }
        return current
    }

    /// Adds a regular file with the given content (parents created as needed).
    @discardableResult
    public func addFile(_ path: String, _ content: [UInt8], permissions: UInt16 = 0o644, uid: UInt32 = 0, gid: UInt32 = 0,
                        xattrs: [ExtendedAttribute] = []) -> UInt64 {
        let (parent, name) = parentAndName(path)
        let meta = Metadata(type: .regular, permissions: permissions, uid: uid, gid: gid, size: UInt64(content.count),
                            mtime: Timestamp(seconds: 0), inode: nextInode, xattrs: xattrs)
        return insert(Node(metadata: meta, content: content), name: name, into: parent)
    }

    @discardableResult
    public func addFile(_ path: String, _ text: String, permissions: UInt16 = 0o644) -> UInt64 {
        addFile(path, Array(text.utf8), permissions: permissions)
    }

    /// Adds a symlink.
    @discardableResult
    public func addSymlink(_ path: String, target: String) -> UInt64 {
        let (parent, name) = parentAndName(path)
        let meta = Metadata(type: .symlink, permissions: 0o777, uid: 0, gid: 0, size: UInt64(target.utf8.count),
                            mtime: Timestamp(seconds: 0), inode: nextInode, symlinkTarget: Array(target.utf8))
        return insert(Node(metadata: meta), name: name, into: parent)
    }

    /// Adds any other entry (devices, FIFOs) with full metadata; the inode number is assigned.
    @discardableResult
    public func addEntry(_ path: String, metadata: Metadata) -> UInt64 {
        let (parent, name) = parentAndName(path)
        var meta = metadata
        meta.inode = nextInode
        return insert(Node(metadata: meta), name: name, into: parent)
    }

    /// Adds another name for an existing inode (a hardlink).
    public func addHardlink(_ path: String, to inode: UInt64) {
        let (parent, name) = parentAndName(path)
        nodes[parent]?.children.append(DirectoryEntry(name: Array(name.utf8), inode: inode))
        nodes[inode]?.metadata.linkCount += 1
    }

    private func parentAndName(_ path: String) -> (UInt64, String) {
        var parts = path.split(separator: "/").map(String.init)
        let name = parts.removeLast()
        let parent = parts.isEmpty ? rootInode : addDirectoryIfMissing(parts.joined(separator: "/"))
        return (parent, name)
    }

    private func addDirectoryIfMissing(_ path: String) -> UInt64 {
        var current = rootInode
        for part in path.split(separator: "/").map(String.init) {
            if let existing = nodes[current]?.children.first(where: { $0.name == Array(part.utf8) }) {
                current = existing.inode
            } else {
                current = addDirectory(pathOf(current) + "/" + part)
            }
        }
        return current
    }

    private func pathOf(_ inode: UInt64) -> String {
        if inode == rootInode { return "" }
        for (id, node) in nodes {
            if let child = node.children.first(where: { $0.inode == inode }) {
                return pathOf(id) + "/" + String(decoding: child.name, as: UTF8.self)
            }
        }
        return ""
    }

    private func insert(_ node: Node, name: String, into parent: UInt64) -> UInt64 {
        let id = nextInode
        nextInode += 1
        var node = node
        node.metadata.inode = id
        nodes[id] = node
        nodes[parent]?.children.removeAll { $0.name == Array(name.utf8) }
        nodes[parent]?.children.append(DirectoryEntry(name: Array(name.utf8), inode: id))
        return id
    }

    /// The metadata of an inode this filesystem holds, nil for an unknown inode.
    public func storedMetadata(of inode: UInt64) -> Metadata? { nodes[inode]?.metadata }

    public func metadata(of inode: UInt64) throws -> Metadata {
        guard let node = nodes[inode] else { throw FWError(.notFound, "no inode \(inode)", partition: sourceName) }
        return node.metadata
    }

    public func directoryEntries(of inode: UInt64) throws -> [DirectoryEntry] {
        guard let node = nodes[inode], node.metadata.type == .directory else {
            throw FWError(.corrupt, "inode \(inode) is not a directory", partition: sourceName)
        }
        return node.children
    }

    public func openFile(_ inode: UInt64) throws -> any FileContents {
        guard let node = nodes[inode], node.metadata.type == .regular else {
            throw FWError(.corrupt, "inode \(inode) is not a regular file", partition: sourceName)
        }
        return MemoryContents(node.content)
    }
}

final class MemoryContents: FileContents {
    private let bytes: [UInt8]
    private var offset = 0
    var size: UInt64 { UInt64(bytes.count) }

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = min(buffer.count, bytes.count - offset)
        guard n > 0 else { return 0 }
        bytes.withUnsafeBytes { src in buffer.baseAddress!.copyMemory(from: src.baseAddress! + offset, byteCount: n) }
        offset += n
        return n
    }
}
