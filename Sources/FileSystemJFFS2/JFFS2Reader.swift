import Codecs
import DiskImage
import FileSystems

/// A read-only JFFS2 filesystem in userspace.
///
/// Opening scans the whole log once, as Linux's mount does, and keeps an index of node
/// positions (the newest dirent of every name, every inode node's version and data range, the
/// xattr nodes); file data is read and decompressed node by node when a file is read. Inode
/// numbers are JFFS2's; the root is inode 1 (a root without an inode node of its own, as
/// mkfs.jffs2 writes it, reads as Linux makes it up: a 0755 directory owned by 0:0, times 0).
///
/// Read: both byte orders, dirents with deletions and renames (newest version per name),
/// inode nodes (metadata from the newest version; data nodes applied in version order over
/// their ranges, then cut to the newest size; holes and ZERO nodes read as zeros), compression
/// none, zlib, rtime and LZO, symlinks, devices, hardlinks, xattrs (user, security, trusted and
/// POSIX ACLs). Node, header and data CRCs are checked; bad nodes are skipped (the kernel
/// obsoletes them), so an older version wins. Not read: the rubin compressors and LZMA (an
/// error names them), summary nodes (not needed: the scan reads every node).
public final class JFFS2Reader: FileSystemReader {
    public let formatName = "jffs2"
    public let sourceName: String
    public let place: FWError.Place
    public var rootInode: UInt64 { UInt64(JFFS2.rootIno) }
    /// The byte order of the filesystem.
    public var endianness: Endianness { index.endianness }
    /// Nodes with a valid header found by the scan.
    public var nodeCount: Int { index.nodeCount }
    /// How many nodes were passed over (bad CRCs, impossible lengths), and the first of them.
    public var skippedNodeCount: Int { index.skippedCount }
    public var skippedNodes: [String] { index.skipped }

    let source: any ByteSource
    let index: JFFS2.Index
    /// Names per inode (hardlink counts), from the live dirents.
    private let linkCounts: [UInt32: UInt32]
    /// Live xattr ids per inode.
    private let xattrIds: [UInt32: [UInt32]]

    /// Scans the JFFS2 filesystem that `source` holds (a partition slice or an image file).
    public init(source: any ByteSource, name: String) throws {
        self.source = source
        sourceName = name
        place = FWError.Place(source: source, name: name)
        do {
            index = try JFFS2.scan(source)
        } catch let error as FWError {
            throw error.within(place)
        }
        var links: [UInt32: UInt32] = [:]
        for (_, names) in index.directories {
            for (_, d) in names where d.ino != 0 { links[d.ino, default: 0] += 1 }
        }
        linkCounts = links
        var ids: [UInt32: [UInt32]] = [:]
        for (key, sequence) in index.xrefs where sequence & 1 == 0 {
            guard let datum = index.xattrs[key.xid], datum.version != 0xFFFF_FFFF else { continue }
            ids[key.ino, default: []].append(key.xid)
        }
        xattrIds = ids.mapValues { $0.sorted() }
    }

    // MARK: FileSystemReader

    public func metadata(of inode: UInt64) throws -> Metadata {
        try place.placing {
            let ino = try inodeNumber(inode)
            guard let record = index.inodes[ino] else {
                guard ino == JFFS2.rootIno else { throw FWError.corrupt("jffs2 inode \(ino) has no inode node") }
                return Metadata(type: .directory, permissions: 0o755, uid: 0, gid: 0, size: 0, mtime: Timestamp(seconds: 0),
                                atime: Timestamp(seconds: 0), ctime: Timestamp(seconds: 0), linkCount: 2, inode: inode)
            }
            let raw = try rawInode(record.latest)
            let type = try fileType(of: raw, inode: inode)
            // A directory is shown with size 0, whatever its isize.
            let fields = try TypedFields(type, storedSize: type == .directory ? 0 : UInt64(raw.isize), symlinkTarget: {
                try checkSymlinkLength(raw.isize, inode: inode)
                return try JFFS2File(reader: self, ino: ino, record: record, size: UInt64(raw.isize)).readPrefix(Int(raw.isize))
            }, device: { try deviceNumber(ino, record) })
            return Metadata(type: type, permissions: UInt16(raw.mode & 0o7777), uid: UInt32(raw.uid), gid: UInt32(raw.gid), size: fields.size,
                            mtime: Timestamp(seconds: Int64(raw.mtime)), atime: Timestamp(seconds: Int64(raw.atime)),
                            ctime: Timestamp(seconds: Int64(raw.ctime)),
                            linkCount: type == .directory ? 2 : linkCounts[ino, default: 1], inode: inode,
                            symlinkTarget: fields.symlinkTarget, device: fields.device, xattrs: try xattrs(of: ino))
        }
    }

    public func directoryEntries(of inode: UInt64) throws -> [DirectoryEntry] {
        try place.placing {
            let ino = try directory(inode)
            return (index.directories[ino] ?? [:]).compactMap { name, d in
                d.ino == 0 ? nil : DirectoryEntry(name: name, inode: UInt64(d.ino))
            }
        }
    }

    public func entry(named name: [UInt8], in directory: UInt64) throws -> DirectoryEntry? {
        try place.placing {
            let ino = try self.directory(directory)
            guard let d = index.directories[ino]?[name], d.ino != 0 else { return nil }
            return DirectoryEntry(name: name, inode: UInt64(d.ino))
        }
    }

    public func openFile(_ inode: UInt64) throws -> any FileContents {
        try place.placing {
            let ino = try inodeNumber(inode)
            guard let record = index.inodes[ino] else { throw FWError.corrupt("jffs2 inode \(ino) has no inode node") }
            let raw = try checked(rawInode(record.latest), inode: inode, is: .regular)
            return try JFFS2File(reader: self, ino: ino, record: record, size: UInt64(raw.isize))
        }
    }

    // MARK: Nodes

    private func inodeNumber(_ inode: UInt64) throws -> UInt32 {
        guard let ino = UInt32(exactly: inode) else { throw FWError.corrupt("jffs2 inode number \(inode) is out of range") }
        return ino
    }

    /// `inode` as a directory's number, or `.invalidArgument` when it is something else.
    private func directory(_ inode: UInt64) throws -> UInt32 {
        let ino = try inodeNumber(inode)
        if ino == JFFS2.rootIno, index.inodes[ino] == nil { return ino }
        guard let record = index.inodes[ino] else { throw FWError.corrupt("jffs2 inode \(ino) has no inode node") }
        _ = try checked(rawInode(record.latest), inode: inode, is: .directory)
        return ino
    }

    /// The fixed part of the inode node at `node` (its CRCs were checked by the scan).
    func rawInode(_ node: JFFS2.NodeRecord) throws -> JFFS2.RawInode {
        let bytes = try source.bytes(at: node.position, count: JFFS2.inodeSize)
        return try JFFS2.RawInode(ByteCursor(bytes, context: "jffs2 inode node at \(node.position)"), index.endianness)
    }

    /// The decompressed data of one inode node (`dataSize` bytes).
    func nodeData(_ node: JFFS2.NodeRecord) throws -> [UInt8] {
        let raw = try rawInode(node)
        let stored = try source.bytes(at: node.position + UInt64(JFFS2.inodeSize), count: Int(raw.csize))
        let size = Int(raw.dsize)
        let where_ = "jffs2 inode \(raw.ino) node at \(node.position)"
        let decoder: any Decompressor
        switch JFFS2.Compression(rawValue: raw.compression) {
        case .none?:
            guard stored.count == size else {
                throw FWError.corrupt("\(where_): uncompressed data of \(stored.count) bytes for a \(size)-byte range")
            }
            return stored
        case .zero?:
            return [UInt8](repeating: 0, count: size)
        case .zlib?: decoder = Zlib()
        case .lzo?: decoder = LZO()
        case .rtime?: decoder = RTime()
        case let other:
            throw FWError.unsupported("\(where_): compression \(other.map { "\($0)" } ?? "0x\(String(raw.compression, radix: 16))") is not supported (none, zlib, rtime and LZO are)")
        }
        guard size > 0 else { return [] }
        do {
            var out = try decoder.decompress(stored, maximumOutput: size)
            // Linux accepts a zlib node that inflates short and leaves the rest of the page as
            // it was (zeros in a new page); LZO and rtime are exact.
            if out.count < size {
                guard decoder.name == "gzip" else {
                    throw FWError.corrupt("\(decoder.name): block decompresses to \(out.count) bytes, expected \(size)")
                }
                out += [UInt8](repeating: 0, count: size - out.count)
            }
            return out
        } catch let error as FWError {
            throw FWError(error.code, "\(where_): \(error.message)", cause: error)
        }
    }

    /// A device node's number: the newest node's data, Linux's old 16-bit encoding (2 bytes)
    /// or new_encode_dev (4 bytes), as jffs2_read_inode reads it.
    private func deviceNumber(_ ino: UInt32, _ record: JFFS2.InodeRecord) throws -> DeviceNumber {
        guard let node = record.dataNodes.max(by: { ($0.version, $0.position) < ($1.version, $1.position) }) else {
            throw FWError.corrupt("jffs2 inode \(ino): device node without a device number")
        }
        let data = try nodeData(node)
        let c = ByteCursor(data, context: "jffs2 device number")
        switch data.count {
        case 2:
            let old: UInt16 = try c.integer(at: 0, endianness: index.endianness)
            return DeviceNumber(major: UInt32(old >> 8), minor: UInt32(old & 0xFF))
        case 4:
            return DeviceNumber(linux: UInt64(try c.integer(at: 0, endianness: index.endianness, as: UInt32.self)))
        default:
            throw FWError.corrupt("jffs2 inode \(ino): device number of \(data.count) bytes (2 or 4 expected)")
        }
    }

    private func xattrs(of ino: UInt32) throws -> [ExtendedAttribute] {
        guard let ids = xattrIds[ino] else { return [] }
        return try ids.compactMap { xid -> ExtendedAttribute? in
            guard let datum = index.xattrs[xid] else { return nil }
            let head = try source.bytes(at: datum.position, count: JFFS2.xattrSize)
            let x = try JFFS2.RawXattr(ByteCursor(head, context: "jffs2 xattr node"), index.endianness)
            let body = try source.bytes(at: datum.position + UInt64(JFFS2.xattrSize), count: Int(x.nameLength) + 1 + Int(x.valueLength))
            let name = body[0..<Int(x.nameLength)]
            let value = Array(body[(Int(x.nameLength) + 1)...])
            guard let prefix = JFFS2.xattrPrefix(x.prefix) else {
                throw FWError.corrupt("jffs2 xattr \(xid) of inode \(ino) has the unknown name prefix \(x.prefix)")
            }
            if x.prefix == 3 || x.prefix == 4 {
                return ExtendedAttribute(name: prefix, value: try JFFS2.posixACL(value, index.endianness))
            }
            return ExtendedAttribute(name: prefix + String(decoding: name, as: UTF8.self), value: value)
        }
    }

}

extension JFFS2.RawInode: FileSystems.InodeRecord {
    var posixMode: UInt32 { mode }
}
