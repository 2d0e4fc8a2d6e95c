import DiskImage

/// EROFS (Enhanced Read-Only File System) on-disk structures, as Linux `fs/erofs/erofs_fs.h`
/// defines them. All fields are little-endian.
public enum EROFS {
    /// `EROFS_SUPER_MAGIC_V1`.
    public static let magic: UInt32 = 0xE0F5_E1E2
    /// `EROFS_SUPER_OFFSET`: the superblock starts 1024 bytes into the filesystem.
    public static let superBlockOffset: UInt64 = 1024
    /// `EROFS_NULL_ADDR` as a 32-bit block address: a hole (chunk maps) or no data.
    static let nullAddress32: UInt32 = 0xFFFF_FFFF

    /// Incompatible features (`EROFS_FEATURE_INCOMPAT_*`). Several bits have two names.
    public struct IncompatibleFeatures: OptionSet, Sendable, CustomStringConvertible {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// `LZ4_0PADDING` (0x1): compressed data sits at the end of its pcluster after zeros.
        public static let zeroPadding = IncompatibleFeatures(rawValue: 0x1)
        /// `COMPR_CFGS` / `BIG_PCLUSTER` (0x2): per-algorithm configurations, big pclusters.
        public static let compressionConfigs = IncompatibleFeatures(rawValue: 0x2)
        /// `CHUNKED_FILE` (0x4): chunk-based files.
        public static let chunkedFile = IncompatibleFeatures(rawValue: 0x4)
        /// `DEVICE_TABLE` / `COMPR_HEAD2` (0x8): extra devices; second-algorithm heads.
        public static let deviceTable = IncompatibleFeatures(rawValue: 0x8)
        /// `ZTAILPACKING` (0x10): inline tail pclusters.
        public static let ztailpacking = IncompatibleFeatures(rawValue: 0x10)
        /// `FRAGMENTS` / `DEDUPE` (0x20): tails in the packed inode; shared pclusters.
        public static let fragments = IncompatibleFeatures(rawValue: 0x20)
        /// `XATTR_PREFIXES` (0x40): long xattr name prefixes.
        public static let xattrPrefixes = IncompatibleFeatures(rawValue: 0x40)
        /// `48BIT` (0x80): 48-bit block addresses (not supported).
        public static let blockAddress48 = IncompatibleFeatures(rawValue: 0x80)
        /// `METABOX` (0x100): metadata in a metabox inode (not supported).
        public static let metabox = IncompatibleFeatures(rawValue: 0x100)

        /// What this reader handles.
        public static let supported: IncompatibleFeatures = [.zeroPadding, .compressionConfigs, .chunkedFile, .deviceTable, .ztailpacking, .fragments, .xattrPrefixes]

        public var description: String {
            let names: [(IncompatibleFeatures, String)] = [
                (.zeroPadding, "0padding"), (.compressionConfigs, "compr_cfgs/big_pcluster"), (.chunkedFile, "chunked_file"),
                (.deviceTable, "device_table/compr_head2"), (.ztailpacking, "ztailpacking"), (.fragments, "fragments/dedupe"),
                (.xattrPrefixes, "xattr_prefixes"), (.blockAddress48, "48bit"), (.metabox, "metabox"),
            ]
            var parts = names.filter { contains($0.0) }.map(\.1)
            let known = names.reduce(UInt32(0)) { $0 | $1.0.rawValue }
            if rawValue & ~known != 0 { parts.append("0x" + String(rawValue & ~known, radix: 16)) }
            return parts.joined(separator: ",")
        }
    }

    /// Compression algorithms (`Z_EROFS_COMPRESSION_*`).
    public enum Algorithm: UInt8, Sendable {
        case lz4 = 0, lzma = 1, deflate = 2, zstd = 3

        var name: String {
            switch self {
            case .lz4: return "lz4"
            case .lzma: return "microlzma"
            case .deflate: return "deflate"
            case .zstd: return "zstd"
            }
        }
    }

    /// The superblock (`struct erofs_super_block`, 128 bytes plus `sb_extslots` * 16).
    public struct SuperBlock: Sendable {
        /// 0 `magic`.
        public var magic: UInt32
        /// 4 `checksum` (crc32c, only meaningful with the `SB_CHKSUM` compat feature; not verified).
        public var checksum: UInt32
        /// 8 `feature_compat`.
        public var featureCompat: UInt32
        /// 12 `blkszbits`.
        public var blockSizeBits: UInt8
        /// 13 `sb_extslots`: superblock size is 128 + 16 * this.
        public var extensionSlots: UInt8
        /// 14 `root_nid` (16-bit without the 48BIT feature).
        public var rootNid: UInt16
        /// 16 `inos`.
        public var inodeCount: UInt64
        /// 24 `build_time` (called `epoch` in newer headers): compact inodes' mtime base.
        public var buildTime: UInt64
        /// 32 `build_time_nsec` (`fixed_nsec`): compact inodes' nanoseconds.
        public var buildTimeNanoseconds: UInt32
        /// 36 `blocks`.
        public var blocks: UInt32
        /// 40 `meta_blkaddr`: inodes live at meta_blkaddr * blocksize + nid * 32.
        public var metaBlockAddress: UInt32
        /// 44 `xattr_blkaddr`: shared xattrs at xattr_blkaddr * blocksize + id * 4.
        public var xattrBlockAddress: UInt32
        /// 48 `uuid[16]`.
        public var uuid: [UInt8]
        /// 64 `volume_name[16]`.
        public var volumeName: [UInt8]
        /// 80 `feature_incompat`.
        public var featureIncompat: IncompatibleFeatures
        /// 84 `available_compr_algs` (with COMPR_CFGS) or `lz4_max_distance` (without).
        public var availableAlgorithmsOrLZ4Distance: UInt16
        /// 86 `extra_devices`.
        public var extraDevices: UInt16
        /// 88 `devt_slotoff`.
        public var deviceSlotOffset: UInt16
        /// 90 `dirblkbits` (0 in all images this reader supports).
        public var directoryBlockBits: UInt8
        /// 91 `xattr_prefix_count`.
        public var xattrPrefixCount: UInt8
        /// 92 `xattr_prefix_start`.
        public var xattrPrefixStart: UInt32
        /// 96 `packed_nid`: the packed inode holding fragments (0 when none).
        public var packedNid: UInt64

        public init(_ c: ByteCursor) throws {
            magic = try c.u32le(at: 0)
            checksum = try c.u32le(at: 4)
            featureCompat = try c.u32le(at: 8)
            blockSizeBits = try c.u8(at: 12)
            extensionSlots = try c.u8(at: 13)
            rootNid = try c.u16le(at: 14)
            inodeCount = try c.u64le(at: 16)
            buildTime = try c.u64le(at: 24)
            buildTimeNanoseconds = try c.u32le(at: 32)
            blocks = try c.u32le(at: 36)
            metaBlockAddress = try c.u32le(at: 40)
            xattrBlockAddress = try c.u32le(at: 44)
            uuid = try c.array(at: 48, count: 16)
            volumeName = try c.array(at: 64, count: 16)
            featureIncompat = IncompatibleFeatures(rawValue: try c.u32le(at: 80))
            availableAlgorithmsOrLZ4Distance = try c.u16le(at: 84)
            extraDevices = try c.u16le(at: 86)
            deviceSlotOffset = try c.u16le(at: 88)
            directoryBlockBits = try c.u8(at: 90)
            xattrPrefixCount = try c.u8(at: 91)
            xattrPrefixStart = try c.u32le(at: 92)
            packedNid = try c.u64le(at: 96)
        }

        /// Bytes of the superblock proper (compression configurations follow it).
        public var size: Int { 128 + 16 * Int(extensionSlots) }
        public var blockSize: Int { 1 << Int(blockSizeBits) }
    }

    /// On-disk inode layouts (`EROFS_INODE_FLAT_PLAIN` ... `EROFS_INODE_CHUNK_BASED`).
    public enum DataLayout: UInt8, Sendable {
        case flatPlain = 0, compressedFull = 1, flatInline = 2, compressedCompact = 3, chunkBased = 4
    }
}
