import DiskImage

extension JFFS2 {
    /// The newest dirent of one name in a directory (`ino` 0: the name was deleted).
    struct DirentRecord {
        var version: UInt32
        var ino: UInt32
        var type: UInt8
    }

    /// One inode node, by where it is: enough to order it and to read its data later.
    struct NodeRecord {
        /// Offset of the node's header in the source.
        var position: UInt64
        var version: UInt32
        var offset: UInt32
        var dataSize: UInt32
        var compression: UInt8
    }

    /// Every inode node of one inode number and which of them is newest (its metadata).
    struct InodeRecord {
        var latest: NodeRecord
        /// The nodes that carry data (dsize > 0), in scan order.
        var dataNodes: [NodeRecord] = []
    }

    /// The newest xattr datum of one xid.
    struct XattrRecord {
        var position: UInt64
        var version: UInt32
    }

    /// What a scan of the whole log found: the live state of every directory and inode, as node
    /// positions (no data is kept).
    struct Index {
        var endianness: Endianness = .little
        var directories: [UInt32: [[UInt8]: DirentRecord]] = [:]
        var inodes: [UInt32: InodeRecord] = [:]
        var xattrs: [UInt32: XattrRecord] = [:]
        /// (ino, xid) -> highest xseqno seen.
        var xrefs: [XrefKey: UInt32] = [:]
        var nodeCount = 0
        /// Nodes passed over: bad CRCs, impossible lengths, names the reader cannot represent.
        var skipped: [String] = []
        var skippedCount = 0

        mutating func skip(_ why: String) {
            skippedCount += 1
            if skipped.count < 20 { skipped.append(why) }
        }
    }

    struct XrefKey: Hashable {
        var ino: UInt32
        var xid: UInt32
    }

    /// Reads the source in large windows so the 4-byte steps of the scan do not each read.
    struct ScanWindow {
        let source: any ByteSource
        var start: UInt64 = 0
        var buffer: [UInt8] = []
        static let size = 4 << 20

        /// Makes `count` bytes at `position` available and returns their index in `buffer`;
        /// nil when they are past the end of the source.
        mutating func load(_ position: UInt64, _ count: Int) throws -> Int? {
            guard position <= source.size, source.size - position >= UInt64(count) else { return nil }
            if position >= start, position + UInt64(count) <= start + UInt64(buffer.count) {
                return Int(position - start)
            }
            let length = Int(min(UInt64(Self.size), source.size - position))
            buffer = try source.bytes(at: position, count: length)
            start = position
            return 0
        }
    }

    /// Scans every 4-byte-aligned offset of `source` for nodes, as the kernel's mount scan does
    /// (fs/jffs2/scan.c): a node counts when its magic and header CRC are right; a node with a
    /// bad node or data CRC is skipped (the kernel marks it obsolete), so an older version of
    /// the same data wins. Erased (0xFF) space, cleanmarkers, padding and summary nodes are
    /// passed over; the full scan makes summaries unnecessary, so they are not read.
    static func scan(_ source: any ByteSource) throws -> Index {
        var index = Index()
        var endianness: Endianness?
        var window = ScanWindow(source: source)
        var position: UInt64 = 0
        while let at = try window.load(position, headerSize) {
            try Task.checkCancellation()
            let b = window.buffer
            let littleMagic = b[at] == 0x85 && b[at + 1] == 0x19
            let bigMagic = b[at] == 0x19 && b[at + 1] == 0x85
            guard littleMagic || bigMagic else { position += 4; continue }
            let e: Endianness = littleMagic ? .little : .big
            if let known = endianness, known != e { position += 4; continue }
            guard let header = try validHeader(b, at, e) else { position += 4; continue }
            let length = Int(header.totalLength)
            guard length >= headerSize, length <= maximumNodeLength,
                  let nodeAt = try window.load(position, length) else {
                index.skip("node at \(position) has an impossible length \(header.totalLength)")
                position += 4
                continue
            }
            endianness = e
            index.endianness = e
            index.nodeCount += 1
            if header.nodeType & NodeType.accurate != 0 {
                let node = ByteCursor(Array(window.buffer[nodeAt..<(nodeAt + length)]), context: "jffs2 node at \(position)")
                try record(node, type: header.nodeType, at: position, e, into: &index)
            }
            position += (UInt64(length) + 3) & ~3
        }
        guard endianness != nil else {
            throw FWError.corrupt("no JFFS2 node found (no 0x1985 magic with a valid header CRC)")
        }
        return index
    }

    /// The header at `at` when its header CRC holds (computed with NODE_ACCURATE set, so nodes
    /// obsoleted in place still parse and are then passed over).
    private static func validHeader(_ b: [UInt8], _ at: Int, _ e: Endianness) throws -> NodeHeader? {
        let header = try NodeHeader(ByteCursor(Array(b[at..<(at + headerSize)]), context: "jffs2 node header"), at: 0, e)
        var covered = Array(b[at..<(at + 8)])
        let accurateType = header.nodeType | NodeType.accurate
        covered[2] = UInt8(e == .little ? accurateType & 0xFF : accurateType >> 8)
        covered[3] = UInt8(e == .little ? accurateType >> 8 : accurateType & 0xFF)
        return CRC32.kernel(covered, seed: 0) == header.headerCRC ? header : nil
    }

    private static func record(_ node: ByteCursor, type: UInt16, at position: UInt64, _ e: Endianness, into index: inout Index) throws {
        switch type {
        case NodeType.dirent: try recordDirent(node, at: position, e, into: &index)
        case NodeType.inode: try recordInode(node, at: position, e, into: &index)
        case NodeType.xattr: try recordXattr(node, at: position, e, into: &index)
        case NodeType.xref: try recordXref(node, at: position, e, into: &index)
        case NodeType.cleanmarker, NodeType.padding, NodeType.summary:
            break
        default:
            if type & NodeType.compatibilityMask == NodeType.incompatible {
                throw FWError.unsupported("jffs2 node at \(position) has the unknown incompatible type 0x\(String(type, radix: 16)); Linux refuses to mount such a filesystem")
            }
            // ROCOMPAT and RWCOMPAT nodes of unknown types: Linux mounts and ignores them.
        }
    }

    /// The fixed part of `node` as a `Node`; nil, with the node skipped and why, when the node
    /// is shorter than it or its node CRC does not hold.
    private static func fixedPart<Node: FixedPart>(_ node: ByteCursor, at position: UInt64, _ e: Endianness,
                                                   into index: inout Index) throws -> Node? {
        guard node.count >= Node.size else {
            index.skip("\(Node.kind) at \(position) is shorter than \(Node.size) bytes"); return nil
        }
        let fixed = try Node(node, e)
        guard CRC32.kernel(node.bytes[0..<Node.nodeCRCCovers], seed: 0) == fixed.nodeCRC else {
            index.skip("\(Node.kind) at \(position)\(fixed.detail) has a bad node CRC"); return nil
        }
        return fixed
    }

    private static func recordDirent(_ node: ByteCursor, at position: UInt64, _ e: Endianness, into index: inout Index) throws {
        guard let d: Dirent = try fixedPart(node, at: position, e, into: &index) else { return }
        let nameEnd = direntSize + Int(d.nameSize)
        guard nameEnd <= node.count else { index.skip("dirent at \(position): name runs past the node"); return }
        let name = Array(node.bytes[direntSize..<nameEnd])
        guard CRC32.kernel(name, seed: 0) == d.nameCRC else {
            index.skip("dirent at \(position) has a bad name CRC"); return
        }
        guard !name.isEmpty, !name.contains(0), !name.contains(0x2F), name != [0x2E], name != [0x2E, 0x2E] else {
            index.skip("dirent at \(position) has an invalid name"); return
        }
        // The newest version of a name wins; at equal versions the one scanned later (as
        // jffs2_add_fd_to_list keeps the newcomer).
        if let old = index.directories[d.parent]?[name], old.version > d.version { return }
        index.directories[d.parent, default: [:]][name] = DirentRecord(version: d.version, ino: d.ino, type: d.type)
    }

    private static func recordInode(_ node: ByteCursor, at position: UInt64, _ e: Endianness, into index: inout Index) throws {
        guard let i: RawInode = try fixedPart(node, at: position, e, into: &index) else { return }
        guard UInt64(i.csize) <= UInt64(node.count - inodeSize) else {
            index.skip("inode node at \(position) (ino \(i.ino)): \(i.csize) data bytes run past the node"); return
        }
        let zero = i.compression == Compression.zero.rawValue
        guard zero || CRC32.kernel(node.bytes[inodeSize..<(inodeSize + Int(i.csize))], seed: 0) == i.dataCRC else {
            index.skip("inode node at \(position) (ino \(i.ino)) has a bad data CRC"); return
        }
        guard i.dsize <= UInt32(maximumNodeLength), UInt64(i.offset) + UInt64(i.dsize) <= UInt64(UInt32.max) else {
            index.skip("inode node at \(position) (ino \(i.ino)) has an impossible data range \(i.offset)+\(i.dsize)"); return
        }
        let rec = NodeRecord(position: position, version: i.version, offset: i.offset, dataSize: i.dsize, compression: i.compression)
        if var existing = index.inodes[i.ino] {
            if rec.version >= existing.latest.version { existing.latest = rec }
            if rec.dataSize > 0 { existing.dataNodes.append(rec) }
            index.inodes[i.ino] = existing
        } else {
            index.inodes[i.ino] = InodeRecord(latest: rec, dataNodes: rec.dataSize > 0 ? [rec] : [])
        }
    }

    private static func recordXattr(_ node: ByteCursor, at position: UInt64, _ e: Endianness, into index: inout Index) throws {
        guard let x: RawXattr = try fixedPart(node, at: position, e, into: &index) else { return }
        let dataEnd = xattrSize + Int(x.nameLength) + 1 + Int(x.valueLength)
        guard dataEnd <= node.count, CRC32.kernel(node.bytes[xattrSize..<dataEnd], seed: 0) == x.dataCRC else {
            index.skip("xattr node at \(position) has a bad data CRC or length"); return
        }
        // The newest version wins; a deleted datum (version 0xFFFFFFFF) is the newest of all.
        if let old = index.xattrs[x.xid], old.version > x.version { return }
        index.xattrs[x.xid] = XattrRecord(position: position, version: x.version)
    }

    private static func recordXref(_ node: ByteCursor, at position: UInt64, _ e: Endianness, into index: inout Index) throws {
        guard let r: RawXref = try fixedPart(node, at: position, e, into: &index) else { return }
        let key = XrefKey(ino: r.ino, xid: r.xid)
        if let old = index.xrefs[key], old > r.sequence { return }
        index.xrefs[key] = r.sequence
    }
}
