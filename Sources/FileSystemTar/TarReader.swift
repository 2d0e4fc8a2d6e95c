import DiskImage
import FileSystems

/// A tar archive (ustar, pax, GNU long names) as a read-only filesystem: the headers are indexed
/// once (a pass over the headers, file data skipped), contents are read in place from the source.
/// With `ociWhiteouts`, an OCI image layer's `.wh.NAME` entries become overlay whiteouts (0:0
/// character devices named NAME) and `.wh..wh..opq` marks its directory opaque
/// (`trusted.overlay.opaque=y`), so the layer merges like a snapshot directory.
/// Later entries replace earlier ones at the same path, as extraction does; a hardlink names an
/// earlier entry and its header's mode, owner and times apply to the shared inode (as containerd
/// and dockerd extract); parent directories missing from the archive, and the root when the
/// archive has no "./" entry, are shown as 0755 root directories with time 0.
public final class TarReader: FileSystemReader {
    public let formatName = "tar"
    public let sourceName: String
    public let rootInode: UInt64 = 1
    let source: any ByteSource
    /// Problems met while indexing (unsafe names, dangling hardlinks), kept for the caller.
    public private(set) var problems: [String] = []
    /// Header blocks met (every member, with its pax and GNU long-name headers).
    public private(set) var entryCount = 0

    struct Node {
        var metadata: Metadata
        var children: [[UInt8]: UInt64] = [:]
        var dataOffset: UInt64 = 0
    }
    private var nodes: [UInt64: Node] = [:]
    static let maximumEntries = 1 << 22

    public init(source: any ByteSource, name: String, ociWhiteouts: Bool = false) throws {
        self.source = source
        self.sourceName = name
        nodes[1] = Node(metadata: Metadata(type: .directory, permissions: 0o755, uid: 0, gid: 0, size: 0, mtime: Timestamp(seconds: 0), inode: 1))
        try index(ociWhiteouts: ociWhiteouts)
    }

    func error(_ message: String) -> FWError { FWError(.corrupt, message, at: source.place, path: sourceName) }

    // MARK: Index

    private func index(ociWhiteouts: Bool) throws {
        var members = TarMembers(source: source, maximumHeaders: Self.maximumEntries, limitCode: .corrupt, errorPath: sourceName)
        defer { entryCount = members.headerCount }
        while let member = try members.next() {
            guard let components = Self.components(member.path) else {
                problems.append("entry \(String(decoding: member.path, as: UTF8.self)): unsafe path (..); skipped")
                continue
            }
            guard let last = components.last else {
                if member.type == UInt8(ascii: "5") { nodes[1]?.metadata = metadata(member, type: .directory, size: 0, inode: 1) }
                continue
            }
            let parent = ensureDirectory(Array(components.dropLast()))
            if ociWhiteouts, last.starts(with: Array(".wh.".utf8)) {
                addWhiteout(member, named: last, in: parent)
            } else if member.type == UInt8(ascii: "1") {
                addHardlink(member, named: last, in: parent)
            } else {
                add(member, named: last, in: parent)
            }
        }
    }

    /// An OCI whiteout: `.wh..wh..opq` marks `parent` opaque, `.wh.NAME` is a 0:0 character device NAME.
    private func addWhiteout(_ member: TarMember, named whiteout: [UInt8], in parent: UInt64) {
        if whiteout == Array(".wh..wh..opq".utf8) {
            nodes[parent]?.metadata.xattrs.removeAll { $0.name == "trusted.overlay.opaque" }
            nodes[parent]?.metadata.xattrs.append(ExtendedAttribute(name: "trusted.overlay.opaque", value: [0x79]))
            return
        }
        let inode = UInt64(nodes.count + 1)
        var m = metadata(member, type: .characterDevice, size: 0, inode: inode)
        m.device = DeviceNumber(major: 0, minor: 0)
        nodes[inode] = Node(metadata: m)
        nodes[parent]?.children[Array(whiteout.dropFirst(4))] = inode
    }

    /// A hardlink to an earlier entry (not a directory); a dangling one is a problem, skipped.
    private func addHardlink(_ member: TarMember, named name: [UInt8], in parent: UInt64) {
        let link = member.linkPath
        guard let targetPath = Self.components(link), let target = lookup(targetPath), nodes[target]?.metadata.type != .directory else {
            problems.append("hardlink \(String(decoding: member.path, as: UTF8.self)) -> \(String(decoding: link, as: UTF8.self)): no such earlier file; skipped")
            return
        }
        // As containerd and dockerd extract it: the link is made, then the link header's
        // mode, owner and times are applied to the (shared) inode.
        if let existing = nodes[target]?.metadata {
            var m = metadata(member, type: existing.type, size: existing.size, inode: target)
            m.linkCount = existing.linkCount + 1
            m.symlinkTarget = existing.symlinkTarget
            m.device = existing.device
            if m.xattrs.isEmpty { m.xattrs = existing.xattrs }
            nodes[target]?.metadata = m
        }
        nodes[parent]?.children[name] = target
    }

    /// Any other member: a new inode named `name` in `parent`, or, for a directory that is already
    /// there, its metadata updated (xattrs merged).
    private func add(_ member: TarMember, named name: [UInt8], in parent: UInt64) {
        guard let fileType = Self.fileType(member.header) else {
            problems.append("entry \(String(decoding: member.path, as: UTF8.self)): type \(member.type) not supported; skipped")
            return
        }
        if fileType == .directory, let existing = nodes[parent]?.children[name], nodes[existing]?.metadata.type == .directory {
            let xattrs = nodes[existing]?.metadata.xattrs ?? []
            var m = metadata(member, type: .directory, size: 0, inode: existing)
            m.xattrs = (m.xattrs + xattrs.filter { x in !m.xattrs.contains { $0.name == x.name } }).sorted { $0.name < $1.name }
            nodes[existing]?.metadata = m
            return
        }
        let inode = UInt64(nodes.count + 1)
        var m = metadata(member, type: fileType, size: fileType == .regular ? member.size : 0, inode: inode)
        if fileType == .symlink { m.symlinkTarget = member.linkPath; m.size = UInt64(member.linkPath.count) }
        if fileType == .characterDevice || fileType == .blockDevice {
            // pax SCHILY.devmajor/devminor (numbers that do not fit the octal fields), else ustar's.
            m.device = DeviceNumber(major: UInt32(truncatingIfNeeded: member.paxNumber("SCHILY.devmajor") ?? member.header.deviceMajor ?? 0),
                                    minor: UInt32(truncatingIfNeeded: member.paxNumber("SCHILY.devminor") ?? member.header.deviceMinor ?? 0))
        }
        nodes[inode] = Node(metadata: m, dataOffset: member.dataOffset)
        nodes[parent]?.children[name] = inode
    }

    /// The file type of a typeflag this reader shows (hardlinks, '1', are handled apart).
    static func fileType(_ header: TarHeader) -> FileType? {
        if header.isRegularFile { return .regular }
        return switch header.type {
        case UInt8(ascii: "2"): .symlink
        case UInt8(ascii: "3"): .characterDevice
        case UInt8(ascii: "4"): .blockDevice
        case UInt8(ascii: "5"): .directory
        case UInt8(ascii: "6"): .fifo
        default: nil
        }
    }

    private func metadata(_ member: TarMember, type: FileType, size: UInt64, inode: UInt64) -> Metadata {
        let h = member.header
        var mtime = Timestamp(seconds: Int64(truncatingIfNeeded: h.mtime ?? 0))
        if let text = member.pax["mtime"].map({ String(decoding: $0, as: UTF8.self) }) {
            let parts = text.split(separator: ".", maxSplits: 1)
            if let s = Int64(parts[0]) {
                var ns: UInt32 = 0
                if parts.count == 2 { ns = UInt32(String((parts[1] + "000000000").prefix(9))) ?? 0 }
                mtime = Timestamp(seconds: s, nanoseconds: ns)
            }
        }
        let xattrs = member.pax.compactMap { key, value in
            key.hasPrefix("SCHILY.xattr.") ? ExtendedAttribute(name: String(key.dropFirst(13)), value: value) : nil
        }
        return Metadata(type: type, permissions: UInt16(truncatingIfNeeded: (h.mode ?? 0) & 0o7777),
                        uid: UInt32(truncatingIfNeeded: member.paxNumber("uid") ?? h.uid ?? 0),
                        gid: UInt32(truncatingIfNeeded: member.paxNumber("gid") ?? h.gid ?? 0),
                        size: size, mtime: mtime, inode: inode, xattrs: xattrs)
    }

    private func ensureDirectory(_ components: [[UInt8]]) -> UInt64 {
        var current: UInt64 = 1
        for c in components {
            if let next = nodes[current]?.children[c], nodes[next]?.metadata.type == .directory {
                current = next
                continue
            }
            let inode = UInt64(nodes.count + 1)
            nodes[inode] = Node(metadata: Metadata(type: .directory, permissions: 0o755, uid: 0, gid: 0, size: 0, mtime: Timestamp(seconds: 0), inode: inode))
            nodes[current]?.children[c] = inode
            current = inode
        }
        return current
    }

    private func lookup(_ components: [[UInt8]]) -> UInt64? {
        var current: UInt64 = 1
        for c in components {
            guard let next = nodes[current]?.children[c] else { return nil }
            current = next
        }
        return current
    }

    /// Path components without "" and "."; nil when one is "..".
    static func components(_ path: [UInt8]) -> [[UInt8]]? {
        var result: [[UInt8]] = []
        for part in path.split(separator: 0x2F, omittingEmptySubsequences: true) {
            if part.elementsEqual([0x2E]) { continue }
            if part.elementsEqual([0x2E, 0x2E]) { return nil }
            result.append(Array(part))
        }
        return result
    }

    // MARK: FileSystemReader

    public func metadata(of inode: UInt64) throws -> Metadata {
        guard let n = nodes[inode] else { throw error("no inode \(inode)") }
        return n.metadata
    }

    public func directoryEntries(of inode: UInt64) throws -> [DirectoryEntry] {
        guard let n = nodes[inode], n.metadata.type == .directory else { throw error("inode \(inode) is not a directory") }
        return n.children.map { DirectoryEntry(name: $0.key, inode: $0.value) }
    }

    public func openFile(_ inode: UInt64) throws -> any FileContents {
        guard let n = nodes[inode], n.metadata.type == .regular else { throw error("inode \(inode) is not a regular file") }
        return TarFileContents(source: source, offset: n.dataOffset, size: n.metadata.size)
    }
}

final class TarFileContents: FileContents {
    let source: any ByteSource
    let offset: UInt64
    let size: UInt64
    private var position: UInt64 = 0

    init(source: any ByteSource, offset: UInt64, size: UInt64) {
        self.source = source
        self.offset = offset
        self.size = size
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = Int(min(UInt64(buffer.count), size - position))
        guard n > 0 else { return 0 }
        try source.readExactly(at: offset + position, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n]))
        position += UInt64(n)
        return n
    }
}
