import DiskImage

/// A POSIX ACL as ext2/3/4 stores it in `system.posix_acl_access` / `system.posix_acl_default`
/// (`ext4_acl_header` + entries, fs/ext4/acl.h), converted to the format getxattr(2) returns
/// (`posix_acl_xattr_header` + entries, include/uapi/linux/posix_acl_xattr.h), as the kernel's
/// `ext4_acl_from_disk` followed by `posix_acl_to_xattr` would.
struct Ext4ACL: Equatable {
    struct Entry: Equatable {
        var tag: UInt16
        var permissions: UInt16
        /// uid or gid for ACL_USER / ACL_GROUP; nil for the others.
        var id: UInt32?
    }

    var entries: [Entry]

    // Tags (include/linux/posix_acl.h).
    static let userObject: UInt16 = 0x01, user: UInt16 = 0x02, groupObject: UInt16 = 0x04
    static let group: UInt16 = 0x08, mask: UInt16 = 0x10, other: UInt16 = 0x20
    /// ext4_acl_header.a_version.
    static let diskVersion: UInt32 = 1
    /// posix_acl_xattr_header.a_version.
    static let vfsVersion: UInt32 = 2
    /// The id the kernel writes for entries without one (ACL_UNDEFINED_ID).
    static let undefinedID: UInt32 = 0xFFFF_FFFF

    /// Decodes the on-disk form: a 4-byte header (a_version = 1), then for each entry e_tag (u16)
    /// and e_perm (u16), followed by e_id (u32) only for ACL_USER and ACL_GROUP.
    init(disk bytes: [UInt8]) throws {
        let c = ByteCursor(bytes, context: "ext4 POSIX ACL")
        let version = try c.u32le(at: 0)
        guard version == Self.diskVersion else {
            throw FWError.corrupt("ACL version \(version), expected \(Self.diskVersion)")
        }
        var offset = 4
        entries = []
        while offset < bytes.count {
            let tag = try c.u16le(at: offset)
            let permissions = try c.u16le(at: offset + 2)
            switch tag {
            case Self.user, Self.group:
                entries.append(Entry(tag: tag, permissions: permissions, id: try c.u32le(at: offset + 4)))
                offset += 8
            case Self.userObject, Self.groupObject, Self.mask, Self.other:
                entries.append(Entry(tag: tag, permissions: permissions, id: nil))
                offset += 4
            default:
                throw FWError.corrupt("ACL entry at byte \(offset) has unknown tag 0x\(String(tag, radix: 16))")
            }
        }
    }

    /// The getxattr(2) form: a_version = 2, then 8-byte entries e_tag, e_perm, e_id (little-endian).
    var vfsBytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(4 + 8 * entries.count)
        func put16(_ v: UInt16) { out.append(UInt8(v & 0xFF)); out.append(UInt8(v >> 8)) }
        func put32(_ v: UInt32) { for i in 0..<4 { out.append(UInt8((v >> (8 * UInt32(i))) & 0xFF)) } }
        put32(Self.vfsVersion)
        for e in entries {
            put16(e.tag)
            put16(e.permissions)
            put32(e.id ?? Self.undefinedID)
        }
        return out
    }
}
