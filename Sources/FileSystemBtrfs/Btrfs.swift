import DiskImage
import FileSystems

/// btrfs on-disk structures, as Linux `include/uapi/linux/btrfs_tree.h` and `fs/btrfs/ctree.h`
/// define them. All fields are little-endian.
public enum Btrfs {
    /// `BTRFS_MAGIC`: "_BHRfS_M" at superblock offset 0x40.
    public static let magic: [UInt8] = Array("_BHRfS_M".utf8)
    /// The primary superblock's offset and its mirrors (`btrfs_sb_offset(0...2)`).
    public static let superBlockOffsets: [UInt64] = [0x10000, 0x400_0000, 0x40_0000_0000]
    /// `BTRFS_SUPER_INFO_SIZE`.
    public static let superBlockSize = 4096
    /// `BTRFS_MAX_LEVEL`: tree levels 0 (leaves) to 7.
    public static let maximumLevel: UInt8 = 7
    /// `sizeof(struct btrfs_header)`.
    static let headerSize = 101
    /// `sizeof(struct btrfs_item)` and `sizeof(struct btrfs_key_ptr)`.
    static let itemSize = 25
    static let keyPointerSize = 33

    // Tree and object ids (`BTRFS_*_OBJECTID`).
    public static let rootTreeID: UInt64 = 1
    public static let chunkTreeID: UInt64 = 3
    /// `BTRFS_DEV_ITEMS_OBJECTID`: the objectid of the chunk tree's DEV_ITEMs.
    static let deviceItemsID: UInt64 = 1
    public static let rootTreeDirectoryID: UInt64 = 6
    public static let fsTreeID: UInt64 = 5
    public static let firstFreeID: UInt64 = 256
    public static let lastFreeID: UInt64 = 0xFFFF_FFFF_FFFF_FF00
    static let firstChunkTreeID: UInt64 = 256

    /// Item types (`BTRFS_*_KEY`).
    public enum ItemType: UInt8, Sendable {
        case inodeItem = 1, inodeRef = 12, inodeExtref = 13, xattrItem = 24, dirItem = 84, dirIndex = 96
        case extentData = 108, rootItem = 132, rootBackref = 144, rootRef = 156
        case deviceItem = 216, chunkItem = 228
    }

    /// `csum_type` values.
    public enum ChecksumType: UInt16, Sendable {
        case crc32c = 0, xxhash64 = 1, sha256 = 2, blake2b = 3

        /// Bytes of one data checksum (a csum item holds one per sector).
        public var size: Int {
            switch self {
            case .crc32c: 4
            case .xxhash64: 8
            case .sha256, .blake2b: 32
            }
        }

        public var name: String {
            switch self {
            case .crc32c: "crc32c"
            case .xxhash64: "xxhash64"
            case .sha256: "sha256"
            case .blake2b: "blake2b"
            }
        }
    }

    /// Incompatible features (`BTRFS_FEATURE_INCOMPAT_*`).
    public struct IncompatibleFeatures: OptionSet, Sendable, CustomStringConvertible {
        public let rawValue: UInt64
        public init(rawValue: UInt64) { self.rawValue = rawValue }
        public static let mixedBackref = IncompatibleFeatures(rawValue: 0x1)
        public static let defaultSubvolume = IncompatibleFeatures(rawValue: 0x2)
        public static let mixedGroups = IncompatibleFeatures(rawValue: 0x4)
        public static let compressLZO = IncompatibleFeatures(rawValue: 0x8)
        public static let compressZstd = IncompatibleFeatures(rawValue: 0x10)
        public static let bigMetadata = IncompatibleFeatures(rawValue: 0x20)
        public static let extendedInodeRefs = IncompatibleFeatures(rawValue: 0x40)
        public static let raid56 = IncompatibleFeatures(rawValue: 0x80)
        public static let skinnyMetadata = IncompatibleFeatures(rawValue: 0x100)
        public static let noHoles = IncompatibleFeatures(rawValue: 0x200)
        public static let metadataUUID = IncompatibleFeatures(rawValue: 0x400)
        public static let raid1c34 = IncompatibleFeatures(rawValue: 0x800)
        public static let zoned = IncompatibleFeatures(rawValue: 0x1000)
        public static let extentTreeV2 = IncompatibleFeatures(rawValue: 0x2000)
        public static let raidStripeTree = IncompatibleFeatures(rawValue: 0x4000)
        public static let simpleQuota = IncompatibleFeatures(rawValue: 0x10000)

        /// What this reader handles (extent tree v2 and the RAID stripe tree change how logical
        /// addresses map and are refused).
        public static let supported: IncompatibleFeatures = [
            .mixedBackref, .defaultSubvolume, .mixedGroups, .compressLZO, .compressZstd, .bigMetadata,
            .extendedInodeRefs, .raid56, .skinnyMetadata, .noHoles, .metadataUUID, .raid1c34, .zoned, .simpleQuota,
        ]

        static let names: [(IncompatibleFeatures, String)] = [
            (.mixedBackref, "mixed_backref"), (.defaultSubvolume, "default_subvol"), (.mixedGroups, "mixed_groups"),
            (.compressLZO, "compress_lzo"), (.compressZstd, "compress_zstd"), (.bigMetadata, "big_metadata"),
            (.extendedInodeRefs, "extended_iref"), (.raid56, "raid56"), (.skinnyMetadata, "skinny_metadata"),
            (.noHoles, "no_holes"), (.metadataUUID, "metadata_uuid"), (.raid1c34, "raid1c34"), (.zoned, "zoned"),
            (.extentTreeV2, "extent_tree_v2"), (.raidStripeTree, "raid_stripe_tree"), (.simpleQuota, "simple_quota"),
        ]

        /// The feature names as `btrfs inspect-internal dump-super` spells them (lower case).
        public var names: [String] {
            var parts = Self.names.filter { contains($0.0) }.map(\.1)
            let known = Self.names.reduce(UInt64(0)) { $0 | $1.0.rawValue }
            if rawValue & ~known != 0 { parts.append("0x" + String(rawValue & ~known, radix: 16)) }
            return parts
        }

        public var description: String { names.joined(separator: ",") }
    }

    /// Read-only compatible features (`BTRFS_FEATURE_COMPAT_RO_*`): a reader may ignore them.
    public static func compatibleReadOnlyNames(_ flags: UInt64) -> [String] {
        let names: [(UInt64, String)] = [(0x1, "free_space_tree"), (0x2, "free_space_tree_valid"), (0x4, "verity"), (0x8, "block_group_tree")]
        var parts = names.filter { flags & $0.0 != 0 }.map(\.1)
        let known = names.reduce(UInt64(0)) { $0 | $1.0 }
        if flags & ~known != 0 { parts.append("0x" + String(flags & ~known, radix: 16)) }
        return parts
    }

    /// A key (`struct btrfs_disk_key`, 17 bytes): objectid, type, offset; ordered in that order.
    public struct Key: Sendable, Hashable, Comparable, CustomStringConvertible {
        public var objectID: UInt64
        public var type: UInt8
        public var offset: UInt64

        public init(_ objectID: UInt64, _ type: UInt8, _ offset: UInt64) {
            self.objectID = objectID
            self.type = type
            self.offset = offset
        }

        public init(_ objectID: UInt64, _ type: ItemType, _ offset: UInt64) {
            self.init(objectID, type.rawValue, offset)
        }

        init(_ c: ByteCursor, at offset: Int) throws {
            objectID = try c.u64le(at: offset)
            type = try c.u8(at: offset + 8)
            self.offset = try c.u64le(at: offset + 9)
        }

        public static func < (a: Key, b: Key) -> Bool {
            (a.objectID, a.type, a.offset) < (b.objectID, b.type, b.offset)
        }

        public var description: String { "(\(objectID) \(type) \(offset))" }
    }

    /// The superblock (`struct btrfs_super_block`, 4096 bytes), the fields this reader uses.
    public struct SuperBlock: Sendable {
        /// 0x00 `csum`.
        public var checksum: [UInt8]
        /// 0x20 `fsid`.
        public var fsid: [UInt8]
        /// 0x30 `bytenr`: where this copy lives.
        public var byteNumber: UInt64
        /// 0x48 `generation`.
        public var generation: UInt64
        /// 0x50 `root`: logical address of the root tree.
        public var rootTree: UInt64
        /// 0x58 `chunk_root`.
        public var chunkTree: UInt64
        /// 0x60 `log_root` (a log tree not replayed at mount, 0 when clean).
        public var logTree: UInt64
        /// 0x70 `total_bytes`, 0x78 `bytes_used`.
        public var totalBytes: UInt64
        public var bytesUsed: UInt64
        /// 0x80 `root_dir_objectid` (6).
        public var rootDirectoryID: UInt64
        /// 0x88 `num_devices`.
        public var deviceCount: UInt64
        /// 0x90 `sectorsize`, 0x94 `nodesize`, 0x9c `stripesize`.
        public var sectorSize: UInt32
        public var nodeSize: UInt32
        public var stripeSize: UInt32
        /// 0xa0 `sys_chunk_array_size`.
        public var systemChunkArraySize: UInt32
        /// 0xac `compat_flags`, 0xb4 `compat_ro_flags`, 0xbc `incompat_flags`.
        public var compatibleFlags: UInt64
        public var compatibleReadOnlyFlags: UInt64
        public var incompatibleFlags: IncompatibleFeatures
        /// 0xc4 `csum_type`.
        public var checksumTypeValue: UInt16
        /// 0xc6 `root_level`, 0xc7 `chunk_root_level`, 0xc8 `log_root_level`.
        public var rootLevel: UInt8
        public var chunkRootLevel: UInt8
        public var logTreeLevel: UInt8
        /// 0xc9 `dev_item.devid` (this device's id); 0xc9 + 66 = 0x10b `dev_item.uuid` (this
        /// device's uuid, as the chunk tree's DEV_ITEM for the id has it).
        public var deviceID: UInt64
        public var deviceUUID: [UInt8]
        /// 0x12b `label[256]` (NUL-terminated).
        public var label: String
        /// 0x23b `metadata_uuid` (tree blocks carry it instead of `fsid` with METADATA_UUID).
        public var metadataUUID: [UInt8]
        /// 0x32b `sys_chunk_array[2048]`.
        public var systemChunkArray: [UInt8]

        public init(_ c: ByteCursor) throws {
            checksum = try c.array(at: 0, count: 32)
            fsid = try c.array(at: 0x20, count: 16)
            byteNumber = try c.u64le(at: 0x30)
            generation = try c.u64le(at: 0x48)
            rootTree = try c.u64le(at: 0x50)
            chunkTree = try c.u64le(at: 0x58)
            logTree = try c.u64le(at: 0x60)
            totalBytes = try c.u64le(at: 0x70)
            bytesUsed = try c.u64le(at: 0x78)
            rootDirectoryID = try c.u64le(at: 0x80)
            deviceCount = try c.u64le(at: 0x88)
            sectorSize = try c.u32le(at: 0x90)
            nodeSize = try c.u32le(at: 0x94)
            stripeSize = try c.u32le(at: 0x9c)
            systemChunkArraySize = try c.u32le(at: 0xa0)
            compatibleFlags = try c.u64le(at: 0xac)
            compatibleReadOnlyFlags = try c.u64le(at: 0xb4)
            incompatibleFlags = IncompatibleFeatures(rawValue: try c.u64le(at: 0xbc))
            checksumTypeValue = try c.u16le(at: 0xc4)
            rootLevel = try c.u8(at: 0xc6)
            chunkRootLevel = try c.u8(at: 0xc7)
            logTreeLevel = try c.u8(at: 0xc8)
            deviceID = try c.u64le(at: 0xc9)
            deviceUUID = try c.array(at: 0x10b, count: 16)
            let labelBytes = try c.array(at: 0x12b, count: 256)
            label = String(decoding: labelBytes.prefix { $0 != 0 }, as: UTF8.self)
            metadataUUID = try c.array(at: 0x23b, count: 16)
            systemChunkArray = try c.array(at: 0x32b, count: 2048)
        }

        /// The id tree blocks carry in their header's `fsid`.
        public var treeBlockFSID: [UInt8] { incompatibleFlags.contains(.metadataUUID) ? metadataUUID : fsid }

        /// "xxxxxxxx-xxxx-..." of `fsid`, as blkid prints UUID.
        public var uuidString: String { Btrfs.uuidString(fsid) }
    }

    static func uuidString(_ bytes: [UInt8]) -> String {
        let hex = bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
        guard hex.count == 32 else { return hex }
        let c = Array(hex)
        return [c[0..<8], c[8..<12], c[12..<16], c[16..<20], c[20..<32]].map { String($0) }.joined(separator: "-")
    }

    /// A tree block header (`struct btrfs_header`, 101 bytes).
    struct Header {
        /// 32 `fsid`, 48 `bytenr`, 80 `generation`, 88 `owner`, 96 `nritems`, 100 `level`.
        var fsid: [UInt8]
        var byteNumber: UInt64
        var generation: UInt64
        var owner: UInt64
        var itemCount: UInt32
        var level: UInt8

        init(_ c: ByteCursor) throws {
            fsid = try c.array(at: 32, count: 16)
            byteNumber = try c.u64le(at: 48)
            generation = try c.u64le(at: 80)
            owner = try c.u64le(at: 88)
            itemCount = try c.u32le(at: 96)
            level = try c.u8(at: 100)
        }
    }

    /// `struct btrfs_inode_item` (160 bytes).
    struct InodeItem {
        /// 16 `size`, 40 `nlink`, 44 `uid`, 48 `gid`, 52 `mode`, 56 `rdev`, 64 `flags`.
        var size: UInt64
        var linkCount: UInt32
        var uid: UInt32
        var gid: UInt32
        var mode: UInt32
        var rdev: UInt64
        var flags: UInt64
        /// 112 `atime`, 124 `ctime`, 136 `mtime` (`struct btrfs_timespec`: le64 sec, le32 nsec).
        var atime: Timestamp
        var ctime: Timestamp
        var mtime: Timestamp

        static let byteCount = 160

        init(_ c: ByteCursor, at base: Int = 0) throws {
            size = try c.u64le(at: base + 16)
            linkCount = try c.u32le(at: base + 40)
            uid = try c.u32le(at: base + 44)
            gid = try c.u32le(at: base + 48)
            mode = try c.u32le(at: base + 52)
            rdev = try c.u64le(at: base + 56)
            flags = try c.u64le(at: base + 64)
            atime = try Self.time(c, base + 112)
            ctime = try Self.time(c, base + 124)
            mtime = try Self.time(c, base + 136)
        }

        static func time(_ c: ByteCursor, _ at: Int) throws -> Timestamp {
            let seconds = Int64(bitPattern: try c.u64le(at: at))
            let nanoseconds = try c.u32le(at: at + 8)
            guard nanoseconds < 1_000_000_000 else {
                throw FWError.corrupt("btrfs timestamp with \(nanoseconds) nanoseconds")
            }
            return Timestamp(seconds: seconds, nanoseconds: nanoseconds)
        }
    }

    /// `struct btrfs_root_item` (439 bytes; 239 in old filesystems), the fields used here.
    struct RootItem {
        /// 168 `root_dirid`, 176 `bytenr`, 208 `flags` (bit 0: RDONLY), 238 `level`.
        var rootDirectoryID: UInt64
        var byteNumber: UInt64
        var flags: UInt64
        var level: UInt8

        init(_ c: ByteCursor) throws {
            rootDirectoryID = try c.u64le(at: 168)
            byteNumber = try c.u64le(at: 176)
            flags = try c.u64le(at: 208)
            level = try c.u8(at: 238)
        }

        var isReadOnly: Bool { flags & 1 != 0 }
    }

    /// One `struct btrfs_dir_item` (30 bytes, then the name, then `data_len` bytes): directory
    /// entries (DIR_ITEM, DIR_INDEX) and extended attributes (XATTR_ITEM), several per item
    /// when names collide.
    struct DirItem {
        /// 0 `location` (a key: an INODE_ITEM in this tree, or a ROOT_ITEM for a subvolume).
        var location: Key
        /// 29 `type` (`BTRFS_FT_*`).
        var type: UInt8
        var name: [UInt8]
        var data: [UInt8]

        static let headerSize = 30

        /// All records of one item's bytes.
        static func all(_ c: ByteCursor) throws -> [DirItem] {
            var result: [DirItem] = []
            var position = 0
            while position < c.count {
                let dataLength = Int(try c.u16le(at: position + 25))
                let nameLength = Int(try c.u16le(at: position + 27))
                let name = try c.array(at: position + headerSize, count: nameLength)
                let data = try c.array(at: position + headerSize + nameLength, count: dataLength)
                result.append(DirItem(location: try Key(c, at: position), type: try c.u8(at: position + 29), name: name, data: data))
                position += headerSize + nameLength + dataLength
            }
            return result
        }
    }

    /// `BTRFS_FT_DIR`.
    static let fileTypeDirectory: UInt8 = 2
}
