internal import CExt2fs
import DiskImage

/// Applies the fast-commit records found by `FastCommitScan` to the replayed filesystem, as the
/// kernel's ext4_fc_replay does when it mounts (fs/ext4/fast_commit.c; e2fsck's journal.c does
/// the same through libext2fs). The filesystem is opened read-write through libext2fs over the
/// journal overlay with every write going into that overlay (the source is never written):
/// - INODE: the raw inode replaces the stored one except `i_block` (the block map or extent root
///   stays; an extent root without its magic gets an empty one; inline data is copied); i_blocks
///   recounted; the checksum set.
/// - ADD_RANGE: the extent's blocks mapped (replacing older mappings, unwritten kept unwritten).
/// - DEL_RANGE: the logical range punched out.
/// - CREAT / LINK: the entry added to the parent (an entry of that name already there is kept,
///   as the kernel's -EEXIST); UNLINK: the entry naming that inode removed and its link count
///   dropped.
/// Blocks of every ADD_RANGE are marked in use before anything is applied, so that a block the
/// replay allocates (an extent-tree block, a directory block) never lands on them (the kernel's
/// excluded regions).
enum FastCommitReplay {
    /// Blocks mapped by ADD_RANGE records at most (each is a libext2fs mapping call).
    static let maximumMappedBlocks = 1 << 20

    /// Applies `tags` (in order) over `source` with writes into `overlay`; returns the records
    /// applied. Throws an `FWError` naming the record that could not be applied: what came before
    /// it stays applied (the kernel's replay also stops at a record it fails on).
    static func apply(_ tags: [FastCommitTag], source: any ByteSource, overlay: BlockOverlay, place: FWError.Place) throws -> Int {
        let (state, owner) = try Ext4Reader.open(OverlaySource(base: source, overlay: overlay), place: place, writesTo: overlay)
        let fs = owner.pointer
        fs.pointee.flags |= Int32(EXT2_FLAG_IGNORE_CSUM_ERRORS)
        var applier = Applier(fs: fs, channel: state, place: place)
        try applier.check(ext2fs_read_bitmaps(fs), "the allocation bitmaps cannot be read")
        try applier.excludeAddedRanges(tags)
        var applied = 0
        for tag in tags {
            try applier.apply(tag)
            applied += 1
        }
        // Closing the handle flushes the bitmaps, counters and primary superblock into the
        // overlay too (the inode, directory and extent blocks are there already).
        fs.pointee.flags |= Int32(EXT2_FLAG_MASTER_SB_ONLY)
        withExtendedLifetime(owner) {}
        return applied
    }

    private struct Applier {
        let fs: ext2_filsys
        let channel: ChannelState
        let place: FWError.Place
        var mapped = 0
        var inodeSize: Int { Int(fs.pointee.super.pointee.s_inode_size) }
        var inodeCount: UInt32 { fs.pointee.super.pointee.s_inodes_count }
        var blocksCount: UInt64 { ext2fs_blocks_count(fs.pointee.super) }

        func check(_ code: errcode_t, _ what: @autoclosure () -> String) throws {
            guard code == 0 else { throw Ext4Reader.error(code, what(), source: place, channel: channel) }
        }

        func failure(_ message: String) -> FWError { FWError(.corrupt, message, at: place) }

        func inodeNumber(_ c: ByteCursor, at offset: Int) throws -> ext2_ino_t {
            guard let n = c.integerIfPresent(at: offset, endianness: .little, as: UInt32.self), n >= 1, n <= inodeCount else {
                throw failure("a record names an inode outside the inode table")
            }
            return n
        }

        /// ext2fs_decode_extent of the 12-byte `struct ext4_extent` at 4 of an ADD_RANGE value.
        func extent(_ value: [UInt8]) throws -> (ino: ext2_ino_t, extent: ext2fs_extent) {
            let ino = try inodeNumber(ByteCursor(value), at: 0)
            var e = ext2fs_extent()
            var raw = Array(value[4..<16])
            try check(raw.withUnsafeMutableBytes { ext2fs_decode_extent(&e, $0.baseAddress, 12) }, "an ADD_RANGE record has a bad extent")
            guard e.e_len > 0, e.e_pblk < blocksCount, UInt64(e.e_len) <= blocksCount - e.e_pblk else {
                throw failure("an ADD_RANGE record of inode \(ino) maps blocks outside the filesystem")
            }
            return (ino, e)
        }

        mutating func excludeAddedRanges(_ tags: [FastCommitTag]) throws {
            for tag in tags where tag.kind == .addRange {
                let (_, e) = try extent(tag.value)
                ext2fs_mark_block_bitmap_range2(fs.pointee.block_map, e.e_pblk, UInt32(e.e_len))
            }
        }

        mutating func apply(_ tag: FastCommitTag) throws {
            switch tag.kind {
            case .inode: try replayInode(tag.value)
            case .addRange: try addRange(tag.value)
            case .deleteRange: try deleteRange(tag.value)
            case .create, .link: try link(tag.value)
            case .unlink: try unlink(tag.value)
            case .head, .tail, .pad: break
            }
        }

        func readInode(_ ino: ext2_ino_t) throws -> [UInt8] {
            var bytes = [UInt8](repeating: 0, count: inodeSize)
            let size = Int32(inodeSize)
            try check(bytes.withUnsafeMutableBytes { ext2fs_read_inode_full(fs, ino, $0.baseAddress?.assumingMemoryBound(to: ext2_inode.self), size) },
                      "inode \(ino) cannot be read")
            return bytes
        }

        func writeInode(_ ino: ext2_ino_t, _ bytes: [UInt8]) throws {
            var copy = bytes
            let size = Int32(inodeSize)
            try check(copy.withUnsafeMutableBytes { ext2fs_write_inode_full(fs, ino, $0.baseAddress?.assumingMemoryBound(to: ext2_inode.self), size) },
                      "inode \(ino) cannot be written")
        }

        /// ext4_fc_replay_inode.
        func replayInode(_ value: [UInt8]) throws {
            let ino = try inodeNumber(ByteCursor(value), at: 0)
            let raw = Array(value[4...])
            let length = min(raw.count, inodeSize)
            var inode = try readInode(ino)
            // i_mode .. i_block (0..<40), i_generation (100) to the end of the record.
            inode.replaceSubrange(0..<40, with: raw[0..<40])
            if length > 100 { inode.replaceSubrange(100..<length, with: raw[100..<length]) }
            let flags = ByteCursor(inode).integerIfPresent(at: 32, endianness: .little, as: UInt32.self) ?? 0
            if flags & UInt32(EXT4_EXTENTS_FL) != 0 {
                if ByteCursor(inode).integerIfPresent(at: 40, endianness: .little, as: UInt16.self) != 0xF30A {
                    // An empty extent root: eh_magic, eh_entries 0, eh_max 4, eh_depth 0.
                    inode.replaceSubrange(40..<52, with: [0x0A, 0xF3, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0])
                }
            } else if flags & UInt32(EXT4_INLINE_DATA_FL) != 0 {
                inode.replaceSubrange(40..<100, with: raw[40..<100])
            }
            try writeInode(ino, inode)
            // ext4_ext_replay_set_iblocks: i_blocks from the mapping as it now is.
            var blocks: blk64_t = 0
            var small = ext2_inode()
            try check(ext2fs_read_inode(fs, ino, &small), "inode \(ino) cannot be read")
            if flags & UInt32(EXT4_INLINE_DATA_FL) == 0, ext2fs_count_blocks(fs, ino, &small, &blocks) == 0 {
                _ = ext2fs_iblk_set(fs, &small, blocks)
                try check(ext2fs_write_inode(fs, ino, &small), "inode \(ino) cannot be written")
            }
        }

        /// ext4_fc_replay_add_range: each block of the range mapped to its physical block.
        mutating func addRange(_ value: [UInt8]) throws {
            let (ino, e) = try extent(value)
            mapped += Int(e.e_len)
            guard mapped <= FastCommitReplay.maximumMappedBlocks else {
                throw failure("the fast commits map more than \(FastCommitReplay.maximumMappedBlocks) blocks")
            }
            let flags = Int32(BMAP_SET) | (e.e_flags & UInt32(EXT2_EXTENT_FLAGS_UNINIT) != 0 ? Int32(BMAP_UNINIT) : 0)
            for i in 0..<UInt64(e.e_len) {
                var physical = e.e_pblk + i
                try check(ext2fs_bmap2(fs, ino, nil, nil, flags, e.e_lblk + i, nil, &physical),
                          "block \(e.e_lblk + i) of inode \(ino) cannot be mapped")
            }
        }

        /// ext4_fc_replay_del_range.
        func deleteRange(_ value: [UInt8]) throws {
            let c = ByteCursor(value)
            let ino = try inodeNumber(c, at: 0)
            let start = UInt64(c.integerIfPresent(at: 4, endianness: .little, as: UInt32.self) ?? 0)
            let count = UInt64(c.integerIfPresent(at: 8, endianness: .little, as: UInt32.self) ?? 0)
            guard count > 0 else { return }
            try check(ext2fs_punch(fs, ino, nil, nil, start, start + count - 1), "blocks \(start)+\(count) of inode \(ino) cannot be punched")
        }

        /// The parent, the inode and the name of a dentry record (`struct ext4_fc_dentry_info`).
        func dentry(_ value: [UInt8]) throws -> (parent: ext2_ino_t, ino: ext2_ino_t, name: [CChar]) {
            let c = ByteCursor(value)
            let parent = try inodeNumber(c, at: 0)
            let ino = try inodeNumber(c, at: 4)
            let name = value[8...]
            guard !name.contains(0), !name.contains(0x2F) else {
                throw failure("a directory-entry record of inode \(ino) has a name with a NUL or '/'")
            }
            return (parent, ino, name.map { CChar(bitPattern: $0) } + [0])
        }

        /// ext4_fc_replay_link / ext4_fc_replay_create: the entry added unless the name is there.
        func link(_ value: [UInt8]) throws {
            let (parent, ino, name) = try dentry(value)
            var existing: ext2_ino_t = 0
            if ext2fs_lookup(fs, parent, name, Int32(name.count - 1), nil, &existing) == 0 { return }   // -EEXIST
            var inode = ext2_inode()
            try check(ext2fs_read_inode(fs, ino, &inode), "inode \(ino) cannot be read")
            let type: Int32
            switch Int32(inode.i_mode) & 0o170000 {
            case 0o100000: type = EXT2_FT_REG_FILE
            case 0o040000: type = EXT2_FT_DIR
            case 0o020000: type = EXT2_FT_CHRDEV
            case 0o060000: type = EXT2_FT_BLKDEV
            case 0o120000: type = EXT2_FT_SYMLINK
            case 0o010000: type = EXT2_FT_FIFO
            case 0o140000: type = EXT2_FT_SOCK
            default: throw failure("inode \(ino) has no file type to link")
            }
            var code = ext2fs_link(fs, parent, name, ino, type)
            if code == errcode_t(EXT2_ET_DIR_NO_SPACE) {
                try check(ext2fs_expand_dir(fs, parent), "directory inode \(parent) cannot grow")
                code = ext2fs_link(fs, parent, name, ino, type)
            }
            try check(code, "inode \(ino) cannot be linked into directory inode \(parent)")
        }

        /// ext4_fc_replay_unlink: a missing entry is fine (-ENOENT); a removed one drops a link.
        func unlink(_ value: [UInt8]) throws {
            let (parent, ino, name) = try dentry(value)
            guard ext2fs_unlink(fs, parent, name, ino, 0) == 0 else { return }
            var inode = ext2_inode()
            try check(ext2fs_read_inode(fs, ino, &inode), "inode \(ino) cannot be read")
            if inode.i_links_count > 0 { inode.i_links_count -= 1 }
            try check(ext2fs_write_inode(fs, ino, &inode), "inode \(ino) cannot be written")
        }
    }
}
