internal import CExt2fs
import DiskImage

/// Progress of a journal replay: journal blocks replayed so far, and in all.
public typealias JournalProgress = @Sendable (_ done: Int, _ total: Int) -> Void

/// What replaying an ext3/ext4 journal did to the view of one filesystem (nothing is written).
public struct JournalReplay: Sendable, Equatable, Codable {
    /// True when journalled blocks were laid over the filesystem.
    public var replayed: Bool = false
    /// Committed transactions replayed.
    public var transactions: Int = 0
    /// Block writes replayed (a block written by several transactions counts each time).
    public var blocks: Int = 0
    /// Journalled block writes skipped because a later revoke record cancelled them.
    public var revoked: Int = 0
    /// Inodes on the orphan list or in the orphan file after replay (removed or truncated in
    /// the view, as on mount).
    public var orphans: Int = 0
    /// Fast-commit records applied (ext4 `fast_commit`: the inode, block-range and directory-entry
    /// records of the fast commits after the last full commit), head, pad and tail records included.
    public var fastCommits: Int = 0
    /// What the kernel would have logged: the journal could not be trusted past a point, an
    /// external journal, a damaged fast-commit area.
    public var warnings: [String] = []

    public init() {}
}

/// The JBD2 journal (fs/jbd2 in Linux; all fields big-endian) and its recovery, done the way the
/// kernel's fs/jbd2/recovery.c does it: a scan pass finds the last complete transaction, a revoke
/// pass collects revoke records, a replay pass copies each journalled block, in transaction order,
/// into a `BlockOverlay`. Every length and block number read from the journal is checked; a
/// journal that cannot be trusted ends replay at that point with a warning.
enum JBD2 {
    static let magic: UInt32 = 0xC03B_3998
    enum BlockType: UInt32 { case descriptor = 1, commit = 2, superblockV1 = 3, superblockV2 = 4, revoke = 5 }

    // s_feature_compat / s_feature_incompat bits (include/linux/jbd2.h).
    static let compatChecksum: UInt32 = 0x1
    static let incompatRevoke: UInt32 = 0x1
    static let incompat64bit: UInt32 = 0x2
    static let incompatAsyncCommit: UInt32 = 0x4
    static let incompatCsumV2: UInt32 = 0x8
    static let incompatCsumV3: UInt32 = 0x10
    static let incompatFastCommit: UInt32 = 0x20
    static let knownIncompat: UInt32 = 0x3F
    /// Distinct revoked blocks kept (a real journal revokes a few thousand; this bounds the
    /// table to about 64 MiB whatever a damaged journal says).
    static let maximumRevokedBlocks = 1 << 21
    /// sizeof(struct commit_header): h_commit_nsec ends at 60, padded to 64 by the 8-byte h_commit_sec.
    static let commitHeaderBytes = 64

    // Block tag flags (t_flags).
    static let flagEscape: UInt32 = 1
    static let flagSameUUID: UInt32 = 2
    static let flagDeleted: UInt32 = 4
    static let flagLastTag: UInt32 = 8

    /// journal_superblock_t, read from journal block 0.
    struct Superblock {
        var blockType: UInt32   // h_blocktype at 4
        var blockSize: Int      // s_blocksize at 12
        var maxLength: UInt32   // s_maxlen at 16: blocks in the journal
        var first: UInt32       // s_first at 20: first block of the log
        var sequence: UInt32    // s_sequence at 24: first transaction expected in the log
        var start: UInt32       // s_start at 28: block of the first transaction, 0 = clean
        var compat: UInt32 = 0  // s_feature_compat at 36 (v2)
        var incompat: UInt32 = 0 // s_feature_incompat at 40 (v2)
        var uuid: [UInt8] = Array(repeating: 0, count: 16)  // s_uuid at 48 (v2)
        var fastCommitBlocks: UInt32 = 0 // s_num_fc_blks at 84 (v2)
        var checksum: UInt32 = 0 // s_checksum at 0xFC (v2, csum v2/v3)

        init(_ b: [UInt8]) throws {
            let c = ByteCursor(b, context: "journal superblock")
            guard try c.u32be(at: 0) == JBD2.magic else {
                throw FWError(.corrupt, "journal superblock has a bad magic number")
            }
            blockType = try c.u32be(at: 4)
            guard blockType == BlockType.superblockV1.rawValue || blockType == BlockType.superblockV2.rawValue else {
                throw FWError(.corrupt, "journal superblock has block type \(blockType)")
            }
            blockSize = Int(try c.u32be(at: 12))
            maxLength = try c.u32be(at: 16)
            first = try c.u32be(at: 20)
            sequence = try c.u32be(at: 24)
            start = try c.u32be(at: 28)
            if blockType == BlockType.superblockV2.rawValue {
                compat = try c.u32be(at: 36)
                incompat = try c.u32be(at: 40)
                uuid = Array(b[48..<64])
                fastCommitBlocks = try c.u32be(at: 84)
                checksum = try c.u32be(at: 0xFC)
            }
        }

        var csumV2or3: Bool { incompat & (JBD2.incompatCsumV2 | JBD2.incompatCsumV3) != 0 }
        var csumV3: Bool { incompat & JBD2.incompatCsumV3 != 0 }
        var is64bit: Bool { incompat & JBD2.incompat64bit != 0 }
        var hasFastCommit: Bool { incompat & JBD2.incompatFastCommit != 0 }

        /// journal_tag_bytes(): tag3 is 16 bytes; the older tag is 12 (8 without 64bit), plus 2
        /// with csum v2.
        var tagBytes: Int {
            if csumV3 { return 16 }
            var size = 12
            if incompat & JBD2.incompatCsumV2 != 0 { size += 2 }
            return is64bit ? size : size - 4
        }
    }

    /// Raw CRC32C (Castagnoli) without pre/post inversion, as jbd2_chksum computes it.
    static func crc32c(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return crc }
        return ext2fs_crc32c_le(crc, base.assumingMemoryBound(to: UInt8.self), bytes.count)
    }

    static func crc32c(_ crc: UInt32, _ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { crc32c(crc, $0) }
    }

    static func crc32be(_ crc: UInt32, _ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { raw in
            guard let base = raw.baseAddress, !raw.isEmpty else { return crc }
            return ext2fs_crc32_be(crc, base.assumingMemoryBound(to: UInt8.self), raw.count)
        }
    }

    /// Reads one block of the journal by its index in the journal (0 = journal superblock).
    typealias ReadBlock = (UInt32) throws -> [UInt8]

    /// One tag of a descriptor block.
    struct Tag {
        var block: UInt64
        var flags: UInt32
        var checksum: UInt32
    }

    /// A replay, start to end. `fsBlocks` bounds every target block number.
    struct Recovery {
        let sb: Superblock
        let journalBlocks: UInt32
        let fsBlocks: UInt64
        let read: ReadBlock
        let seed: UInt32
        /// Log blocks are first..<last; positions wrap from last back to first.
        let last: UInt32
        var warnings: [String] = []
        /// Tags the scan pass met (what the replay pass walks, for progress).
        var scannedTags = 0
        /// Called now and then by the replay pass with (tags done, tags in the log).
        var progress: ((Int, Int) -> Void)?

        init(superblock: Superblock, journalBlocks: UInt32, fsBlocks: UInt64, read: @escaping ReadBlock) {
            sb = superblock
            self.journalBlocks = journalBlocks
            self.fsBlocks = fsBlocks
            self.read = read
            seed = JBD2.crc32c(~0, superblock.uuid)
            var last = min(superblock.maxLength, journalBlocks)
            if superblock.hasFastCommit {
                // jbd2_fc_init: the fast-commit area is the last s_num_fc_blks (default 256) blocks.
                let fc = superblock.fastCommitBlocks == 0 ? 256 : superblock.fastCommitBlocks
                last = last > fc ? last - fc : 0
            }
            self.last = last
        }

        func wrap(_ block: UInt32) -> UInt32 {
            block >= last ? block - (last - sb.first) : block
        }

        /// The tags of a descriptor block, bounded by the block (minus its checksum tail).
        func tags(_ b: [UInt8]) -> [Tag] {
            let c = ByteCursor(b, context: "journal descriptor block")
            let end = b.count - (sb.csumV2or3 ? 4 : 0)
            let size = sb.tagBytes
            var offset = 12
            var tags: [Tag] = []
            while offset + size <= end {
                guard let tag = tag(c, at: offset) else { break }
                tags.append(tag)
                offset += size
                if tag.flags & JBD2.flagSameUUID == 0 { offset += 16 }
                if tag.flags & JBD2.flagLastTag != 0 { break }
            }
            return tags
        }

        /// The tag at `o`, or nil when it runs past the block.
        private func tag(_ c: ByteCursor, at o: Int) -> Tag? {
            func u16(_ at: Int) -> UInt16? { c.integerIfPresent(at: at, endianness: .big) }
            func u32(_ at: Int) -> UInt32? { c.integerIfPresent(at: at, endianness: .big) }
            guard let low = u32(o), let high = sb.is64bit ? u32(o + 8) : 0 else { return nil }
            let block = UInt64(high) << 32 | UInt64(low)
            if sb.csumV3 {
                // journal_block_tag3_t: t_blocknr 0, t_flags (32 bits) 4, t_blocknr_high 8, t_checksum 12.
                guard let flags = u32(o + 4), let checksum = u32(o + 12) else { return nil }
                return Tag(block: block, flags: flags, checksum: checksum)
            }
            // journal_block_tag_t: t_blocknr 0, t_checksum (16 bits) 4, t_flags (16 bits) 6, t_blocknr_high 8.
            guard let flags = u16(o + 6), let checksum = u16(o + 4) else { return nil }
            return Tag(block: block, flags: UInt32(flags), checksum: UInt32(checksum))
        }

        /// jbd2_descriptor_block_csum_verify (descriptor and revoke blocks): the crc32c of the
        /// block with its last 4 bytes (t_checksum) zeroed.
        func tailChecksumOK(_ b: [UInt8]) -> Bool {
            guard sb.csumV2or3 else { return true }
            guard let stored = ByteCursor(b).integerIfPresent(at: b.count - 4, endianness: .big, as: UInt32.self) else { return false }
            var copy = b
            for i in (b.count - 4)..<b.count { copy[i] = 0 }
            return JBD2.crc32c(seed, copy) == stored
        }

        /// jbd2_commit_block_csum_verify: the crc32c of the block with h_chksum[0] (at 16) zeroed.
        func commitChecksumOK(_ b: [UInt8]) -> Bool {
            guard sb.csumV2or3 else { return true }
            guard let stored = ByteCursor(b).integerIfPresent(at: 16, endianness: .big, as: UInt32.self) else { return false }
            var copy = b
            for i in 16..<20 { copy[i] = 0 }
            return JBD2.crc32c(seed, copy) == stored
        }

        /// jbd2_commit_block_csum_verify_partial: the checksum of a block holding only the commit
        /// block's 64-byte `struct commit_header` (h_chksum[0] zeroed), zeros after it. jbd2 writes
        /// commit blocks zero-filled past the header, so a torn write that kept the header but
        /// overwrote the tail still passes this check.
        func partialCommitChecksumOK(_ b: [UInt8]) -> Bool {
            guard sb.csumV2or3, b.count >= JBD2.commitHeaderBytes,
                  let stored = ByteCursor(b).integerIfPresent(at: 16, endianness: .big, as: UInt32.self) else { return false }
            var copy = [UInt8](repeating: 0, count: b.count)
            copy.replaceSubrange(0..<JBD2.commitHeaderBytes, with: b[0..<JBD2.commitHeaderBytes])
            for i in 16..<20 { copy[i] = 0 }
            return JBD2.crc32c(seed, copy) == stored
        }

        /// jbd2_block_tag_csum_verify: crc32c over the big-endian sequence, then the block.
        func tagChecksumOK(_ tag: Tag, data: [UInt8], sequence: UInt32) -> Bool {
            guard sb.csumV2or3 else { return true }
            let seq = [UInt8(sequence >> 24), UInt8((sequence >> 16) & 0xFF), UInt8((sequence >> 8) & 0xFF), UInt8(sequence & 0xFF)]
            let sum = JBD2.crc32c(JBD2.crc32c(seed, seq), data)
            return sb.csumV3 ? tag.checksum == sum : tag.checksum == sum & 0xFFFF
        }

        /// Reads log block `n`, or nil (with a warning) when it cannot be read.
        mutating func logBlock(_ n: UInt32) -> [UInt8]? {
            do {
                let b = try read(n)
                guard b.count == sb.blockSize else { throw FWError(.corrupt, "journal block \(n) is \(b.count) bytes") }
                return b
            } catch {
                warnings.append("journal block \(n) cannot be read (\(FWError(error).message)); replay ends there")
                return nil
            }
        }

        /// Pass 1 (PASS_SCAN): the first transaction not to replay.
        mutating func scan() -> UInt32 {
            var next = sb.sequence
            var block = sb.start
            var endTransaction: UInt32? = nil
            var crcSum: UInt32 = ~0
            var needCheckCommitTime = false
            var lastCommitTime: UInt64 = 0
            // A log cannot hold more blocks than its ring: anything longer is a loop.
            let budget = Int(last - sb.first)
            var visited = 0
            scan: while true {
                if let e = endTransaction, Int32(bitPattern: next &- e) >= 0 { break }
                visited += 1
                if visited > budget {
                    warnings.append("journal log runs longer than the journal (\(budget) blocks) at transaction \(next): a loop; replay ends there")
                    endTransaction = next
                    break
                }
                guard let b = logBlock(block) else { endTransaction = next; break }
                let header = ByteCursor(b, context: "journal block header")
                guard header.integerIfPresent(at: 0, endianness: .big, as: UInt32.self) == JBD2.magic,
                      let type = header.integerIfPresent(at: 4, endianness: .big, as: UInt32.self).flatMap(BlockType.init(rawValue:)),
                      header.integerIfPresent(at: 8, endianness: .big, as: UInt32.self) == next else { break }
                block = wrap(block + 1)
                switch type {
                case .descriptor:
                    if !tailChecksumOK(b) { needCheckCommitTime = true }
                    let tags = tags(b)
                    if let bad = tags.first(where: { $0.block >= fsBlocks }) {
                        warnings.append("journal transaction \(next) writes block \(bad.block), outside the \(fsBlocks) blocks of the device; replay ends before it")
                        endTransaction = next
                        break scan
                    }
                    if tags.count > budget {
                        warnings.append("journal transaction \(next) has more tags than the journal has blocks; replay ends before it")
                        endTransaction = next
                        break scan
                    }
                    if sb.compat & JBD2.compatChecksum != 0, !needCheckCommitTime, endTransaction == nil {
                        // calc_chksums: the v1 commit checksum covers the descriptor and its data blocks.
                        crcSum = JBD2.crc32be(crcSum, b)
                        for _ in tags {
                            guard let data = logBlock(block) else { endTransaction = next; break scan }
                            crcSum = JBD2.crc32be(crcSum, data)
                            block = wrap(block + 1)
                        }
                    } else {
                        // Every data block must be readable (a hole in the journal inode, a block
                        // past the device): replay ends before the transaction that holds it.
                        for _ in tags {
                            guard logBlock(block) != nil else { endTransaction = next; break scan }
                            block = wrap(block + 1)
                        }
                    }
                    visited += tags.count
                    scannedTags += tags.count
                case .commit:
                    let c = ByteCursor(b, context: "journal commit block")
                    // h_commit_sec at 48 (a block is never shorter: `logBlock` checks its size).
                    let commitTime = c.integerIfPresent(at: 48, endianness: .big, as: UInt64.self) ?? 0
                    if needCheckCommitTime {
                        if commitTime >= lastCommitTime {
                            // The kernel refuses to mount (EFSBADCRC); replay what came before.
                            warnings.append("journal transaction \(next) fails its checksum (the kernel would refuse to mount); replay ends before it")
                            endTransaction = next
                        }
                        break scan
                    }
                    var checksumFailed = false
                    if sb.compat & JBD2.compatChecksum != 0 {
                        if endTransaction != nil { break scan }
                        // h_chksum_type 12, h_chksum_size 13, h_chksum[0] 16.
                        let type = c.integerIfPresent(at: 12, endianness: .big, as: UInt8.self) ?? 0
                        let size = c.integerIfPresent(at: 13, endianness: .big, as: UInt8.self) ?? 0
                        let found = c.integerIfPresent(at: 16, endianness: .big, as: UInt32.self) ?? 0
                        // JBD2_CRC32_CHKSUM (1) with JBD2_CRC32_CHKSUM_SIZE (4), or no checksum at all.
                        let ok = (crcSum == found && type == 1 && size == 4) || (type == 0 && size == 0 && found == 0)
                        if !ok { checksumFailed = true }
                        crcSum = ~0
                    }
                    if !checksumFailed, !commitChecksumOK(b), partialCommitChecksumOK(b) {
                        // The kernel's "Find incomplete commit block": the transaction counts, and
                        // so do the ones after it.
                        warnings.append("journal transaction \(next) has an incomplete commit block (header intact, tail overwritten, as a torn write leaves it); replayed as the kernel does")
                    } else if checksumFailed || !commitChecksumOK(b) {
                        if commitTime < lastCommitTime { break scan }   // stale block from an older lap
                        warnings.append("journal transaction \(next) fails its commit checksum; it and later transactions are not replayed")
                        endTransaction = next
                        if sb.incompat & JBD2.incompatAsyncCommit == 0 { break scan }
                    }
                    lastCommitTime = commitTime
                    next &+= 1
                case .revoke:
                    if !tailChecksumOK(b) { needCheckCommitTime = true }
                case .superblockV1, .superblockV2:
                    break scan
                }
            }
            return endTransaction ?? next
        }

        /// Walks the log from the start up to `end`, calling `body` for every descriptor and revoke
        /// block with its transaction and log position (passes 2 and 3 share the walk).
        mutating func walk(until end: UInt32, _ body: (inout Recovery, BlockType, [UInt8], UInt32, UInt32) throws -> Void) rethrows {
            var next = sb.sequence
            var block = sb.start
            var visited = 0
            let budget = Int(last - sb.first)
            while Int32(bitPattern: next &- end) < 0, visited <= budget {
                visited += 1
                guard let b = logBlock(block) else { return }
                let header = ByteCursor(b, context: "journal block header")
                guard header.integerIfPresent(at: 0, endianness: .big, as: UInt32.self) == JBD2.magic,
                      let type = header.integerIfPresent(at: 4, endianness: .big, as: UInt32.self).flatMap(BlockType.init(rawValue:)),
                      header.integerIfPresent(at: 8, endianness: .big, as: UInt32.self) == next else { return }
                let at = wrap(block + 1)
                block = at
                switch type {
                case .descriptor:
                    try body(&self, .descriptor, b, next, at)
                    let n = tags(b).count
                    visited += n
                    for _ in 0..<n { block = wrap(block + 1) }
                case .commit:
                    next &+= 1
                case .revoke:
                    try body(&self, .revoke, b, next, at)
                default:
                    return
                }
            }
        }

        /// Runs the three passes into `overlay`, filling the counters of `result`.
        mutating func run(into overlay: BlockOverlay, _ result: inout JournalReplay) throws {
            var end = scan()
            // Pass 2 (PASS_REVOKE): the newest transaction that revoked each block. A transaction's
            // records are kept aside until the next transaction starts, so that a revoke block
            // that ends replay takes its transaction's earlier revoke blocks with it.
            var revokedAt: [UInt64: UInt32] = [:]
            var pending: [UInt64] = []
            var pendingSequence: UInt32 = sb.sequence
            func flush() {
                for target in pending {
                    if let old = revokedAt[target], Int32(bitPattern: pendingSequence &- old) <= 0 { continue }
                    revokedAt[target] = pendingSequence
                }
                pending = []
            }
            let recordSize = sb.is64bit ? 8 : 4
            walk(until: end) { r, type, b, sequence, _ in
                guard type == .revoke, Int32(bitPattern: sequence &- end) < 0 else { return }
                if sequence != pendingSequence {
                    flush()
                    pendingSequence = sequence
                }
                let c = ByteCursor(b, context: "journal revoke block")
                let count = Int(c.integerIfPresent(at: 12, endianness: .big, as: UInt32.self) ?? 0)   // r_count: bytes used, header included
                if count > b.count - (r.sb.csumV2or3 ? 4 : 0) {
                    r.warnings.append("journal revoke block of transaction \(sequence) claims \(count) bytes in a \(b.count)-byte block; replay ends before it")
                    end = sequence
                    pending = []
                    return
                }
                var offset = 16
                while offset + recordSize <= count {
                    let target = recordSize == 8 ? c.integerIfPresent(at: offset, endianness: .big, as: UInt64.self)
                                                 : c.integerIfPresent(at: offset, endianness: .big, as: UInt32.self).map(UInt64.init)
                    offset += recordSize
                    if let target { pending.append(target) }
                }
                if revokedAt.count + pending.count > JBD2.maximumRevokedBlocks {
                    r.warnings.append("journal transaction \(sequence) brings the revoked blocks past \(JBD2.maximumRevokedBlocks); replay ends before it")
                    end = sequence
                    pending = []
                }
            }
            flush()
            // Pass 3 (PASS_REPLAY): every tag of every transaction before `end`, newest version last.
            var failure: FWError?
            var done = 0
            var reported = -1
            walk(until: end) { r, type, b, sequence, first in
                guard type == .descriptor, failure == nil, Int32(bitPattern: sequence &- end) < 0 else { return }
                var position = first
                let tags = r.tags(b)
                done += tags.count
                // At most once per percent.
                let total = max(r.scannedTags, 1)
                if let progress = r.progress, min(done, total) * 100 / total > reported {
                    reported = min(done, total) * 100 / total
                    progress(min(done, total), total)
                }
                for tag in tags {
                    let logBlockNumber = position
                    position = r.wrap(position + 1)
                    if let revoke = revokedAt[tag.block], Int32(bitPattern: sequence &- revoke) <= 0 {
                        result.revoked += 1
                        continue
                    }
                    guard var data = r.logBlock(logBlockNumber) else { return }
                    if !r.tagChecksumOK(tag, data: data, sequence: sequence) {
                        // The kernel skips the block and reports an I/O error after recovery.
                        r.warnings.append("journal block \(logBlockNumber) (filesystem block \(tag.block), transaction \(sequence)) fails its checksum; not replayed")
                        continue
                    }
                    if tag.flags & JBD2.flagEscape != 0 {
                        data[0] = 0xC0; data[1] = 0x3B; data[2] = 0x39; data[3] = 0x98
                    }
                    do {
                        try overlay.set(tag.block, data)
                    } catch {
                        failure = FWError(error)
                        return
                    }
                    result.blocks += 1
                }
            }
            if let failure { throw failure }
            if reported >= 0, reported < 100 { progress?(scannedTags, scannedTags) }
            result.transactions = Int(end &- sb.sequence)
            result.warnings += warnings
        }
    }

    /// Replays the journal read by `read` (a journal of `journalBlocks` blocks) over a filesystem of
    /// `fsBlocks` blocks of `blockSize` bytes. Returns the overlay (nil when nothing is to be
    /// replayed) and what was done. Never throws for a damaged journal: it warns and stops.
    /// The fast-commit records to apply come third (empty without `fast_commit` or when none is
    /// valid); `maximumInodeSize` bounds their raw inodes (the filesystem's inode size).
    static func replay(journalBlocks: UInt32, blockSize: Int, fsBlocks: UInt64, read: @escaping ReadBlock,
                       memoryLimit: Int = BlockOverlay.defaultMemoryLimit, maximumInodeSize: Int = 1024,
                       progress: ((Int, Int) -> Void)? = nil) throws -> (BlockOverlay?, JournalReplay, [FastCommitTag]) {
        var result = JournalReplay()
        guard journalBlocks >= 2 else {
            result.warnings.append("the journal has \(journalBlocks) blocks; not replayed")
            return (nil, result, [])
        }
        let sb: Superblock
        do {
            sb = try Superblock(try read(0))
        } catch {
            result.warnings.append("the journal superblock cannot be used (\(FWError(error).message)); not replayed")
            return (nil, result, [])
        }
        guard sb.blockSize == blockSize else {
            result.warnings.append("the journal's block size \(sb.blockSize) differs from the filesystem's \(blockSize); not replayed")
            return (nil, result, [])
        }
        if sb.incompat & ~JBD2.knownIncompat != 0 {
            result.warnings.append("the journal has unknown incompatible features 0x\(String(sb.incompat, radix: 16)); not replayed")
            return (nil, result, [])
        }
        if sb.csumV2or3 {
            var copy = try read(0)
            for i in 0xFC..<0x100 { copy[i] = 0 }
            // jbd2_superblock_csum: crc32c(~0) over the 1024-byte journal_superblock_t.
            if crc32c(~0, Array(copy.prefix(1024))) != sb.checksum {
                result.warnings.append("the journal superblock fails its checksum (the kernel would refuse to mount); not replayed")
                return (nil, result, [])
            }
        }
        guard sb.start != 0 else { return (nil, result, []) }   // clean: nothing to replay
        guard sb.maxLength <= journalBlocks else {
            // journal_load refuses it ("journal file too short").
            result.warnings.append("the journal superblock claims \(sb.maxLength) blocks, which does not fit the journal's \(journalBlocks) blocks; not replayed")
            return (nil, result, [])
        }
        let ring = sb.maxLength
        guard sb.first >= 1, sb.first < ring, sb.start >= sb.first, sb.start < ring else {
            result.warnings.append("the journal's log bounds (first \(sb.first), start \(sb.start), length \(sb.maxLength)) do not fit its \(journalBlocks) blocks; not replayed")
            return (nil, result, [])
        }
        var recovery = Recovery(superblock: sb, journalBlocks: journalBlocks, fsBlocks: fsBlocks, read: read)
        guard recovery.last > sb.first, sb.start < recovery.last else {
            result.warnings.append("the journal's fast-commit area leaves no room for its log; not replayed")
            return (nil, result, [])
        }
        let overlay = BlockOverlay(blockSize: blockSize, memoryLimit: memoryLimit)
        recovery.progress = progress
        try recovery.run(into: overlay, &result)
        // The fast-commit area (fc_do_one_pass): scanned for the transaction after the last full
        // commit replayed; its records are applied to the filesystem by the caller.
        // jbd2 leaves block j_last unused: the area starts at j_fc_first = j_last + 1.
        var fastCommits: [FastCommitTag] = []
        if sb.hasFastCommit {
            let expected = sb.sequence &+ UInt32(truncatingIfNeeded: result.transactions)
            fastCommits = FastCommitScan.scan(first: recovery.last + 1, end: sb.maxLength, expectedTid: expected,
                                              blockSize: blockSize, maximumInodeSize: maximumInodeSize, read: read,
                                              warnings: &result.warnings)
        }
        result.replayed = overlay.count > 0
        return (overlay.count > 0 ? overlay : nil, result, fastCommits)
    }
}

/// The journal parser alone, without a filesystem: replays a journal given whole as bytes
/// (journal block 0, the journal superblock, first) over an imaginary filesystem of
/// `filesystemBlocks` blocks. For the fuzz target and the parser's tests.
public enum JournalParser {
    /// What replay did, and the replayed blocks (filesystem block number -> bytes). The block
    /// size is the journal superblock's s_blocksize when it is a power of two from 1 KiB to
    /// 64 KiB, else 1 KiB.
    public static func replay(journal bytes: [UInt8], filesystemBlocks: UInt64 = 1 << 20,
                              memoryLimit: Int = 1 << 20) -> (replay: JournalReplay, blocks: [UInt64: [UInt8]]) {
        var blockSize = 1024
        if bytes.count >= 16 {
            let s = Int(bytes[12]) << 24 | Int(bytes[13]) << 16 | Int(bytes[14]) << 8 | Int(bytes[15])
            if s >= 1024, s <= 65536, s & (s - 1) == 0 { blockSize = s }
        }
        let count = UInt32(clamping: bytes.count / blockSize)
        let read: JBD2.ReadBlock = { index in
            guard index < count else { throw FWError(.corrupt, "journal block \(index) is past the end") }
            let start = Int(index) * blockSize
            return Array(bytes[start..<(start + blockSize)])
        }
        do {
            var (overlay, result, fastCommits) = try JBD2.replay(journalBlocks: count, blockSize: blockSize,
                                                                 fsBlocks: filesystemBlocks, read: read, memoryLimit: memoryLimit)
            result.fastCommits = fastCommits.count   // scanned: no filesystem to apply them to
            var blocks: [UInt64: [UInt8]] = [:]
            if let overlay {
                for n in overlay.blockNumbers {
                    var b = [UInt8](repeating: 0, count: blockSize)
                    _ = try b.withUnsafeMutableBytes { try overlay.read(n, from: 0, into: $0) }
                    blocks[n] = b
                }
            }
            return (result, blocks)
        } catch {
            var result = JournalReplay()
            result.warnings.append("replay failed: \(FWError(error).message)")
            return (result, [:])
        }
    }
}
