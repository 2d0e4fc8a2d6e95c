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
        var offset: UInt64 = 0
        var pax: [String: [UInt8]] = [:]
        var longName: [UInt8]?, longLink: [UInt8]?
        var count = 0
        while offset + 512 <= source.size {
            let h = try source.bytes(at: offset, count: 512)
            if h.allSatisfy({ $0 == 0 }) { break }
            count += 1
            entryCount = count
            guard count <= Self.maximumEntries else { throw error("more than \(Self.maximumEntries) entries") }
            let stored = Self.octal(h[148..<156])
            let sum = h.enumerated().reduce(UInt64(0)) { $0 + UInt64(148..<156 ~= $1.offset ? 0x20 : $1.element) }
            guard stored == sum else { throw error("header at offset \(offset): checksum \(stored.map(String.init) ?? "?") != \(sum)") }
            let type = h[156]
            guard var size = Self.number(h[124..<136]) else { throw error("header at offset \(offset): bad size field") }
            if let s = pax["size"].flatMap({ UInt64(String(decoding: $0, as: UTF8.self)) }) { size = s }
            let data = offset + 512
            let (padded, overflow) = size.addingReportingOverflow((512 - size % 512) % 512)
            guard !overflow, data <= source.size, padded <= source.size - data else {
                throw error("entry at offset \(offset): \(size) bytes of data run past the end of the archive")
            }
            offset = data + padded
            func payload() throws -> [UInt8] {
                guard size <= 1 << 20 else { throw error("extended header of \(size) bytes at offset \(data)") }
                return try source.bytes(at: data, count: Int(size))
            }
            switch type {
            case UInt8(ascii: "x"):
                pax = Self.parsePax(try payload())
                continue
            case UInt8(ascii: "g"):
                continue
            case UInt8(ascii: "L"):
                longName = Array(try payload().prefix { $0 != 0 })
                continue
            case UInt8(ascii: "K"):
                longLink = Array(try payload().prefix { $0 != 0 })
                continue
            default:
                break
            }
            var path = pax["path"] ?? longName ?? Self.string(h[0..<100])
            if pax["path"] == nil, longName == nil, h[257..<262].elementsEqual("ustar".utf8) {
                let prefix = Self.string(h[345..<500])
                if !prefix.isEmpty { path = prefix + [0x2F] + path }
            }
            let link = pax["linkpath"] ?? longLink ?? Self.string(h[157..<257])
            let entryPax = pax
            pax = [:]; longName = nil; longLink = nil
            guard let components = Self.components(path) else {
                problems.append("entry \(String(decoding: path, as: UTF8.self)): unsafe path (..); skipped")
                continue
            }
            guard !components.isEmpty else {
                if type == UInt8(ascii: "5") { nodes[1]?.metadata = metadata(h, pax: entryPax, type: .directory, size: 0, inode: 1) }
                continue
            }
            let parent = ensureDirectory(Array(components.dropLast()))
            var name = components[components.count - 1]
            if ociWhiteouts, name.starts(with: Array(".wh.".utf8)) {
                if name == Array(".wh..wh..opq".utf8) {
                    nodes[parent]?.metadata.xattrs.removeAll { $0.name == "trusted.overlay.opaque" }
                    nodes[parent]?.metadata.xattrs.append(ExtendedAttribute(name: "trusted.overlay.opaque", value: [0x79]))
                    continue
                }
                name = Array(name.dropFirst(4))
                let inode = UInt64(nodes.count + 1)
                var m = metadata(h, pax: entryPax, type: .characterDevice, size: 0, inode: inode)
                m.device = DeviceNumber(major: 0, minor: 0)
                nodes[inode] = Node(metadata: m)
                nodes[parent]?.children[name] = inode
                continue
            }
            if type == UInt8(ascii: "1") {
                guard let targetPath = Self.components(link), let target = lookup(targetPath), nodes[target]?.metadata.type != .directory else {
                    problems.append("hardlink \(String(decoding: path, as: UTF8.self)) -> \(String(decoding: link, as: UTF8.self)): no such earlier file; skipped")
                    continue
                }
                // As containerd and dockerd extract it: the link is made, then the link header's
                // mode, owner and times are applied to the (shared) inode.
                if let existing = nodes[target]?.metadata {
                    var m = metadata(h, pax: entryPax, type: existing.type, size: existing.size, inode: target)
                    m.linkCount = existing.linkCount + 1
                    m.symlinkTarget = existing.symlinkTarget
                    m.device = existing.device
                    if m.xattrs.isEmpty { m.xattrs = existing.xattrs }
                    nodes[target]?.metadata = m
                }
                nodes[parent]?.children[name] = target
                continue
            }
            let fileType: FileType
            switch type {
            case UInt8(ascii: "0"), 0, UInt8(ascii: "7"): fileType = .regular
            case UInt8(ascii: "2"): fileType = .symlink
            case UInt8(ascii: "3"): fileType = .characterDevice
            case UInt8(ascii: "4"): fileType = .blockDevice
            case UInt8(ascii: "5"): fileType = .directory
            case UInt8(ascii: "6"): fileType = .fifo
            default:
                problems.append("entry \(String(decoding: path, as: UTF8.self)): type \(type) not supported; skipped")
                continue
            }
            if fileType == .directory, let existing = nodes[parent]?.children[name], nodes[existing]?.metadata.type == .directory {
                let xattrs = nodes[existing]?.metadata.xattrs ?? []
                var m = metadata(h, pax: entryPax, type: .directory, size: 0, inode: existing)
                m.xattrs = (m.xattrs + xattrs.filter { x in !m.xattrs.contains { $0.name == x.name } }).sorted { $0.name < $1.name }
                nodes[existing]?.metadata = m
                continue
            }
            let inode = UInt64(nodes.count + 1)
            var m = metadata(h, pax: entryPax, type: fileType, size: fileType == .regular ? size : 0, inode: inode)
            if fileType == .symlink { m.symlinkTarget = link; m.size = UInt64(link.count) }
            if fileType == .characterDevice || fileType == .blockDevice {
                // pax SCHILY.devmajor/devminor (numbers that do not fit the octal fields), else ustar's.
                func paxNumber(_ key: String) -> UInt64? { entryPax[key].flatMap { UInt64(String(decoding: $0, as: UTF8.self)) } }
                m.device = DeviceNumber(major: UInt32(truncatingIfNeeded: paxNumber("SCHILY.devmajor") ?? Self.number(h[329..<337]) ?? 0),
                                        minor: UInt32(truncatingIfNeeded: paxNumber("SCHILY.devminor") ?? Self.number(h[337..<345]) ?? 0))
            }
            nodes[inode] = Node(metadata: m, dataOffset: data)
            nodes[parent]?.children[name] = inode
        }
    }

    private func metadata(_ h: [UInt8], pax: [String: [UInt8]], type: FileType, size: UInt64, inode: UInt64) -> Metadata {
        func paxNumber(_ key: String) -> UInt64? { pax[key].flatMap { UInt64(String(decoding: $0, as: UTF8.self)) } }
        var mtime = Timestamp(seconds: Int64(truncatingIfNeeded: Self.number(h[136..<148]) ?? 0))
        if let text = pax["mtime"].map({ String(decoding: $0, as: UTF8.self) }) {
            let parts = text.split(separator: ".", maxSplits: 1)
            if let s = Int64(parts[0]) {
                var ns: UInt32 = 0
                if parts.count == 2 { ns = UInt32(String((parts[1] + "000000000").prefix(9))) ?? 0 }
                mtime = Timestamp(seconds: s, nanoseconds: ns)
            }
        }
        let xattrs = pax.compactMap { key, value in
            key.hasPrefix("SCHILY.xattr.") ? ExtendedAttribute(name: String(key.dropFirst(13)), value: value) : nil
        }
        return Metadata(type: type, permissions: UInt16(truncatingIfNeeded: (Self.octal(h[100..<108]) ?? 0) & 0o7777),
                        uid: UInt32(truncatingIfNeeded: paxNumber("uid") ?? Self.number(h[108..<116]) ?? 0),
                        gid: UInt32(truncatingIfNeeded: paxNumber("gid") ?? Self.number(h[116..<124]) ?? 0),
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

    static func string(_ field: ArraySlice<UInt8>) -> [UInt8] { Array(field.prefix { $0 != 0 }) }

    static func octal(_ field: ArraySlice<UInt8>) -> UInt64? {
        var value: UInt64 = 0
        var seen = false
        for b in field {
            if b == 0 || (b == 0x20 && seen) { break }
            if b == 0x20 { continue }
            guard b >= 0x30, b <= 0x37 else { return nil }
            let (v, o) = value.multipliedReportingOverflow(by: 8)
            guard !o else { return nil }
            value = v + UInt64(b - 0x30)
            seen = true
        }
        return value
    }

    /// Octal, or GNU base-256 when the high bit of the first byte is set.
    static func number(_ field: ArraySlice<UInt8>) -> UInt64? {
        guard let first = field.first, first & 0x80 != 0 else { return octal(field) }
        var value = UInt64(first & 0x7F)
        for b in field.dropFirst() {
            guard value >> 56 == 0 else { return nil }
            value = value << 8 | UInt64(b)
        }
        return value
    }

    /// "LEN key=value\n" records.
    static func parsePax(_ bytes: [UInt8]) -> [String: [UInt8]] {
        var result: [String: [UInt8]] = [:]
        var i = 0
        while i < bytes.count {
            guard let space = bytes[i...].firstIndex(of: 0x20), let len = Int(String(decoding: bytes[i..<space], as: UTF8.self)),
                  len > 0, i + len <= bytes.count, let eq = bytes[(space + 1)..<(i + len)].firstIndex(of: 0x3D) else { break }
            let key = String(decoding: bytes[(space + 1)..<eq], as: UTF8.self)
            var value = Array(bytes[(eq + 1)..<(i + len)])
            if value.last == 0x0A { value.removeLast() }
            result[key] = value
            i += len
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
