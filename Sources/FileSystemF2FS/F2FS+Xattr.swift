import DiskImage
import FileSystems

extension F2FSReader {
    /// `F2FS_XATTR_MAGIC` in `struct f2fs_xattr_header`.
    static let xattrMagic: UInt32 = 0xF2F5_2011
    /// `sizeof(struct f2fs_xattr_header)`: magic, refcount, 16 reserved bytes.
    static let xattrHeaderSize = 24
    /// `VALID_XATTR_BLOCK_SIZE`: an xattr node block without its footer.
    static let xattrBlockSize = F2FS.footerOffset

    /// The inode's xattrs (`read_all_xattrs`): the inline xattr area followed by the xattr
    /// node's block, read as one buffer holding a header and `f2fs_xattr_entry` records (name
    /// index, name length, le16 value size, name, value; 4-aligned) up to a zero word. Entries
    /// of indexes Linux does not list (encryption context, verity, advise) are left out.
    func xattrs(of ino: F2FS.Inode) throws -> [ExtendedAttribute] {
        var buffer: [UInt8] = []
        if ino.inline & F2FS.InlineFlag.xattr != 0, ino.inlineXattrWords > 0 {
            buffer += ino.block[ino.inlineXattrRange]
        }
        if ino.xattrNid != 0 {
            buffer += try node(ino.xattrNid, owner: ino.nid)[0..<Self.xattrBlockSize]
        }
        guard buffer.count > Self.xattrHeaderSize else { return [] }
        let c = ByteCursor(buffer, context: "f2fs xattrs of inode \(ino.nid)")
        // Never-written xattr space has no header; Linux fills one in and finds no entries.
        guard try c.u32le(at: 0) == Self.xattrMagic else { return [] }
        var result: [ExtendedAttribute] = []
        var at = Self.xattrHeaderSize
        while buffer.count - at >= 4, try c.u32le(at: at) != 0 {
            let index = try c.u8(at: at)
            let nameLength = Int(try c.u8(at: at + 1))
            let valueSize = Int(try c.u16le(at: at + 2))
            guard at + 4 + nameLength + valueSize <= buffer.count else {
                throw FWError.corrupt("f2fs inode \(ino.nid): xattr entry at \(at) runs past the xattr area")
            }
            let name = try c.array(at: at + 4, count: nameLength)
            let value = try c.array(at: at + 4 + nameLength, count: valueSize)
            if let attribute = try Self.attribute(index: index, name: name, value: value, inode: ino.nid) {
                result.append(attribute)
            }
            at += (4 + nameLength + valueSize + 3) & ~3
        }
        return result
    }

    /// Name index prefixes (`F2FS_XATTR_INDEX_*`); ACLs are converted from f2fs's compact
    /// format to the `system.posix_acl_*` xattr format. Nil for indexes Linux never lists.
    static func attribute(index: UInt8, name: [UInt8], value: [UInt8], inode: UInt32) throws -> ExtendedAttribute? {
        let prefix: String
        switch index {
        case 1: prefix = "user."
        case 2: return ExtendedAttribute(name: "system.posix_acl_access", value: try posixACL(value, inode: inode))
        case 3: return ExtendedAttribute(name: "system.posix_acl_default", value: try posixACL(value, inode: inode))
        case 4: prefix = "trusted."
        case 5: prefix = "lustre."
        case 6: prefix = "security."
        default: return nil   // 7 advise, 8 (unused), 9 encryption context, 11 verity: not xattrs a reader lists
        }
        return ExtendedAttribute(name: prefix + String(decoding: name, as: UTF8.self), value: value)
    }

    /// f2fs's ACL (`f2fs_acl_from_disk`: le32 version 1, then 4-byte short entries for USER_OBJ,
    /// GROUP_OBJ, MASK, OTHER and 8-byte entries with an id for USER and GROUP) as the POSIX ACL
    /// xattr (version 2, 8-byte entries, id 0xFFFFFFFF for the short kinds).
    static func posixACL(_ value: [UInt8], inode: UInt32) throws -> [UInt8] {
        let c = ByteCursor(value, context: "f2fs ACL of inode \(inode)")
        guard value.count >= 4, try c.u32le(at: 0) == 1 else {
            throw FWError.corrupt("f2fs inode \(inode): ACL with an unknown version")
        }
        var out: [UInt8] = [2, 0, 0, 0]
        var at = 4
        while at < value.count {
            let tag = try c.u16le(at: at)
            let perm = try c.u16le(at: at + 2)
            var id: UInt32 = 0xFFFF_FFFF
            switch tag {
            case 0x01, 0x04, 0x10, 0x20:
                at += 4
            case 0x02, 0x08:
                id = try c.u32le(at: at + 4)
                at += 8
            default:
                throw FWError.corrupt("f2fs inode \(inode): ACL entry with unknown tag 0x\(String(tag, radix: 16))")
            }
            for v in [UInt32(tag), UInt32(perm)] { out += [UInt8(v & 0xFF), UInt8(v >> 8)] }
            out += [UInt8(id & 0xFF), UInt8((id >> 8) & 0xFF), UInt8((id >> 16) & 0xFF), UInt8(id >> 24)]
        }
        return out
    }
}
