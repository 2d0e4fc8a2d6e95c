import DiskImage
import FileSystems

/// A read-only F2FS filesystem in userspace.
///
/// Opening reads the superblocks (the first valid of the two copies), the newer valid
/// checkpoint pack, its NAT version bitmap and the NAT journal in the current hot data summary;
/// nodes, directories and data are read on demand through the NAT. Inode numbers are f2fs node
/// ids, so two directory entries with one inode number are hardlinks.
///
/// Read: inline data and inline dentries, hashed dentry blocks (every block of every level),
/// direct, indirect and double-indirect nodes, holes, inline and node xattrs (POSIX ACLs turned
/// into the `system.posix_acl_*` xattr format), devices, symlinks, and LZO, LZ4 and zstd
/// compressed clusters. Encrypted (fscrypt) contents, names and symlinks are refused with
/// `.unsupported`, never decrypted; casefolded directories list their names as stored. Not
/// read: roll-forward recovery of fsync'd nodes written after the last checkpoint (the state is
/// the last checkpoint's), lzo-rle clusters, 16 KiB blocks, multi-device and zoned filesystems.
public final class F2FSReader: InodeTableReader {
    public let formatName = "f2fs"
    public let sourceName: String
    /// The image and partition its errors name.
    public let place: FWError.Place
    public let superBlock: F2FS.SuperBlock
    /// Which superblock copy was used (0 or 1).
    public let superBlockCopy: Int
    /// The checkpoint in effect (the newer valid pack).
    public let checkpoint: F2FS.Checkpoint
    public var rootInode: UInt64 { UInt64(superBlock.rootInode) }
    public var features: F2FS.Features { superBlock.features }
    /// False when the checkpoint in effect was not written by an unmount (`CP_UMOUNT_FLAG`): the
    /// device was running, and data fsync'd after this checkpoint (which Linux rolls forward at
    /// mount) is not read.
    public var wasCleanlyUnmounted: Bool { checkpoint.flags & F2FS.CheckpointFlag.unmount != 0 }

    let source: any ByteSource
    /// `nat_bitmap`: bit n set means NAT block n is in its second copy.
    let natBitmap: [UInt8]
    /// The NAT journal of the hot data summary: nid -> (ino, block address).
    let natJournal: [UInt32: (ino: UInt32, address: UInt32)]
    /// CRC of the uuid (`s_chksum_seed`) for inode checksums; nil without inode_checksum.
    let checksumSeed: UInt32?
    private var natCache: [UInt32: [UInt8]] = [:]
    private var nodeCache: [UInt32: [UInt8]] = [:]
    /// Decoded and checksum-verified inodes (metadata, lookups and opens ask for one repeatedly).
    private var inodeCache: [UInt32: F2FS.Inode] = [:]
    static let cacheLimit = 256

    /// Opens the f2fs filesystem that `source` holds (a partition slice or an image file).
    public init(source: any ByteSource, name: String) throws {
        self.source = source
        self.sourceName = name
        self.place = FWError.Place(source: source, name: name)
        do {
            (superBlock, superBlockCopy) = try Self.readSuperBlock(source)
            checkpoint = try Self.readCheckpoint(source, superBlock)
            natBitmap = try Self.readNATBitmap(source, superBlock, checkpoint)
            natJournal = try Self.readNATJournal(source, superBlock, checkpoint)
            checksumSeed = superBlock.features.contains(.inodeChecksum) ? F2FS.crc(superBlock.uuid, seed: 0xFFFF_FFFF) : nil
            let root = try inode(superBlock.rootInode)
            guard root.fileType == .directory else {
                throw FWError.corrupt("f2fs root inode \(superBlock.rootInode) is not a directory (mode 0o\(String(root.mode, radix: 8)))")
            }
        } catch let error as FWError {
            throw error.within(place)
        }
    }

    // MARK: Superblock and checkpoint

    /// The superblock alone (the first valid copy), for `inspect`.
    public static func superBlock(of source: any ByteSource) throws -> F2FS.SuperBlock {
        try readSuperBlock(source).0
    }

    /// The first of the two copies (blocks 0 and 1) that passes its checks, as Linux's
    /// `read_raw_super_block`; the first copy's error when neither does.
    static func readSuperBlock(_ source: any ByteSource) throws -> (F2FS.SuperBlock, Int) {
        var firstError: FWError?
        for copy in 0..<2 {
            do {
                let offset = UInt64(copy) * UInt64(F2FS.blockSize) + F2FS.superBlockOffset
                let bytes = try source.bytes(at: offset, count: F2FS.SuperBlock.size)
                let sb = try F2FS.SuperBlock(ByteCursor(bytes, context: "f2fs superblock \(copy)"))
                try sb.validate(bytes)
                return (sb, copy)
            } catch let error as FWError {
                if firstError == nil { firstError = error }
            }
        }
        throw firstError ?? FWError.corrupt("f2fs superblock unreadable")
    }

    /// The newer of the two checkpoint packs (at `cp_blkaddr` and one segment later) whose
    /// first and last blocks both pass their CRC and carry the same version
    /// (`f2fs_get_valid_checkpoint`).
    static func readCheckpoint(_ source: any ByteSource, _ sb: F2FS.SuperBlock) throws -> F2FS.Checkpoint {
        var best: F2FS.Checkpoint?
        var reasons: [String] = []
        for pack in 0..<2 {
            let start = sb.checkpointAddress + UInt32(pack) * F2FS.blocksPerSegment
            do {
                let head = try readBlock(source, start, "f2fs checkpoint pack \(pack + 1)")
                guard F2FS.Checkpoint.checksumIsValid(head) else { throw FWError.corrupt("head CRC mismatch") }
                let cp = try F2FS.Checkpoint(ByteCursor(head, context: "f2fs checkpoint"), at: start)
                guard cp.packBlocks >= 2 + sb.checkpointPayload, cp.packBlocks <= F2FS.blocksPerSegment else {
                    throw FWError.corrupt("pack of \(cp.packBlocks) blocks")
                }
                let tail = try readBlock(source, start + cp.packBlocks - 1, "f2fs checkpoint pack \(pack + 1) tail")
                guard F2FS.Checkpoint.checksumIsValid(tail) else { throw FWError.corrupt("tail CRC mismatch") }
                let tailVersion = try ByteCursor(tail, context: "f2fs checkpoint").u64le(at: 0)
                guard tailVersion == cp.version else { throw FWError.corrupt("tail version \(tailVersion) is not \(cp.version)") }
                // `ver_after`: newer by the signed difference, so a wrapped counter still compares.
                if best.map({ Int64(bitPattern: cp.version &- $0.version) > 0 }) ?? true { best = cp }
            } catch let error as FWError {
                reasons.append("pack \(pack + 1): \(error.message)")
            }
        }
        guard let best else {
            throw FWError.corrupt("f2fs has no valid checkpoint (\(reasons.joined(separator: "; ")))")
        }
        return best
    }

    /// The NAT version bitmap (`__bitmap_ptr(sbi, NAT_BITMAP)`) from the checkpoint block and
    /// its payload blocks, read as one buffer as Linux does.
    static func readNATBitmap(_ source: any ByteSource, _ sb: F2FS.SuperBlock, _ cp: F2FS.Checkpoint) throws -> [UInt8] {
        let natBlocks = UInt64(sb.natSegments / 2) * UInt64(F2FS.blocksPerSegment)
        guard UInt64(cp.natBitmapSize) == natBlocks / 8 else {
            throw FWError.corrupt("f2fs checkpoint NAT bitmap of \(cp.natBitmapSize) bytes does not cover \(natBlocks) NAT blocks")
        }
        let count = Int(sb.checkpointPayload) + 1
        let buffer = try source.bytes(at: UInt64(cp.packAddress) << F2FS.blockSizeBits, count: count * F2FS.blockSize)
        var start = F2FS.Checkpoint.bitmapOffset
        if cp.flags & F2FS.CheckpointFlag.largeNATBitmap != 0 {
            start += 4
        } else if sb.checkpointPayload == 0 {
            start += Int(cp.sitBitmapSize)
        }
        let end = start + Int(cp.natBitmapSize)
        let limit = count == 1 ? Int(cp.checksumOffset) : buffer.count
        guard end <= limit else {
            throw FWError.corrupt("f2fs checkpoint NAT bitmap (\(start)..<\(end)) runs past its checkpoint block(s)")
        }
        return Array(buffer[start..<end])
    }

    /// The NAT journal: the journal of the current hot data segment's summary. With compacted
    /// summaries it is the first `SUM_JOURNAL_SIZE` bytes of the first summary block
    /// (`read_compacted_summaries`); otherwise the journal of the hot data summary block
    /// (`read_normal_summaries`, `sum_blk_addr`).
    static func readNATJournal(_ source: any ByteSource, _ sb: F2FS.SuperBlock, _ cp: F2FS.Checkpoint) throws -> [UInt32: (ino: UInt32, address: UInt32)] {
        let journal: ArraySlice<UInt8>
        if cp.flags & F2FS.CheckpointFlag.compactSummary != 0 {
            guard cp.summaryStart >= 1, cp.summaryStart < cp.packBlocks - 1 else {
                throw FWError.corrupt("f2fs checkpoint summary start \(cp.summaryStart) is outside its pack of \(cp.packBlocks) blocks")
            }
            let block = try readBlock(source, cp.packAddress + cp.summaryStart, "f2fs compacted summary")
            journal = block[0..<F2FS.summaryJournalSize]
        } else {
            let withNodes = cp.flags & (F2FS.CheckpointFlag.unmount | F2FS.CheckpointFlag.fastboot) != 0
            let base: UInt32 = withNodes ? 6 : 3
            guard cp.packBlocks > base + 1 else {
                throw FWError.corrupt("f2fs checkpoint pack of \(cp.packBlocks) blocks has no room for its summaries")
            }
            let block = try readBlock(source, cp.packAddress + cp.packBlocks - (base + 1), "f2fs hot data summary")
            journal = block[F2FS.summaryEntriesSize..<(F2FS.summaryEntriesSize + F2FS.summaryJournalSize)]
        }
        let c = ByteCursor(Array(journal), context: "f2fs NAT journal")
        let count = Int(try c.u16le(at: 0))
        guard count <= F2FS.natJournalEntries else {
            throw FWError.corrupt("f2fs NAT journal claims \(count) entries (at most \(F2FS.natJournalEntries) fit)")
        }
        var result: [UInt32: (ino: UInt32, address: UInt32)] = [:]
        for i in 0..<count {
            let at = 2 + 13 * i
            result[try c.u32le(at: at)] = (try c.u32le(at: at + 5), try c.u32le(at: at + 9))
        }
        return result
    }

    static func readBlock(_ source: any ByteSource, _ address: UInt32, _ what: @autoclosure () -> String) throws -> [UInt8] {
        do {
            return try source.bytes(at: UInt64(address) << F2FS.blockSizeBits, count: F2FS.blockSize)
        } catch var error as FWError {
            error.message = "\(what()) (block \(address)): \(error.message)"
            throw error
        }
    }

    // MARK: NAT and nodes

    /// True when `address` is a block of the main area (`f2fs_is_valid_blkaddr`, DATA_GENERIC).
    func isInMainArea(_ address: UInt32) -> Bool {
        UInt64(address) >= UInt64(superBlock.mainAddress) && UInt64(address) < superBlock.mainEnd
    }

    /// The NAT entry of `nid`: the journal's if it has one, else the current NAT block's
    /// (`current_nat_addr`: block n of the first copy, or one segment later when bit n of the
    /// NAT bitmap is set).
    func natEntry(_ nid: UInt32) throws -> (ino: UInt32, address: UInt32) {
        guard nid >= 1, UInt64(nid) < superBlock.maximumNid else {
            throw FWError.corrupt("f2fs node id \(nid) is outside 1..<\(superBlock.maximumNid)")
        }
        if let entry = natJournal[nid] { return entry }
        let blockIndex = nid / UInt32(F2FS.natEntriesPerBlock)
        let block: [UInt8]
        if let cached = natCache[blockIndex] {
            block = cached
        } else {
            let perSegment = F2FS.blocksPerSegment
            var address = superBlock.natAddress + (blockIndex << 1) - (blockIndex & (perSegment - 1))
            let byte = Int(blockIndex >> 3)
            guard byte < natBitmap.count else { throw FWError.corrupt("f2fs node id \(nid) is past the NAT bitmap") }
            if natBitmap[byte] & (0x80 >> (blockIndex & 7)) != 0 { address += perSegment }
            block = try Self.readBlock(source, address, "f2fs NAT block \(blockIndex)")
            if natCache.count >= Self.cacheLimit { natCache.removeAll(keepingCapacity: true) }
            natCache[blockIndex] = block
        }
        let c = ByteCursor(block, context: "f2fs NAT block \(blockIndex)")
        let at = Int(nid % UInt32(F2FS.natEntriesPerBlock)) * F2FS.natEntrySize
        return (try c.u32le(at: at + 1), try c.u32le(at: at + 5))
    }

    /// The node block of `nid`, checked: its NAT address in the main area, its footer naming
    /// `nid`, and (when `owner` is given) the inode it belongs to.
    func node(_ nid: UInt32, owner: UInt32? = nil) throws -> [UInt8] {
        if let cached = nodeCache[nid] { return try checkedNode(cached, nid, owner) }
        let entry = try natEntry(nid)
        guard isInMainArea(entry.address) else {
            let what = entry.address == F2FS.nullAddress ? "is not allocated" : "points outside the main area (block \(entry.address))"
            throw FWError.corrupt("f2fs node \(nid) \(what)")
        }
        if let owner, entry.ino != owner {
            throw FWError.corrupt("f2fs node \(nid) belongs to inode \(entry.ino), not \(owner)")
        }
        let block = try Self.readBlock(source, entry.address, "f2fs node \(nid)")
        if nodeCache.count >= Self.cacheLimit { nodeCache.removeAll(keepingCapacity: true) }
        nodeCache[nid] = block
        return try checkedNode(block, nid, owner)
    }

    private func checkedNode(_ block: [UInt8], _ nid: UInt32, _ owner: UInt32?) throws -> [UInt8] {
        let c = ByteCursor(block, context: "f2fs node \(nid) footer")
        let footerNid = try c.u32le(at: F2FS.footerOffset)
        let footerIno = try c.u32le(at: F2FS.footerOffset + 4)
        guard footerNid == nid else {
            throw FWError.corrupt("f2fs node \(nid): its block's footer names node \(footerNid)")
        }
        if let owner, footerIno != owner {
            throw FWError.corrupt("f2fs node \(nid): its footer names inode \(footerIno), not \(owner)")
        }
        return block
    }

    /// Inode `nid`: a node whose footer names itself as its inode, decoded and (with
    /// inode_checksum) checksum-verified as Linux's `f2fs_inode_chksum_verify`.
    func inode(_ nid: UInt32) throws -> F2FS.Inode {
        if let cached = inodeCache[nid] { return cached }
        let block = try node(nid, owner: nid)
        let flag = try ByteCursor(block, context: "f2fs inode \(nid)").u32le(at: F2FS.footerOffset + 8)
        guard flag >> 3 == 0 else {
            throw FWError.corrupt("f2fs node \(nid) is not an inode (node offset \(flag >> 3))")
        }
        let ino = try F2FS.Inode(nid: nid, block: block, features: superBlock.features)
        if let checksumSeed, ino.extraSize >= 12, !(try ino.checksumIsValid(seed: checksumSeed)) {
            throw FWError.corrupt("f2fs inode \(nid): inode checksum mismatch")
        }
        if inodeCache.count >= Self.cacheLimit { inodeCache.removeAll(keepingCapacity: true) }
        inodeCache[nid] = ino
        return ino
    }

    package func inode(_ number: UInt64) throws -> F2FS.Inode {
        guard let nid = UInt32(exactly: number) else {
            throw FWError(.invalidArgument, "f2fs inode number \(number) is out of range")
        }
        return try inode(nid)
    }

    // MARK: FileSystemReader

    package func metadata(of ino: F2FS.Inode, type: FileType, inode: UInt64) throws -> Metadata {
        let fields = try TypedFields(type, storedSize: ino.size, symlinkTarget: {
            guard !ino.isEncrypted else {
                throw FWError.unsupported("f2fs inode \(inode): encrypted (fscrypt) symlink, not decrypted")
            }
            try checkSymlinkLength(ino.size, inode: inode)
            let target = try F2FSFile(reader: self, inode: ino).readPrefix(Int(ino.size))
            guard target.count == Int(ino.size) else { throw FWError.corrupt("f2fs inode \(inode): symlink target is cut short") }
            return target
        }, device: { try ino.deviceNumber() })
        return Metadata(type: type, permissions: ino.mode & 0o7777, uid: ino.uid, gid: ino.gid, size: fields.size,
                        mtime: ino.mtime, atime: ino.atime, ctime: ino.ctime, linkCount: ino.links, inode: inode,
                        symlinkTarget: fields.symlinkTarget, device: fields.device, xattrs: try xattrs(of: ino))
    }

    package func contents(of ino: F2FS.Inode, inode: UInt64) throws -> any FileContents {
        guard !ino.isEncrypted else {
            throw FWError.unsupported("f2fs inode \(inode): encrypted (fscrypt) file contents, not decrypted")
        }
        return try F2FSFile(reader: self, inode: ino)
    }

    /// The inode's flags as f2fs reports them, for `stat`-like callers: compressed, encrypted,
    /// casefolded, and its project id and creation time when stored.
    public func inodeDetails(_ inode: UInt64) throws -> F2FS.Inode {
        try place.placing { try self.inode(inode) }
    }

}
