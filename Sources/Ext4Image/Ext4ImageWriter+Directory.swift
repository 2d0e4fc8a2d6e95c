internal import CExt2fs
import DiskImage

/// Adding a name to a large directory in time independent of its size. libext2fs's
/// `ext2fs_link` (1.47.0) looks for room in every block of the directory, first fit, so a
/// directory of n entries costs O(n^2) block reads (100,000 members of one `--add-tar` directory
/// took 185 s). For the directories this writer makes, it keeps the most free room any block but
/// the last has (`directorySlack`): a name that needs more than that can only go into the last
/// block, or into a new block after it, and is placed there directly, exactly where
/// `ext2fs_link` would have put it (the same first fit within the block, the same bytes); any
/// other name goes through `ext2fs_link`. When that finds no room anywhere (and the directory is
/// expanded), no block has room for a record as long as the name's, so the bound is known again,
/// for any directory.
extension Ext4ImageWriter {
    /// ext4's directory record of a name: 8 bytes of header and the name, rounded to 4.
    static func recordLength(_ nameLength: Int) -> Int { (8 + nameLength + 3) & ~3 }

    /// Places `name` in the last block of `dir` (or a new block after it); false when `dir` is
    /// not one this writer tracks or the name might fit an earlier block.
    func appendLink(_ dir: ext2_ino_t, _ name: [CChar], _ ino: ext2_ino_t, _ type: Int32, _ display: String) throws -> Bool {
        let nameLength = name.count - 1
        guard let fs, let slack = directorySlack[dir], Self.recordLength(nameLength) > slack else { return false }
        let blockSize = Int(Ext4ImageGeometry.blockSize)
        var block = [UInt8](repeating: 0, count: blockSize)
        for attempt in 0..<2 {
            var inode = ext2_inode()
            try check(ext2fs_read_inode(fs, dir, &inode), "read the directory of \(display)")
            let size = UInt64(inode.i_size) | UInt64(inode.i_size_high) << 32
            guard size >= UInt64(blockSize), size % UInt64(blockSize) == 0 else { directorySlack[dir] = nil; return false }
            var physical: blk64_t = 0
            try check(ext2fs_bmap2(fs, dir, &inode, nil, 0, blk64_t(size / UInt64(blockSize) - 1), nil, &physical), "map the directory of \(display)")
            try block.withUnsafeMutableBytes { b in
                try check(ext2fs_read_dir_block4(fs, physical, b.baseAddress, 0, dir), "read the directory of \(display)")
            }
            switch Self.place(name.dropLast().map { UInt8(bitPattern: $0) }, ino, type, in: &block) {
            case .placed:
                try block.withUnsafeMutableBytes { b in
                    try check(ext2fs_write_dir_block4(fs, physical, b.baseAddress, 0, dir), "write the directory of \(display)")
                }
                return true
            case .corrupt:
                directorySlack[dir] = nil
                return false
            case .full(let free):
                guard attempt == 0 else { directorySlack[dir] = nil; return false }
                // The last block becomes an earlier one: its room counts from now on.
                directorySlack[dir] = max(slack, free)
                try check(ext2fs_expand_dir(fs, dir), "expand the directory of \(display)")
            }
        }
        return false
    }

    enum Placement { case placed, full(Int), corrupt }

    /// First fit in one directory block, as ext2fs_link's scan of a block: an unused record is
    /// first merged with an unused one after it; a used record with room for the name after its
    /// own is cut, the rest becoming an unused record; an unused record large enough takes the
    /// name. `.full` carries the most room the block has left.
    static func place(_ name: [UInt8], _ ino: ext2_ino_t, _ type: Int32, in block: inout [UInt8]) -> Placement {
        let size = block.count, need = recordLength(name.count)
        func u16(_ at: Int) -> Int { Int(block[at]) | Int(block[at + 1]) << 8 }
        func u32(_ at: Int) -> UInt32 { UInt32(u16(at)) | UInt32(u16(at + 2)) << 16 }
        func set16(_ at: Int, _ v: Int) { block[at] = UInt8(v & 0xFF); block[at + 1] = UInt8(v >> 8) }
        var free = 0
        var offset = 0
        while offset < size {
            var length = u16(offset + 4)
            guard length >= 8, length % 4 == 0, offset + length <= size, Int(block[offset + 6]) + 8 <= length else { return .corrupt }
            let next = offset + length
            if next < size - 8, u32(next) == 0 {
                let nextLength = u16(next + 4)
                if nextLength >= 8, next + nextLength <= size {
                    length += nextLength
                    set16(offset + 4, length)
                }
            }
            if u32(offset) != 0 {
                let own = recordLength(Int(block[offset + 6]))
                if length >= own + need {
                    set16(offset + 4, own)
                    let cut = offset + own
                    block[cut..<(cut + 4)] = [0, 0, 0, 0]
                    set16(cut + 4, length - own)
                    block[cut + 6] = 0
                    block[cut + 7] = 0
                    offset = cut
                    continue
                }
                free = max(free, length - own)
            } else if length >= need {
                withUnsafeBytes(of: ino.littleEndian) { block[offset..<(offset + 4)] = ArraySlice($0) }
                block[offset + 6] = UInt8(name.count)
                block[offset + 7] = UInt8(type & 0x7)
                block.replaceSubrange((offset + 8)..<(offset + 8 + name.count), with: name)
                return .placed
            } else {
                free = max(free, length)
            }
            offset += length
        }
        return .full(free)
    }
}
