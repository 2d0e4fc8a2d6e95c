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
        return try JBD2.replay(journalBlocks: journalBlocks, blockSize: blockSize, fsBlocks: blocksCount, read: read,
                               progress: progress)
    }

    /// The orphan list (s_last_orphan, chained through i_dtime) as the kernel finds it when it
    /// mounts after recovery: inodes with no links are deleted, the others truncated to i_size.
    /// Neither changes what a walk sees (a deleted orphan is in no directory; the reader reads a
    /// file only up to i_size), so this counts them and checks the chain.
    static func orphanCount(_ fs: ext2_filsys, warnings: inout [String]) -> Int {
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
