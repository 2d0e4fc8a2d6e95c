import DiskImage
import FileSystems
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An uncompressed tar file read as a filesystem (ustar, pax `x` records with `path`,
/// `linkpath`, `size`, `mtime`, `uid`, `gid`, `SCHILY.xattr.*`, `SCHILY.dev*`, GNU long names):
/// what `assemble --format ext4 --add-tar` writes on top of the namespace. The members are
/// indexed once (headers only); contents are read from the file when asked. A later member at
/// the same path replaces an earlier one, as tar extraction does; parents that the tar does not
/// list are shown as root's 0755 directories.
public final class TarFileSystem: FileSystemReader {
    public let formatName = "tar"
    public let sourceName: String
    public let rootInode: UInt64 = 0
    /// The tar's size in bytes and its member count (for sizing an image).
    public private(set) var byteSize: UInt64 = 0
    public private(set) var entryCount = 0
    private let fd: Int32
    private var nodes: [Node] = []
    private var byPath: [[UInt8]: Int] = [:]

    private struct Node {
        var metadata: Metadata
        var children: [[UInt8]: Int] = [:]
        var dataOffset: UInt64 = 0
    }

    public init(path: String) throws {
        sourceName = path
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FWError(.io, "cannot open: \(String(cString: strerror(errno)))", disk: path) }
        nodes.append(Node(metadata: Metadata(type: .directory, permissions: 0o755, uid: 0, gid: 0, size: 0, mtime: Timestamp(seconds: 0), inode: 0)))
        byPath[[]] = 0
        do { try index() } catch { close(fd); throw error }
    }

    deinit { close(fd) }

    private func pread(_ count: Int, at offset: UInt64) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = out.withUnsafeMutableBytes { Glibc.pread(fd, $0.baseAddress! + done, count - done, off_t(offset) + off_t(done)) }
            if n < 0 { throw FWError(.io, "read error: \(String(cString: strerror(errno)))", disk: sourceName) }
            if n == 0 { break }
            done += n
        }
        return Array(out[0..<done])
    }

    private static func string(_ b: ArraySlice<UInt8>) -> [UInt8] { Array(b.prefix { $0 != 0 }) }

    private static func number(_ b: ArraySlice<UInt8>) -> UInt64 {
        if let first = b.first, first & 0x80 != 0 {
            return b.dropFirst().reduce(UInt64(first & 0x7F)) { ($0 << 8) | UInt64($1) }
        }
        var v: UInt64 = 0
        for c in b where c >= 0x30 && c <= 0x37 { v = v * 8 + UInt64(c - 0x30) }
        return v
    }

    private static func normalise(_ name: [UInt8]) -> [UInt8] {
        NamespacePath(bytes: name).relativeBytes
    }

    private func index() throws {
        var offset: UInt64 = 0
        var pax: [String: [UInt8]] = [:]
        var longName: [UInt8]?
        var longLink: [UInt8]?
        while true {
            let h = try pread(512, at: offset)
            guard h.count == 512, !h.allSatisfy({ $0 == 0 }) else { break }
            let type = h[156]
            let size = pax["size"].flatMap { UInt64(String(decoding: $0, as: UTF8.self)) } ?? Self.number(h[124..<136])
            let data = offset + 512
            let next = data + (size + 511) / 512 * 512
            defer { offset = next }
            switch type {
            case UInt8(ascii: "x"):
                let body = try pread(Int(size), at: data)
                var i = 0
                while i < body.count {
                    guard let space = body[i...].firstIndex(of: 0x20), let len = Int(String(decoding: body[i..<space], as: UTF8.self)), len > 0,
                          i + len <= body.count, let eq = body[(space + 1)..<(i + len)].firstIndex(of: 0x3D) else { break }
                    pax[String(decoding: body[(space + 1)..<eq], as: UTF8.self)] = Array(body[(eq + 1)..<(i + len - 1)])
                    i += len
                }
                continue
            case UInt8(ascii: "g"): continue
            case UInt8(ascii: "L"): longName = Self.string(try pread(Int(size), at: data)[...]); continue
            case UInt8(ascii: "K"): longLink = Self.string(try pread(Int(size), at: data)[...]); continue
            default: break
            }
            defer { pax = [:]; longName = nil; longLink = nil }
            var name = Self.string(h[0..<100])
            let prefix = Self.string(h[345..<500])
            if h[257..<262].elementsEqual("ustar".utf8), !prefix.isEmpty { name = prefix + [0x2F] + name }
            name = Self.normalise(pax["path"] ?? longName ?? name)
            let link = pax["linkpath"] ?? longLink ?? Self.string(h[157..<257])
            entryCount += 1
            let mtime: Timestamp = {
                guard let t = pax["mtime"].map({ String(decoding: $0, as: UTF8.self) }) else { return Timestamp(seconds: Int64(Self.number(h[136..<148]))) }
                let parts = t.split(separator: ".", maxSplits: 1)
                let frac = parts.count > 1 ? String((parts[1] + "000000000").prefix(9)) : "0"
                return Timestamp(seconds: Int64(parts[0]) ?? 0, nanoseconds: UInt32(frac) ?? 0)
            }()
            var xattrs: [ExtendedAttribute] = []
            for (k, v) in pax where k.hasPrefix("SCHILY.xattr.") { xattrs.append(ExtendedAttribute(name: String(k.dropFirst(13)), value: v)) }
            let uid = pax["uid"].flatMap { UInt32(String(decoding: $0, as: UTF8.self)) } ?? UInt32(truncatingIfNeeded: Self.number(h[108..<116]))
            let gid = pax["gid"].flatMap { UInt32(String(decoding: $0, as: UTF8.self)) } ?? UInt32(truncatingIfNeeded: Self.number(h[116..<124]))
            let major = pax["SCHILY.devmajor"].flatMap { UInt32(String(decoding: $0, as: UTF8.self)) } ?? UInt32(truncatingIfNeeded: Self.number(h[329..<337]))
            let minor = pax["SCHILY.devminor"].flatMap { UInt32(String(decoding: $0, as: UTF8.self)) } ?? UInt32(truncatingIfNeeded: Self.number(h[337..<345]))
            let perm = UInt16(Self.number(h[100..<108]) & 0o7777)
            let fileType: FileType
            switch type {
            case UInt8(ascii: "1"):
                let target = Self.normalise(link)
                if let t = byPath[target], nodes[t].metadata.type != .directory, !name.isEmpty {
                    nodes[t].metadata.linkCount += 1
                    attach(name, t)
                } else {
                    throw FWError(.corrupt, "hardlink to /\(String(decoding: target, as: UTF8.self)), which is not an earlier file", disk: sourceName, path: "/" + String(decoding: name, as: UTF8.self))
                }
                continue
            case UInt8(ascii: "2"): fileType = .symlink
            case UInt8(ascii: "3"): fileType = .characterDevice
            case UInt8(ascii: "4"): fileType = .blockDevice
            case UInt8(ascii: "5"): fileType = .directory
            case UInt8(ascii: "6"): fileType = .fifo
            default: fileType = .regular
            }
            let meta = Metadata(type: fileType, permissions: perm, uid: uid, gid: gid, size: fileType == .regular ? size : 0,
                                mtime: mtime, inode: UInt64(nodes.count), symlinkTarget: fileType == .symlink ? link : nil,
                                device: fileType == .characterDevice || fileType == .blockDevice ? DeviceNumber(major: major, minor: minor) : nil,
                                xattrs: xattrs)
            if name.isEmpty { nodes[0].metadata = meta; nodes[0].metadata.inode = 0; continue }
            if fileType == .directory, let existing = byPath[name], nodes[existing].metadata.type == .directory {
                nodes[existing].metadata = meta
                nodes[existing].metadata.inode = UInt64(existing)
                continue
            }
            nodes.append(Node(metadata: meta, dataOffset: data))
            attach(name, nodes.count - 1)
        }
        byteSize = offset + 1024
    }

    /// Puts node `n` at `path`, making missing parents.
    private func attach(_ path: [UInt8], _ n: Int) {
        let parts = PathComponents.split(path)
        var parent = 0
        var sofar: [UInt8] = []
        for part in parts.dropLast() {
            sofar = sofar.isEmpty ? part : sofar + [0x2F] + part
            if let existing = byPath[sofar], nodes[existing].metadata.type == .directory {
                parent = existing
                continue
            }
            nodes.append(Node(metadata: Metadata(type: .directory, permissions: 0o755, uid: 0, gid: 0, size: 0, mtime: Timestamp(seconds: 0), inode: UInt64(nodes.count))))
            nodes[parent].children[part] = nodes.count - 1
            byPath[sofar] = nodes.count - 1
            parent = nodes.count - 1
        }
        guard let leaf = parts.last else { return }
        nodes[parent].children[leaf] = n
        byPath[path] = n
    }

    public func metadata(of inode: UInt64) throws -> Metadata {
        guard inode < UInt64(nodes.count) else { throw FWError(.notFound, "no member \(inode)", disk: sourceName) }
        return nodes[Int(inode)].metadata
    }

    public func directoryEntries(of inode: UInt64) throws -> [DirectoryEntry] {
        guard inode < UInt64(nodes.count) else { throw FWError(.notFound, "no member \(inode)", disk: sourceName) }
        return nodes[Int(inode)].children.map { DirectoryEntry(name: $0.key, inode: UInt64($0.value)) }
    }

    public func openFile(_ inode: UInt64) throws -> any FileContents {
        guard inode < UInt64(nodes.count) else { throw FWError(.notFound, "no member \(inode)", disk: sourceName) }
        let n = nodes[Int(inode)]
        return TarMemberContents(fd: fd, offset: n.dataOffset, size: n.metadata.size)
    }
}

/// One member's bytes, read with pread from the tar.
final class TarMemberContents: FileContents {
    let fd: Int32
    let offset: UInt64
    let size: UInt64
    private var position: UInt64 = 0

    init(fd: Int32, offset: UInt64, size: UInt64) {
        self.fd = fd
        self.offset = offset
        self.size = size
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let want = Int(min(UInt64(buffer.count), size - position))
        guard want > 0 else { return 0 }
        let n = Glibc.pread(fd, buffer.baseAddress, want, off_t(offset + position))
        guard n > 0 else { throw FWError(.io, n == 0 ? "tar ends inside a member" : String(cString: strerror(errno))) }
        position += UInt64(n)
        return n
    }
}
