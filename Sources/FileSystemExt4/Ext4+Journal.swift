internal import CExt2fs
import DiskImage

extension Ext4Reader {
    /// Replays the internal journal of the filesystem open in `fs` (read from `source`) into a
    /// block overlay. The journal inode's blocks are mapped through libext2fs on the on-disk state,
    /// before anything is laid over it. Returns nil for the overlay when nothing was replayed.
    static func replayJournal(_ fs: ext2_filsys, source: any ByteSource, blockSize: Int, blocksCount: UInt64,
                              progress: JournalProgress?) throws -> (BlockOverlay?, JournalReplay)
    {
        var result = JournalReplay()
        guard let sb = fs.pointee.super?.pointee else { return (nil, result) }
        let hasUUID = withUnsafeBytes(of: sb.s_journal_uuid) { $0.contains { $0 != 0 } }
        if sb.s_journal_inum == 0 || (sb.s_feature_incompat & UInt32(EXT3_FEATURE_INCOMPAT_JOURNAL_DEV)) != 0 {
            let what = sb.s_journal_dev != 0 || hasUUID ? "the journal is on an external device" : "the filesystem has no journal inode"
            result.warnings.append("\(what): not replayed, the filesystem is read as it is on disk (recent changes may be missing)")
            return (nil, result)
        }
        let ino = sb.s_journal_inum
        guard ino >= 1, ino <= sb.s_inodes_count else {
            result.warnings.append("journal inode \(ino) is outside the inode table: not replayed")
            return (nil, result)
        }
        var inode = ext2_inode()
        let code = ext2fs_read_inode(fs, ino, &inode)
        guard code == 0 else {
            result.warnings.append("journal inode \(ino) cannot be read: not replayed")
            return (nil, result)
        }
        let bytes = UInt64(inode.i_size) | UInt64(inode.i_size_high) << 32
        let journalBlocks = UInt32(clamping: min(bytes / UInt64(blockSize), blocksCount))
        // Each journal block's place on disk, mapped on demand (a journal has at most 2^32 blocks;
        // the mapping is walked at most three times, once per pass).
        var mapped: [UInt32: UInt64] = [:]
        let read: JBD2.ReadBlock = { index in
            guard index < journalBlocks else {
                throw FWError(.corrupt, "journal block \(index) is past the journal's \(journalBlocks) blocks")
            }
            var physical: UInt64 = mapped[index] ?? 0
            if physical == 0 {
                var inodeCopy = inode
                let code = ext2fs_bmap2(fs, ino, &inodeCopy, nil, 0, UInt64(index), nil, &physical)
                guard code == 0 else { throw FWError(.corrupt, "journal block \(index) cannot be mapped") }
                guard physical != 0 else { throw FWError(.corrupt, "the journal inode has a hole at block \(index)") }
                guard physical < blocksCount else {
                    throw FWError(.corrupt, "journal block \(index) maps to block \(physical), outside the filesystem")
                }
                if mapped.count < 1 << 20 { mapped[index] = physical }
            }
            let (offset, overflow) = physical.multipliedReportingOverflow(by: UInt64(blockSize))
            guard !overflow else { throw FWError(.corrupt, "journal block \(index) maps past any byte offset") }
            return try source.bytes(at: offset, count: blockSize)
        }
        // The kernel writes each journalled block to the block device with no check against the
        // superblock's block count (recovery.c: __getblk on j_fs_dev): after an online grow the
        // on-disk count is stale and the journal writes the new groups (and the new count). So
        // the bound is the device, the source, when it is larger than the on-disk count.
        let deviceBlocks = max(blocksCount, source.size / UInt64(blockSize))
        let inodeSize = sb.s_rev_level == 0 ? 128 : Int(sb.s_inode_size)
        var (overlay, replay, fastCommits) = try JBD2.replay(journalBlocks: journalBlocks, blockSize: blockSize, fsBlocks: deviceBlocks,
                                                             read: read, maximumInodeSize: inodeSize, progress: progress)
        if !fastCommits.isEmpty {
            let target = overlay ?? BlockOverlay(blockSize: blockSize)
            do {
                replay.fastCommits = try FastCommitReplay.apply(fastCommits, source: source, overlay: target, place: source.place)
            } catch {
                replay.warnings.append("fast-commit replay stopped: \(FWError(error).message); the records before it are applied")
            }
            if target.count > 0 {
                overlay = target
                replay.replayed = true
            }
        }
        return (overlay, replay)
    }

    /// The orphans the kernel finds when it mounts after recovery (ext4_orphan_cleanup): the
    /// orphan list (s_last_orphan, chained through i_dtime), then the orphan file's entries.
    /// Inodes with no links are deleted, the others truncated to i_size (a truncate that was in
    /// progress). Neither changes what a walk sees (a deleted orphan is in no directory; the
    /// reader reads a file only up to i_size), so this counts them and checks their records.
    static func orphanCount(_ fs: ext2_filsys, warnings: inout [String]) -> Int {
        orphanListCount(fs, warnings: &warnings) + orphanFileCount(fs, warnings: &warnings)
    }

    /// Blocks of an orphan file read at most (mke2fs makes 1/4096 of the filesystem, at most
    /// 512 blocks by default; the kernel reads the file whole).
    static let maximumOrphanFileBlocks: UInt64 = 1 << 16

    /// The orphan file (COMPAT_ORPHAN_FILE, inode s_orphan_file_inum; fs/ext4/orphan.c): each
    /// block holds little-endian inode numbers (0 = free slot) and ends with an 8-byte tail,
    /// ob_magic 0x0b10ca04 then ob_checksum (metadata_csum). The kernel refuses to mount when a
    /// block has a bad magic or checksum; here that block's entries are not counted, with a warning.
    static func orphanFileCount(_ fs: ext2_filsys, warnings: inout [String]) -> Int {
        guard let sb = fs.pointee.super?.pointee,
              sb.s_feature_compat & UInt32(EXT4_FEATURE_COMPAT_ORPHAN_FILE) != 0 else { return 0 }
        let ino = sb.s_orphan_file_inum
        guard ino >= 1, ino <= sb.s_inodes_count else {
            warnings.append("the orphan file is inode \(ino), outside the inode table; its orphans are not processed")
            return 0
        }
        var inode = ext2_inode()
        guard ext2fs_read_inode(fs, ino, &inode) == 0 else {
            warnings.append("the orphan file (inode \(ino)) cannot be read; its orphans are not processed")
            return 0
        }
        let blockSize = UInt64(fs.pointee.blocksize)
        let size = UInt64(inode.i_size) | UInt64(inode.i_size_high) << 32
        guard size % blockSize == 0, size / blockSize <= maximumOrphanFileBlocks else {
            warnings.append("the orphan file (inode \(ino)) has an invalid size of \(size) bytes; its orphans are not processed")
            return 0
        }
        let csum = sb.s_feature_ro_compat & UInt32(EXT4_FEATURE_RO_COMPAT_METADATA_CSUM) != 0
        let slots = (Int(blockSize) - 8) / 4   // ext4_inodes_per_orphan_block
        var block = [UInt8](repeating: 0, count: Int(blockSize))
        var seen = Set<UInt32>()
        for index in 0..<(size / blockSize) {
            var physical: UInt64 = 0
            var copy = inode
            guard ext2fs_bmap2(fs, ino, &copy, nil, 0, index, nil, &physical) == 0, physical != 0,
                  physical < ext2fs_blocks_count(fs.pointee.super) else {
                warnings.append("block \(index) of the orphan file (inode \(ino)) is not mapped inside the filesystem; its orphans are not processed")
                continue
            }
            let code = block.withUnsafeMutableBytes { io_channel_read_blk64(fs.pointee.io, physical, 1, $0.baseAddress) }
            let c = ByteCursor(block, context: "orphan file block")
            guard code == 0, c.integerIfPresent(at: Int(blockSize) - 8, endianness: .little, as: UInt32.self) == 0x0B10_CA04,
                  !csum || block.withUnsafeMutableBytes({ ext2fs_orphan_file_block_csum_verify(fs, ino, physical, $0.baseAddress) }) != 0 else {
                warnings.append("block \(index) of the orphan file (inode \(ino)) is unreadable or fails its magic or checksum (the kernel would refuse to mount); its orphans are not processed")
                continue
            }
            for slot in 0..<slots {
                guard let n = c.integerIfPresent(at: slot * 4, endianness: .little, as: UInt32.self), n != 0 else { continue }
                guard n <= sb.s_inodes_count else {
                    warnings.append("the orphan file names inode \(n), outside the inode table; skipped")
                    continue
                }
                seen.insert(n)
            }
        }
        return seen.count
    }

    /// The classic orphan list: s_last_orphan, chained through i_dtime.
    static func orphanListCount(_ fs: ext2_filsys, warnings: inout [String]) -> Int {
        guard let sb = fs.pointee.super?.pointee else { return 0 }
        var next = sb.s_last_orphan
        var seen = Set<UInt32>()
        while next != 0 {
            guard next >= 1, next <= sb.s_inodes_count else {
                warnings.append("the orphan list points at inode \(next), outside the inode table; orphan processing ends there")
                break
            }
            guard seen.insert(next).inserted else {
                warnings.append("the orphan list loops at inode \(next); orphan processing ends there")
                break
            }
            var inode = ext2_inode()
            guard ext2fs_read_inode(fs, next, &inode) == 0 else {
                warnings.append("orphan inode \(next) cannot be read; orphan processing ends there")
                break
            }
            next = inode.i_dtime
        }
        return seen.count
    }
}

extension Ext4Reader {
    /// Where each block of the internal journal of the filesystem in `source` is (filesystem
    /// block numbers, journal order) and the block size; for tests that damage a journal on purpose.
    static func journalLayout(of source: any ByteSource) throws -> (blocks: [UInt64], blockSize: Int) {
        let (_, owner) = try open(source, place: source.place)
        let fs = owner.pointer
        defer { withExtendedLifetime(owner) {} }
        guard let sb = fs.pointee.super?.pointee, sb.s_journal_inum != 0 else { return ([], Int(fs.pointee.blocksize)) }
        var inode = ext2_inode()
        guard ext2fs_read_inode(fs, sb.s_journal_inum, &inode) == 0 else { return ([], Int(fs.pointee.blocksize)) }
        let blockSize = Int(fs.pointee.blocksize)
        let count = (UInt64(inode.i_size) | UInt64(inode.i_size_high) << 32) / UInt64(blockSize)
        var blocks: [UInt64] = []
        for i in 0..<min(count, 1 << 20) {
            var physical: UInt64 = 0
            guard ext2fs_bmap2(fs, sb.s_journal_inum, &inode, nil, 0, i, nil, &physical) == 0 else { break }
            blocks.append(physical)
        }
        return (blocks, blockSize)
    }
}
