import DiskImage
import FileSystems

/// The UBIFS on-flash format (linux fs/ubifs/ubifs-media.h): nodes in the LEBs of a UBI volume,
/// each with a 24-byte common header; the superblock node in LEB 0, master nodes in LEBs 1 and 2,
/// and a B+tree of index nodes (the TNC) whose leaves are inode, directory-entry, xattr-entry
/// and data nodes, found by key. All integers little-endian; CRCs are Linux's
/// `crc32(0xFFFFFFFF, node + 8, len - 8)`.
public enum UBIFS {
    /// `UBIFS_NODE_MAGIC`.
    static let magic: UInt32 = 0x0610_1831
    static let commonHeaderSize = 24
    static let superblockSize = 4096
    static let masterSize = 512
    static let inodeSize = 160
    static let dentSize = 56
    static let dataSize = 48
    static let indexHeaderSize = 28
    /// `UBIFS_BLOCK_SIZE`: file data is cut in 4 KiB blocks, one data node each.
    static let blockSize: UInt64 = 4096
    /// `UBIFS_ROOT_INO`.
    static let rootIno: UInt64 = 1
    /// Largest node accepted (`UBIFS_MAX_NODE_SZ` is an inode with 4 KiB of xattr data).
    static let maximumNodeLength = 16 << 10
    /// `UBIFS_MAX_LEVELS`: deepest index tree accepted.
    static let maximumLevels = 512

    enum NodeType: UInt8 {
        case inode = 0, data = 1, dent = 2, xent = 3, truncation = 4, padding = 5, superblock = 6, master = 7
        case ref = 8, index = 9, commitStart = 10, orphan = 11, authentication = 12, signature = 13
    }

    /// Key types (the top 3 bits of a simple key's second word).
    enum KeyType: UInt32 {
        case inode = 0, data = 1, dent = 2, xent = 3
    }

    /// `UBIFS_COMPR_*`.
    enum Compression: UInt16 {
        case none = 0, lzo = 1, zlib = 2, zstd = 3
    }

    /// Superblock flags (`UBIFS_FLG_*`).
    static let flagEncryption: UInt32 = 0x10
    static let flagAuthentication: UInt32 = 0x20

    /// A simple-format key (`UBIFS_SIMPLE_KEY_FMT`): inode number, then type << 29 | hash or
    /// block number. Keys compare as (inum, second word), as keys_cmp does.
    struct Key: Comparable, Hashable, CustomStringConvertible {
        var inum: UInt32
        var word: UInt32

        init(inum: UInt32, type: KeyType, value: UInt32) {
            self.inum = inum
            word = type.rawValue << 29 | (value & 0x1FFF_FFFF)
        }

        init(inum: UInt32, word: UInt32) {
            self.inum = inum
            self.word = word
        }

        init(_ c: ByteCursor, at offset: Int) throws {
            inum = try c.u32le(at: offset)
            word = try c.u32le(at: offset + 4)
        }

        var type: UInt32 { word >> 29 }
        var value: UInt32 { word & 0x1FFF_FFFF }

        static func < (a: Key, b: Key) -> Bool { (a.inum, a.word) < (b.inum, b.word) }

        var description: String { "(\(inum), type \(type), \(value))" }
    }

    /// `struct ubifs_ch`.
    struct CommonHeader {
        var magic: UInt32       // 0
        var crc: UInt32         // 4
        var sequence: UInt64    // 8 sqnum
        var length: UInt32      // 16 len
        var nodeType: UInt8     // 20
        var groupType: UInt8    // 21

        init(_ c: ByteCursor) throws {
            magic = try c.u32le(at: 0)
            crc = try c.u32le(at: 4)
            sequence = try c.u64le(at: 8)
            length = try c.u32le(at: 16)
            nodeType = try c.u8(at: 20)
            groupType = try c.u8(at: 21)
        }
    }

    /// `struct ubifs_sb_node` (the fields the reader uses).
    public struct Superblock: Sendable {
        public var keyHash: UInt8           // 26 key_hash
        public var keyFormat: UInt8         // 27 key_fmt
        public var flags: UInt32            // 28
        public var minIOSize: UInt32        // 32 min_io_size
        public var lebSize: UInt32          // 36 leb_size
        public var lebCount: UInt32         // 40 leb_cnt
        public var logLEBs: UInt32          // 56 log_lebs
        public var lptLEBs: UInt32          // 60 lpt_lebs
        public var orphanLEBs: UInt32       // 64 orph_lebs
        /// Data journal heads (`jhead_cnt`); the garbage collector's and the base head come
        /// first (`NONDATA_JHEADS_CNT` 2), so REF nodes name heads 0..<journalHeads + 2.
        public var journalHeads: UInt32     // 68 jhead_cnt
        public var fanout: UInt32           // 72
        public var formatVersion: UInt32    // 80 fmt_version
        public var defaultCompression: UInt16 // 84 default_compr
        public var timeGranularity: UInt32  // 104 time_gran

        init(_ c: ByteCursor) throws {
            keyHash = try c.u8(at: 26)
            keyFormat = try c.u8(at: 27)
            flags = try c.u32le(at: 28)
            minIOSize = try c.u32le(at: 32)
            lebSize = try c.u32le(at: 36)
            lebCount = try c.u32le(at: 40)
            logLEBs = try c.u32le(at: 56)
            lptLEBs = try c.u32le(at: 60)
            orphanLEBs = try c.u32le(at: 64)
            journalHeads = try c.u32le(at: 68)
            fanout = try c.u32le(at: 72)
            formatVersion = try c.u32le(at: 80)
            defaultCompression = try c.u16le(at: 84)
            timeGranularity = try c.u32le(at: 104)
        }
    }

    /// `struct ubifs_mst_node` (the fields the reader uses).
    struct Master {
        var sequence: UInt64
        var highestInum: UInt64 // 24
        var commitNumber: UInt64 // 32 cmt_no
        var flags: UInt32       // 40
        var logLnum: UInt32     // 44 log_lnum
        var rootLnum: UInt32    // 48 root_lnum
        var rootOffset: UInt32  // 52 root_offs
        var rootLength: UInt32  // 56 root_len

        init(_ c: ByteCursor, sequence: UInt64) throws {
            self.sequence = sequence
            highestInum = try c.u64le(at: 24)
            commitNumber = try c.u64le(at: 32)
            flags = try c.u32le(at: 40)
            logLnum = try c.u32le(at: 44)
            rootLnum = try c.u32le(at: 48)
            rootOffset = try c.u32le(at: 52)
            rootLength = try c.u32le(at: 56)
        }
    }

    /// Where a node is: LEB, offset and length (`struct ubifs_branch` without its key).
    struct Location: Hashable {
        var lnum: UInt32
        var offset: UInt32
        var length: UInt32
    }

    /// `struct ubifs_idx_node`: `child_cnt` branches (lnum, offs, len, key) at `level`.
    struct IndexNode {
        var level: Int
        var branches: [(key: Key, location: Location)]
    }

    /// `struct ubifs_ino_node` (data: symlink target, device number or xattr value).
    package struct Inode: InodeRecord {
        var key: Key                // 24
        var size: UInt64            // 48
        var atime: (UInt64, UInt32) // 56, 80
        var ctime: (UInt64, UInt32) // 64, 84
        var mtime: (UInt64, UInt32) // 72, 88
        var nlink: UInt32           // 92
        var uid: UInt32             // 96
        var gid: UInt32             // 100
        var mode: UInt32            // 104
        var flags: UInt32           // 108
        var dataLength: UInt32      // 112 data_len
        var xattrCount: UInt32      // 116 xattr_cnt
        var data: [UInt8]           // 160

        package var posixMode: UInt32 { mode }

        init(_ c: ByteCursor) throws {
            key = try Key(c, at: 24)
            size = try c.u64le(at: 48)
            atime = (try c.u64le(at: 56), try c.u32le(at: 80))
            ctime = (try c.u64le(at: 64), try c.u32le(at: 84))
            mtime = (try c.u64le(at: 72), try c.u32le(at: 88))
            nlink = try c.u32le(at: 92)
            uid = try c.u32le(at: 96)
            gid = try c.u32le(at: 100)
            mode = try c.u32le(at: 104)
            flags = try c.u32le(at: 108)
            dataLength = try c.u32le(at: 112)
            xattrCount = try c.u32le(at: 116)
            data = try c.array(at: inodeSize, count: Int(dataLength))
        }
    }

    /// `struct ubifs_dent_node` (directory and xattr entries): name -> inode `inum`.
    struct Dent {
        var key: Key        // 24
        var inum: UInt64    // 40
        var type: UInt8     // 49
        var name: [UInt8]   // 56, nlen (le16 at 50) bytes

        init(_ c: ByteCursor) throws {
            key = try Key(c, at: 24)
            inum = try c.u64le(at: 40)
            type = try c.u8(at: 49)
            name = try c.array(at: dentSize, count: Int(try c.u16le(at: 50)))
        }
    }

    static func crc(_ node: [UInt8]) -> UInt32 { CRC32.kernel(node[8...], seed: 0xFFFF_FFFF) }
}
