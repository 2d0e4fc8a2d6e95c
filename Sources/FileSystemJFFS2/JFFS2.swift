import DiskImage

/// The JFFS2 on-flash format (linux include/uapi/linux/jffs2.h, fs/jffs2/nodelist.h): a log of
/// nodes, each a 12-byte header (magic 0x1985, node type, total length, header CRC) and a body.
/// Every integer is in the filesystem's byte order (little- or big-endian, fixed at mkfs time;
/// the reader takes it from the first valid node). Nodes start 4-byte aligned. All CRCs are
/// Linux's `crc32(0, ...)` (`CRC32.kernel(_:seed: 0)`).
public enum JFFS2 {
    /// `JFFS2_MAGIC_BITMASK`.
    public static let magic: UInt16 = 0x1985
    /// `struct jffs2_unknown_node`: magic, nodetype, totlen, hdr_crc.
    static let headerSize = 12
    /// The fixed part of `struct jffs2_raw_dirent` (the name follows).
    static let direntSize = 40
    /// The fixed part of `struct jffs2_raw_inode` (the data follows).
    static let inodeSize = 68
    /// The fixed part of `struct jffs2_raw_xattr` (name, NUL, value follow).
    static let xattrSize = 32
    /// `struct jffs2_raw_xref`.
    static let xrefSize = 28
    /// Longest node the reader accepts. A node never crosses an erase block, and data nodes hold
    /// at most one page (4 KiB to 64 KiB); 1 MiB bounds a corrupt `totlen`.
    static let maximumNodeLength = 1 << 20
    /// The root directory's inode number.
    static let rootIno: UInt32 = 1

    /// `nodetype`: compatibility bits (`JFFS2_FEATURE_*`, 0xC000), `JFFS2_NODE_ACCURATE`
    /// (0x2000, cleared when the node is obsoleted in place) and the type number.
    enum NodeType {
        static let accurate: UInt16 = 0x2000
        static let compatibilityMask: UInt16 = 0xC000
        /// `JFFS2_FEATURE_INCOMPAT`: a kernel that does not know the type refuses to mount.
        static let incompatible: UInt16 = 0xC000
        /// `JFFS2_FEATURE_ROCOMPAT`: a kernel that does not know the type mounts read-only.
        static let readOnlyCompatible: UInt16 = 0x8000
        static let dirent: UInt16 = 0xE001
        static let inode: UInt16 = 0xE002
        static let cleanmarker: UInt16 = 0x2003
        static let padding: UInt16 = 0x2004
        static let summary: UInt16 = 0x2006
        static let xattr: UInt16 = 0xE008
        static let xref: UInt16 = 0xE009
    }

    /// `jffs2_raw_inode.compr` (`JFFS2_COMPR_*`; 0x15 is OpenWrt's LZMA patch).
    enum Compression: UInt8 {
        case none = 0x00, zero = 0x01, rtime = 0x02, rubinMIPS = 0x03, copy = 0x04, dynamicRubin = 0x05
        case zlib = 0x06, lzo = 0x07, lzma = 0x08, openWrtLZMA = 0x15
    }

    /// `struct jffs2_unknown_node`.
    struct NodeHeader {
        var magic: UInt16       // 0
        var nodeType: UInt16    // 2
        var totalLength: UInt32 // 4: header and body, unpadded
        var headerCRC: UInt32   // 8: crc32 of bytes 0..<8 with NODE_ACCURATE set in nodetype

        init(_ c: ByteCursor, at offset: Int, _ e: Endianness) throws {
            magic = try c.integer(at: offset, endianness: e)
            nodeType = try c.integer(at: offset + 2, endianness: e)
            totalLength = try c.integer(at: offset + 4, endianness: e)
            headerCRC = try c.integer(at: offset + 8, endianness: e)
        }
    }

    /// The fixed part of a node the scan records (dirent, inode, xattr, xref): at least `size`
    /// bytes, and a `node_crc` over its first `nodeCRCCovers` bytes that must hold before any of
    /// its fields is used.
    protocol FixedPart {
        /// What the scan's messages call the node: "dirent", "inode node".
        static var kind: String { get }
        static var size: Int { get }
        static var nodeCRCCovers: Int { get }
        var nodeCRC: UInt32 { get }
        /// Said after the node's place when its node CRC is bad ("inode node at 0 (ino 5)").
        var detail: String { get }
        init(_ c: ByteCursor, _ e: Endianness) throws
    }

    /// `struct jffs2_raw_dirent`: a name in directory `parent` for inode `ino` (0: deleted).
    struct Dirent: FixedPart {
        static let kind = "dirent"
        static let size = direntSize
        static let nodeCRCCovers = 32

        var parent: UInt32      // 12 pino
        var version: UInt32     // 16
        var ino: UInt32         // 20 (0 for a deletion dirent)
        var mctime: UInt32      // 24
        var nameSize: UInt8     // 28 nsize
        var type: UInt8         // 29 DT_* type
        var nodeCRC: UInt32     // 32: crc32 of bytes 0..<32
        var nameCRC: UInt32     // 36: crc32 of the name

        init(_ c: ByteCursor, _ e: Endianness) throws {
            parent = try c.integer(at: 12, endianness: e)
            version = try c.integer(at: 16, endianness: e)
            ino = try c.integer(at: 20, endianness: e)
            mctime = try c.integer(at: 24, endianness: e)
            nameSize = try c.u8(at: 28)
            type = try c.u8(at: 29)
            nodeCRC = try c.integer(at: 32, endianness: e)
            nameCRC = try c.integer(at: 36, endianness: e)
        }
    }

    /// `struct jffs2_raw_inode`: an inode's metadata as of `version`, and optionally a range of
    /// its data (`dsize` bytes at `offset`, stored as `csize` bytes compressed with `compr`).
    struct RawInode: FixedPart {
        static let kind = "inode node"
        static let size = inodeSize
        static let nodeCRCCovers = 60
        var detail: String { " (ino \(ino))" }

        var ino: UInt32         // 12
        var version: UInt32     // 16
        var mode: UInt32        // 20 (jmode_t: Linux's st_mode bits)
        var uid: UInt16         // 24
        var gid: UInt16         // 26
        var isize: UInt32       // 28: file size as of this node
        var atime: UInt32       // 32
        var mtime: UInt32       // 36
        var ctime: UInt32       // 40
        var offset: UInt32      // 44: where the data goes in the file
        var csize: UInt32       // 48: stored data length
        var dsize: UInt32       // 52: decompressed length
        var compression: UInt8  // 56 compr
        var userCompression: UInt8 // 57 usercompr
        var flags: UInt16       // 58
        var dataCRC: UInt32     // 60: crc32 of the csize stored bytes
        var nodeCRC: UInt32     // 64: crc32 of bytes 0..<60

        init(_ c: ByteCursor, _ e: Endianness) throws {
            ino = try c.integer(at: 12, endianness: e)
            version = try c.integer(at: 16, endianness: e)
            mode = try c.integer(at: 20, endianness: e)
            uid = try c.integer(at: 24, endianness: e)
            gid = try c.integer(at: 26, endianness: e)
            isize = try c.integer(at: 28, endianness: e)
            atime = try c.integer(at: 32, endianness: e)
            mtime = try c.integer(at: 36, endianness: e)
            ctime = try c.integer(at: 40, endianness: e)
            offset = try c.integer(at: 44, endianness: e)
            csize = try c.integer(at: 48, endianness: e)
            dsize = try c.integer(at: 52, endianness: e)
            compression = try c.u8(at: 56)
            userCompression = try c.u8(at: 57)
            flags = try c.integer(at: 58, endianness: e)
            dataCRC = try c.integer(at: 60, endianness: e)
            nodeCRC = try c.integer(at: 64, endianness: e)
        }
    }

    /// `struct jffs2_raw_xattr`: one attribute (name and value) shared by the inodes whose
    /// xrefs name its `xid`.
    struct RawXattr: FixedPart {
        static let kind = "xattr node"
        static let size = xattrSize
        static let nodeCRCCovers = 28

        var xid: UInt32         // 12
        var version: UInt32     // 16 (0xFFFFFFFF: deleted, XDATUM_DELETE_MARKER)
        var prefix: UInt8       // 20 xprefix (JFFS2_XPREFIX_*)
        var nameLength: UInt8   // 21
        var valueLength: UInt16 // 22
        var dataCRC: UInt32     // 24: crc32 of name, NUL, value
        var nodeCRC: UInt32     // 28: crc32 of bytes 0..<28

        init(_ c: ByteCursor, _ e: Endianness) throws {
            xid = try c.integer(at: 12, endianness: e)
            version = try c.integer(at: 16, endianness: e)
            prefix = try c.u8(at: 20)
            nameLength = try c.u8(at: 21)
            valueLength = try c.integer(at: 22, endianness: e)
            dataCRC = try c.integer(at: 24, endianness: e)
            nodeCRC = try c.integer(at: 28, endianness: e)
        }
    }

    /// `struct jffs2_raw_xref`: inode `ino` has attribute `xid`; the highest `xseqno` of an
    /// (ino, xid) pair wins, and an odd one (XREF_DELETE_MARKER) removes it.
    struct RawXref: FixedPart {
        static let kind = "xref node"
        static let size = xrefSize
        static let nodeCRCCovers = 24

        var ino: UInt32         // 12
        var xid: UInt32         // 16
        var sequence: UInt32    // 20 xseqno
        var nodeCRC: UInt32     // 24: crc32 of bytes 0..<24

        init(_ c: ByteCursor, _ e: Endianness) throws {
            ino = try c.integer(at: 12, endianness: e)
            xid = try c.integer(at: 16, endianness: e)
            sequence = try c.integer(at: 20, endianness: e)
            nodeCRC = try c.integer(at: 24, endianness: e)
        }
    }

    /// The xattr name prefixes (`JFFS2_XPREFIX_*`); 3 and 4 are POSIX ACLs with an empty name.
    static func xattrPrefix(_ index: UInt8) -> String? {
        switch index {
        case 1: "user."
        case 2: "security."
        case 3: "system.posix_acl_access"
        case 4: "system.posix_acl_default"
        case 5: "trusted."
        default: nil
        }
    }

    /// A JFFS2 POSIX ACL (fs/jffs2/acl.h: a 4-byte `a_version` 1, then 4-byte short entries for
    /// USER_OBJ, GROUP_OBJ, MASK and OTHER and 8-byte entries with an id for USER and GROUP, all
    /// in the filesystem's byte order) as the `system.posix_acl_*` value Linux's getxattr returns
    /// (`posix_acl_xattr`: little-endian version 2, 8-byte entries, id 0xFFFFFFFF where none).
    static func posixACL(_ bytes: [UInt8], _ e: Endianness) throws -> [UInt8] {
        let c = ByteCursor(bytes, context: "jffs2 ACL")
        guard try c.integer(at: 0, endianness: e, as: UInt32.self) == 1 else {
            throw FWError.corrupt("jffs2 ACL has version \(try c.integer(at: 0, endianness: e, as: UInt32.self)), expected 1")
        }
        var out: [UInt8] = [2, 0, 0, 0]
        var offset = 4
        while offset < bytes.count {
            let tag: UInt16 = try c.integer(at: offset, endianness: e)
            let perm: UInt16 = try c.integer(at: offset + 2, endianness: e)
            var id: UInt32 = 0xFFFF_FFFF
            switch tag {
            case 0x01, 0x04, 0x10, 0x20:   // ACL_USER_OBJ, ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER
                offset += 4
            case 0x02, 0x08:               // ACL_USER, ACL_GROUP
                id = try c.integer(at: offset + 4, endianness: e)
                offset += 8
            default:
                throw FWError.corrupt("jffs2 ACL entry with unknown tag 0x\(String(tag, radix: 16))")
            }
            for v in [UInt32(tag), UInt32(perm)] { out += [UInt8(v & 0xFF), UInt8(v >> 8)] }
            out += [UInt8(id & 0xFF), UInt8(id >> 8 & 0xFF), UInt8(id >> 16 & 0xFF), UInt8(id >> 24)]
        }
        return out
    }
}

extension JFFS2.FixedPart {
    var detail: String { "" }
}
