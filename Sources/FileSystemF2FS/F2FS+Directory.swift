import DiskImage
import FileSystems

extension F2FSReader {
    /// Where a dentry area's parts are (`struct f2fs_dentry_ptr`): a bitmap of `count` slots,
    /// `count` eleven-byte `f2fs_dir_entry` records, `count` eight-byte name slots.
    struct DentryLayout {
        var count: Int
        var bitmap: Int
        var dentries: Int
        var names: Int

        /// A dentry block (`struct f2fs_dentry_block`).
        static let block = DentryLayout(count: F2FS.dentriesPerBlock, bitmap: 0, dentries: F2FS.dentryOffset, names: F2FS.dentryNameOffset)

        /// The inline dentry area of `ino` (`make_dentry_ptr_inline`): `NR_INLINE_DENTRY` slots
        /// out of `MAX_INLINE_DATA` bytes, the name slots at its end.
        static func inline(_ ino: F2FS.Inode) -> DentryLayout {
            let capacity = ino.inlineCapacity
            let count = capacity * 8 / ((F2FS.dentrySize + F2FS.nameSlotSize) * 8 + 1)
            let bitmapSize = (count + 7) / 8
            let reserved = capacity - ((F2FS.dentrySize + F2FS.nameSlotSize) * count + bitmapSize)
            let start = ino.inlineOffset
            return DentryLayout(count: count, bitmap: start, dentries: start + bitmapSize + reserved,
                                names: start + capacity - count * F2FS.nameSlotSize)
        }
    }

    /// The entries of directory `ino`: its inline dentries, or every dentry block of every hash
    /// level (all the directory's mapped blocks below `i_size`, as `f2fs_readdir`), without
    /// "." and "..".
    package func entries(of ino: F2FS.Inode, inode: UInt64) throws -> [DirectoryEntry] {
        guard !ino.isEncrypted else {
            throw FWError.unsupported("f2fs directory \(ino.nid) is encrypted (fscrypt): its names are not decrypted")
        }
        var entries: [DirectoryEntry] = []
        if ino.usesInlineDentries {
            let layout = DentryLayout.inline(ino)
            guard layout.count > 0, layout.names >= layout.dentries + layout.count * F2FS.dentrySize else {
                throw FWError.corrupt("f2fs directory \(ino.nid): inline dentry area of \(ino.inlineCapacity) bytes is too small")
            }
            try parseDentries(ino.block, layout, directory: ino.nid, into: &entries)
            return entries
        }
        let blockSize = UInt64(F2FS.blockSize)
        let blocks = ino.size / blockSize + (ino.size % blockSize == 0 ? 0 : 1)   // no overflow for a hostile i_size
        try BlockMap(reader: self, inode: ino).forEachMappedBlock(below: blocks) { index, address in
            guard isInMainArea(address) else {
                throw FWError.corrupt("f2fs directory \(ino.nid): block \(index) points outside the main area (block \(address))")
            }
            let block = try Self.readBlock(source, address, "f2fs directory \(ino.nid) block \(index)")
            try parseDentries(block, .block, directory: ino.nid, into: &entries)
        }
        return entries
    }

    /// The used slots of one dentry area (`f2fs_fill_dentries`): each set bit starts an entry
    /// whose name takes `ceil(name_len / 8)` slots.
    func parseDentries(_ bytes: [UInt8], _ layout: DentryLayout, directory: UInt32, into entries: inout [DirectoryEntry]) throws {
        let c = ByteCursor(bytes, context: "f2fs directory \(directory) dentries")
        var slot = 0
        while slot < layout.count {
            let bit = try c.u8(at: layout.bitmap + slot / 8) & (1 << (slot % 8))
            guard bit != 0 else { slot += 1; continue }
            let at = layout.dentries + slot * F2FS.dentrySize
            let nid = try c.u32le(at: at + 4)
            let length = Int(try c.u16le(at: at + 8))
            guard length > 0 else { slot += 1; continue }   // Linux skips a zero-length slot too
            let slots = (length + F2FS.nameSlotSize - 1) / F2FS.nameSlotSize
            guard length <= F2FS.maximumNameLength, slot + slots <= layout.count else {
                throw FWError.corrupt("f2fs directory \(directory): entry in slot \(slot) has a \(length)-byte name that does not fit")
            }
            let name = try c.array(at: layout.names + slot * F2FS.nameSlotSize, count: length)
            slot += slots
            if name == [0x2E] || name == [0x2E, 0x2E] { continue }
            guard nid >= 1, UInt64(nid) < superBlock.maximumNid else {
                throw FWError.corrupt("f2fs directory \(directory): entry \(String(decoding: name, as: UTF8.self)) names inode \(nid), outside 1..<\(superBlock.maximumNid)")
            }
            entries.append(DirectoryEntry(name: name, inode: UInt64(nid)))
            guard entries.count <= WalkLimits.maximumDirectoryEntries else {
                throw FWError(.limitExceeded, "f2fs directory \(directory) has more than \(WalkLimits.maximumDirectoryEntries) entries")
            }
        }
    }
}
