import Codecs
import DiskImage
import FileSystems

/// A read-only UBIFS filesystem in userspace, over the bytes of one UBI volume (`UBIVolume`).
///
/// Opening reads the superblock (LEB 0) and the newest valid master node (LEBs 1 and 2); the
/// index B+tree is walked from the master's root on demand, by key range, with every node's CRC
/// checked. Inode numbers are UBIFS's (the root is 1).
///
/// Read: inodes (mode, owner, nanosecond times, link counts), directory entries (hashed keys: a
/// directory is the key range of its entries), data nodes in 4 KiB blocks with no, LZO, zlib and
/// zstd compression (holes read as zeros), symlinks, devices, hardlinks, xattrs (xattr entries
/// and their inodes). The journal (nodes written since the last commit: a dump of a mounted
/// device, or one the kernel did not unmount cleanly) is replayed in memory as the kernel's
/// replay.c does at mount: the buds the log names after the commit start, their nodes applied
/// over the index in sequence-number order (`journal` says what was replayed);
/// `replayJournal: false` reads the committed index only. Refused with `.unsupported`:
/// authenticated filesystems and encrypted (fscrypt) files.
public final class UBIFSReader: InodeTableReader {
    public let formatName = "ubifs"
    public let sourceName: String
    public let place: FWError.Place
    public var rootInode: UInt64 { UBIFS.rootIno }
    public let superblock: UBIFS.Superblock
    /// The master node's commit number and flags (`UBIFS_MST_DIRTY` 1: not unmounted cleanly).
    public let commitNumber: UInt64
    public let masterFlags: UInt32
    /// Journal LEBs referenced by the log after the last commit (also with `replayJournal: false`).
    public private(set) var uncommittedBuds = 0
    /// What the journal replay did.
    public private(set) var journal = UBIFSJournalSummary(replayed: false, buds: 0, nodes: 0, warnings: [])

    let source: any ByteSource
    let lebSize: UInt64
    private let root: UBIFS.Location
    private var indexCache: [UBIFS.Location: UBIFS.IndexNode] = [:]
    /// The journal's nodes over the committed index (empty without a journal or replay).
    private var overlay = UBIFSReplayOverlay([])
    private static let indexCacheLimit = 4096

    /// `replayJournal`: apply the journal's nodes written after the last commit (as the kernel
    /// mounts it); false reads the committed index only (`--no-replay`).
    public init(source: any ByteSource, name: String, replayJournal: Bool = true) throws {
        self.source = source
        sourceName = name
        place = FWError.Place(source: source, name: name)
        do {
            let sbNode = try Self.rawNode(source, position: 0, maximum: UBIFS.superblockSize, expect: .superblock)
            let sb = try UBIFS.Superblock(ByteCursor(sbNode, context: "ubifs superblock"))
            guard sb.lebSize >= 4096, sb.lebSize <= 16 << 20, UInt64(sb.lebSize) <= source.size else {
                throw FWError.corrupt("ubifs superblock gives a LEB size of \(sb.lebSize) bytes")
            }
            guard sb.keyFormat == 0 else { throw FWError.unsupported("ubifs key format \(sb.keyFormat) is not supported (only the simple format exists)") }
            guard sb.flags & UBIFS.flagAuthentication == 0 else {
                throw FWError.unsupported("authenticated UBIFS (UBIFS_FLG_AUTHENTICATION) is not supported")
            }
            superblock = sb
            lebSize = UInt64(sb.lebSize)
            let master = try Self.newestMaster(source, lebSize: lebSize, minIO: UInt64(max(sb.minIOSize, 8)))
            commitNumber = master.commitNumber
            masterFlags = master.flags
            root = UBIFS.Location(lnum: master.rootLnum, offset: master.rootOffset, length: master.rootLength)
            var warnings: [String] = []
            let buds = try readLog(master, warnings: &warnings)
            uncommittedBuds = buds.count
            let starts = buds.map { UBIFSJournalSummary.BudStart(lnum: $0.lnum, offset: $0.offset, journalHead: $0.jhead) }
            let nodes = replayJournal ? try replayNodes(of: buds, warnings: &warnings) : []
            overlay = UBIFSReplayOverlay(nodes)
            journal = UBIFSJournalSummary(replayed: replayJournal, buds: buds.count, budStarts: starts, nodes: nodes.count, warnings: warnings)
            guard try inode(UBIFS.rootIno).fileType == .directory else {
                throw FWError.corrupt("ubifs root inode 1 is not a directory")
            }
        } catch let error as FWError {
            throw error.within(place)
        }
    }

    // MARK: FileSystemReader

    package func metadata(of ino: UBIFS.Inode, type: FileType, inode: UInt64) throws -> Metadata {
        let fields = try TypedFields(type, storedSize: ino.size, symlinkTarget: {
            try checkSymlinkLength(ino.data.count, inode: inode)
            return ino.data
        }, device: {
            let c = ByteCursor(ino.data, context: "ubifs device number")
            switch ino.data.count {
            case 4: return DeviceNumber(linux: UInt64(try c.u32le(at: 0)))
            case 8: return DeviceNumber(linux: try c.u64le(at: 0))
            default: throw FWError.corrupt("ubifs inode \(inode): device number of \(ino.data.count) bytes (4 or 8 expected)")
            }
        })
        func time(_ t: (UInt64, UInt32)) -> Timestamp { Timestamp(seconds: Int64(bitPattern: t.0), nanoseconds: t.1 % 1_000_000_000) }
        return Metadata(type: type, permissions: UInt16(ino.mode & 0o7777), uid: ino.uid, gid: ino.gid, size: fields.size,
                        mtime: time(ino.mtime), atime: time(ino.atime), ctime: time(ino.ctime), linkCount: ino.nlink,
                        inode: inode, symlinkTarget: fields.symlinkTarget, device: fields.device,
                        xattrs: ino.xattrCount == 0 ? [] : try xattrs(of: inode))
    }

    package func entries(of directory: UBIFS.Inode, inode: UInt64) throws -> [DirectoryEntry] {
        try entries(of: inode, type: .dent).map { DirectoryEntry(name: $0.name, inode: $0.inum) }
    }

    package func contents(of ino: UBIFS.Inode, inode: UInt64) throws -> any FileContents {
        guard ino.flags & 0x40 == 0 else { throw FWError.unsupported("ubifs inode \(inode) is encrypted (fscrypt), which is not supported") }
        let inum = try Self.inum(inode)
        let lastBlock = ino.size == 0 ? 0 : min((ino.size - 1) / UBIFS.blockSize, 0x1FFF_FFFF)
        var blocks: [(block: UInt32, location: UBIFS.Location)] = []
        try forEach(from: UBIFS.Key(inum: inum, type: .data, value: 0),
                    to: UBIFS.Key(inum: inum, type: .data, value: UInt32(lastBlock))) { key, location in
            blocks.append((key.value, location))
        }
        return UBIFSFile(reader: self, inode: inode, size: ino.size, blocks: blocks)
    }

    // MARK: Nodes

    static func inum(_ inode: UInt64) throws -> UInt32 {
        guard let inum = UInt32(exactly: inode) else { throw FWError.corrupt("ubifs inode number \(inode) is out of range") }
        return inum
    }

    /// The inode node of `inode`.
    package func inode(_ inode: UInt64) throws -> UBIFS.Inode {
        let key = UBIFS.Key(inum: try Self.inum(inode), type: .inode, value: 0)
        var found: UBIFS.Location?
        try forEach(from: key, to: key) { _, location in found = location }
        guard let location = found else { throw FWError(.notFound, "ubifs inode \(inode) is not in the index") }
        let node = try self.node(location, expect: .inode)
        let ino = try UBIFS.Inode(ByteCursor(node, context: "ubifs inode \(inode)"))
        guard ino.key == key else { throw FWError.corrupt("ubifs index points inode \(inode) at the node of \(ino.key)") }
        return ino
    }

    /// The directory (`.dent`) or xattr (`.xent`) entries of `inode`: the whole key range.
    private func entries(of inode: UInt64, type: UBIFS.KeyType) throws -> [UBIFS.Dent] {
        let inum = try Self.inum(inode)
        var result: [UBIFS.Dent] = []
        try forEach(from: UBIFS.Key(inum: inum, type: type, value: 0), to: UBIFS.Key(inum: inum, type: type, value: 0x1FFF_FFFF)) { key, location in
            let dent = try UBIFS.Dent(ByteCursor(try node(location, expect: type == .dent ? .dent : .xent), context: "ubifs entry \(key)"))
            guard dent.key == key else { throw FWError.corrupt("ubifs index points entry \(key) at the node of \(dent.key)") }
            let name = dent.name
            guard !name.isEmpty, !name.contains(0), !name.contains(0x2F), name != [0x2E], name != [0x2E, 0x2E] else {
                throw FWError.corrupt("ubifs entry \(key) has an invalid name")
            }
            if dent.inum != 0 { result.append(dent) }
        }
        return result
    }

    private func xattrs(of inode: UInt64) throws -> [ExtendedAttribute] {
        try entries(of: inode, type: .xent).map { xent in
            let value = try self.inode(xent.inum)
            return ExtendedAttribute(name: String(decoding: xent.name, as: UTF8.self), value: value.data)
        }
    }

    /// The decompressed bytes of the data node at `location` for block `block` of `inode`.
    func block(_ location: UBIFS.Location, inode: UInt64, block: UInt32) throws -> [UInt8] {
        let node = try self.node(location, expect: .data)
        let c = ByteCursor(node, context: "ubifs data node")
        let key = try UBIFS.Key(c, at: 24)
        guard key == UBIFS.Key(inum: try Self.inum(inode), type: .data, value: block) else {
            throw FWError.corrupt("ubifs index points block \(block) of inode \(inode) at the node of \(key)")
        }
        let size = Int(try c.u32le(at: 40))
        guard size <= Int(UBIFS.blockSize) else { throw FWError.corrupt("ubifs data node of \(size) bytes (4096 at most)") }
        let stored = Array(node[UBIFS.dataSize...])
        let compression = try c.u16le(at: 44)
        let out: [UInt8]
        switch UBIFS.Compression(rawValue: compression) {
        case .none?: out = stored
        case .lzo?: out = try LZO().decompress(stored, maximumOutput: size)
        case .zstd?: out = try Zstd().decompress(stored, maximumOutput: size)
        case .zlib?:
            // Raw deflate (the kernel's "deflate" crypto compressor, windowBits -15).
            var buffer = [UInt8](repeating: 0, count: size)
            let n = try stored.withUnsafeBytes { i in try buffer.withUnsafeMutableBytes { try ClusterCodec.inflate(i, into: $0, windowBits: -15) } }
            out = Array(buffer[0..<n])
        case nil:
            throw FWError.unsupported("ubifs data node with unknown compression type \(compression)")
        }
        guard out.count == size else {
            throw FWError.corrupt("ubifs block \(block) of inode \(inode) decompresses to \(out.count) bytes, expected \(size)")
        }
        return out
    }

    /// The node at `location`, its header, length, type and CRC checked.
    func node(_ location: UBIFS.Location, expect type: UBIFS.NodeType) throws -> [UInt8] {
        guard UInt64(location.offset) + UInt64(location.length) <= lebSize else {
            throw FWError.corrupt("ubifs node at LEB \(location.lnum):\(location.offset) of \(location.length) bytes runs past its LEB")
        }
        let node = try Self.rawNode(source, position: UInt64(location.lnum) * lebSize + UInt64(location.offset),
                                    maximum: Int(location.length), expect: type)
        guard node.count == Int(location.length) else {
            throw FWError.corrupt("ubifs node at LEB \(location.lnum):\(location.offset) is \(node.count) bytes, the index says \(location.length)")
        }
        return node
    }

    /// Reads and checks one node at `position`: magic, length (at most `maximum`), type, CRC.
    static func rawNode(_ source: any ByteSource, position: UInt64, maximum: Int, expect type: UBIFS.NodeType) throws -> [UInt8] {
        let header = try UBIFS.CommonHeader(ByteCursor(try source.bytes(at: position, count: UBIFS.commonHeaderSize), context: "ubifs node header"))
        let where_ = "ubifs node at byte \(position)"
        guard header.magic == UBIFS.magic else { throw FWError.corrupt("\(where_): bad magic 0x\(String(header.magic, radix: 16))") }
        guard header.nodeType == type.rawValue else { throw FWError.corrupt("\(where_): type \(header.nodeType), expected \(type)") }
        let length = Int(header.length)
        guard length >= UBIFS.commonHeaderSize, length <= min(maximum, UBIFS.maximumNodeLength) else {
            throw FWError.corrupt("\(where_): impossible length \(header.length)")
        }
        let node = try source.bytes(at: position, count: length)
        guard UBIFS.crc(node) == header.crc else { throw FWError.corrupt("\(where_) (\(type)): bad CRC") }
        return node
    }

    /// The master node with the highest sequence number in LEBs 1 and 2 (each holds copies,
    /// written one after another at min_io-aligned offsets).
    private static func newestMaster(_ source: any ByteSource, lebSize: UInt64, minIO: UInt64) throws -> UBIFS.Master {
        let step = (UInt64(UBIFS.masterSize) + minIO - 1) / minIO * minIO
        var best: UBIFS.Master?
        for lnum in [UInt64(1), 2] {
            var offset: UInt64 = 0
            while offset + UInt64(UBIFS.masterSize) <= lebSize {
                guard let node = try? rawNode(source, position: lnum * lebSize + offset, maximum: UBIFS.masterSize, expect: .master) else {
                    break   // the first position without a valid master node ends this LEB's copies
                }
                let header = try UBIFS.CommonHeader(ByteCursor(node, context: "ubifs master"))
                let master = try UBIFS.Master(ByteCursor(node, context: "ubifs master"), sequence: header.sequence)
                if best == nil || master.sequence > best?.sequence ?? 0 { best = master }
                offset += step
            }
        }
        guard let best else { throw FWError.corrupt("ubifs: no valid master node in LEB 1 or 2") }
        return best
    }

    // MARK: Index

    /// Calls `body` with every leaf of the index whose key is in `low...high`, in key order.
    /// With a replayed journal, the index's leaves the journal decides about are left out and
    /// the journal's own leaves in the range are merged in.
    func forEach(from low: UBIFS.Key, to high: UBIFS.Key, _ body: (UBIFS.Key, UBIFS.Location) throws -> Void) throws {
        var visited = Set<UBIFS.Location>()
        guard !overlay.isEmpty else { return try walk(root, level: nil, low, high, &visited, body) }
        var leaves: [(key: UBIFS.Key, location: UBIFS.Location)] = []
        try walk(root, level: nil, low, high, &visited) { key, location in
            let hidden = try overlay.hides(key) {
                try UBIFS.Dent(ByteCursor(try node(location, expect: key.type == UBIFS.KeyType.xent.rawValue ? .xent : .dent),
                                          context: "ubifs entry \(key)")).name
            }
            if !hidden { leaves.append((key, location)) }
        }
        leaves += overlay.leaves(from: low, to: high)
        for leaf in leaves.enumerated().sorted(by: { ($0.element.key, $0.offset) < ($1.element.key, $1.offset) }) {
            try body(leaf.element.key, leaf.element.location)
        }
    }

    private func walk(_ location: UBIFS.Location, level: Int?, _ low: UBIFS.Key, _ high: UBIFS.Key,
                      _ visited: inout Set<UBIFS.Location>, _ body: (UBIFS.Key, UBIFS.Location) throws -> Void) throws {
        guard visited.insert(location).inserted else {
            throw FWError.corrupt("ubifs index node at LEB \(location.lnum):\(location.offset) is reached twice (a loop)")
        }
        let index = try indexNode(location)
        if let level, index.level != level {
            throw FWError.corrupt("ubifs index node at LEB \(location.lnum):\(location.offset) has level \(index.level), expected \(level)")
        }
        let branches = index.branches
        for i in branches.indices {
            let branch = branches[i]
            if branch.key > high { break }
            if index.level == 0 {
                if branch.key >= low { try body(branch.key, branch.location) }
            } else {
                // The subtree holds keys from this branch's key up to the next branch's key
                // (equal keys of hash collisions may sit on both sides of a boundary).
                if i + 1 < branches.count, branches[i + 1].key < low { continue }
                try walk(branch.location, level: index.level - 1, low, high, &visited, body)
            }
        }
    }

    private func indexNode(_ location: UBIFS.Location) throws -> UBIFS.IndexNode {
        if let cached = indexCache[location] { return cached }
        let node = try self.node(location, expect: .index)
        let c = ByteCursor(node, context: "ubifs index node")
        let count = Int(try c.u16le(at: 24))
        let level = Int(try c.u16le(at: 26))
        let branchSize = 12 + 8
        guard count > 0, UBIFS.indexHeaderSize + count * branchSize <= node.count, level < UBIFS.maximumLevels else {
            throw FWError.corrupt("ubifs index node at LEB \(location.lnum):\(location.offset): \(count) branches at level \(level) do not fit")
        }
        var branches: [(key: UBIFS.Key, location: UBIFS.Location)] = []
        branches.reserveCapacity(count)
        for i in 0..<count {
            let at = UBIFS.indexHeaderSize + i * branchSize
            let child = UBIFS.Location(lnum: try c.u32le(at: at), offset: try c.u32le(at: at + 4), length: try c.u32le(at: at + 8))
            branches.append((try UBIFS.Key(c, at: at + 12), child))
        }
        let result = UBIFS.IndexNode(level: level, branches: branches)
        if indexCache.count >= Self.indexCacheLimit { indexCache.removeAll(keepingCapacity: true) }
        indexCache[location] = result
        return result
    }

}

/// A UBIFS file's contents: 4 KiB blocks, each from its data node (decompressed on demand,
/// one block cached) or zeros where no node exists (a hole) or the node is short.
final class UBIFSFile: FileContents {
    let size: UInt64
    private let reader: UBIFSReader
    private let inode: UInt64
    private let blocks: [(block: UInt32, location: UBIFS.Location)]
    private var position: UInt64 = 0
    private var blockIndex = 0
    private var cachedBlock: UInt32?
    private var cachedData: [UInt8] = []

    init(reader: UBIFSReader, inode: UInt64, size: UInt64, blocks: [(block: UInt32, location: UBIFS.Location)]) {
        self.reader = reader
        self.inode = inode
        self.size = size
        self.blocks = blocks
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard position < size, let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        let block = UInt32(position / UBIFS.blockSize)
        let within = Int(position % UBIFS.blockSize)
        let count = Int(min(UInt64(buffer.count), size - position, UBIFS.blockSize - UInt64(within)))
        while blockIndex < blocks.count, blocks[blockIndex].block < block { blockIndex += 1 }
        base.initializeMemory(as: UInt8.self, repeating: 0, count: count)
        if blockIndex < blocks.count, blocks[blockIndex].block == block {
            if cachedBlock != block {
                do {
                    cachedData = try reader.block(blocks[blockIndex].location, inode: inode, block: block)
                } catch let error as FWError {
                    throw error.within(reader.place)
                }
                cachedBlock = block
            }
            let available = max(0, min(count, cachedData.count - within))
            if available > 0 {
                cachedData.withUnsafeBytes { src in
                    if let from = src.baseAddress { base.copyMemory(from: from + within, byteCount: available) }
                }
            }
        }
        position += UInt64(count)
        return count
    }
}
