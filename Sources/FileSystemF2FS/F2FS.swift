import DiskImage

/// F2FS (Flash-Friendly File System) on-disk structures, as Linux `include/linux/f2fs_fs.h`
/// defines them for 4 KiB blocks. All fields are little-endian.
public enum F2FS {
    /// `F2FS_SUPER_MAGIC`; also the seed of every f2fs CRC.
    public static let magic: UInt32 = 0xF2F5_2010
    /// `F2FS_SUPER_OFFSET`: each of the two superblock copies starts 1024 bytes into its block
    /// (blocks 0 and 1).
    static let superBlockOffset: UInt64 = 1024
    /// The only block size this reader handles (`F2FS_BLKSIZE` with 4 KiB pages).
    public static let blockSize = 4096
    static let blockSizeBits: UInt64 = 12
    /// `log_blocks_per_seg` is always 9: 512 blocks (2 MiB) per segment.
    static let blocksPerSegment: UInt32 = 512

    /// `NULL_ADDR`, `NEW_ADDR`, `COMPRESS_ADDR`: block address markers.
    static let nullAddress: UInt32 = 0
    static let newAddress: UInt32 = 0xFFFF_FFFF
    static let compressAddress: UInt32 = 0xFFFF_FFFE

    /// `DEF_ADDRS_PER_INODE`: (4096 - 360 - 20 - 24) / 4 block addresses in an inode.
    static let addressesPerInode = 923
    /// `DEF_ADDRS_PER_BLOCK` and `NIDS_PER_BLOCK`: (4096 - 24) / 4 entries in a direct or
    /// indirect node.
    static let addressesPerBlock = 1018
    static let nidsPerBlock = 1018
    /// Offset of `i_addr` in `struct f2fs_inode` (`OFFSET_OF_END_OF_I_EXT`).
    static let inodeAddressOffset = 360
    /// Offset of `i_nid[5]` in `struct f2fs_inode`.
    static let inodeNidOffset = 4052
    /// Offset of `struct node_footer` in a node block.
    static let footerOffset = 4072
    /// `F2FS_TOTAL_EXTRA_ATTR_SIZE`: the largest `i_extra_isize` (through `i_compress_flag`).
    static let maximumExtraSize = 36
    /// `DEFAULT_INLINE_XATTR_ADDRS`: 200 bytes of inline xattrs without flexible_inline_xattr.
    static let defaultInlineXattrAddresses = 50
    /// `MAX_INLINE_XATTR_SIZE` in 4-byte words.
    static let maximumInlineXattrAddresses = 923 - 36 / 4 - 1 - 40 / 4

    /// `NAT_ENTRY_PER_BLOCK`: 4096 / 9.
    static let natEntriesPerBlock = 455
    static let natEntrySize = 9
    /// `SUM_ENTRY_SIZE`, `SUM_JOURNAL_SIZE`: a summary block's 512 seven-byte entries, then its
    /// journal (`n_nats` and 38 thirteen-byte `nat_journal_entry` records), then a 5-byte footer.
    static let summaryEntriesSize = 3584
    static let summaryJournalSize = 507
    static let natJournalEntries = 38

    /// `NR_DENTRY_IN_BLOCK` and the layout of `struct f2fs_dentry_block`: a 27-byte bitmap,
    /// 3 reserved bytes, 214 eleven-byte entries, 214 eight-byte name slots.
    static let dentriesPerBlock = 214
    static let dentryBitmapSize = 27
    static let dentryOffset = 30
    static let dentryNameOffset = 30 + 214 * 11
    static let dentrySize = 11
    static let nameSlotSize = 8
    static let maximumNameLength = 255

    /// The CRC f2fs stores everywhere (`f2fs_crc32`/`f2fs_chksum`): reflected CRC-32 without the
    /// final inversion, seeded by the caller (the magic number for superblock and checkpoint).
    static func crc(_ bytes: some Sequence<UInt8>, seed: UInt32 = magic) -> UInt32 {
        ~CRC32.checksum(bytes, seed: ~seed)
    }

    /// Superblock features (`F2FS_FEATURE_*`).
    public struct Features: OptionSet, Sendable, CustomStringConvertible {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let encrypt = Features(rawValue: 0x0001)
        public static let blockZoned = Features(rawValue: 0x0002)
        public static let atomicWrite = Features(rawValue: 0x0004)
        public static let extraAttributes = Features(rawValue: 0x0008)
        public static let projectQuota = Features(rawValue: 0x0010)
        public static let inodeChecksum = Features(rawValue: 0x0020)
        public static let flexibleInlineXattr = Features(rawValue: 0x0040)
        public static let quotaInode = Features(rawValue: 0x0080)
        public static let inodeCreationTime = Features(rawValue: 0x0100)
        public static let lostAndFound = Features(rawValue: 0x0200)
        public static let verity = Features(rawValue: 0x0400)
        public static let superBlockChecksum = Features(rawValue: 0x0800)
        public static let casefold = Features(rawValue: 0x1000)
        public static let compression = Features(rawValue: 0x2000)
        public static let readOnly = Features(rawValue: 0x4000)
        public static let deviceAlias = Features(rawValue: 0x8000)

        static let names: [(Features, String)] = [
            (.encrypt, "encrypt"), (.blockZoned, "blkzoned"), (.atomicWrite, "atomic_write"), (.extraAttributes, "extra_attr"),
            (.projectQuota, "project_quota"), (.inodeChecksum, "inode_checksum"), (.flexibleInlineXattr, "flexible_inline_xattr"),
            (.quotaInode, "quota_ino"), (.inodeCreationTime, "inode_crtime"), (.lostAndFound, "lost_found"), (.verity, "verity"),
            (.superBlockChecksum, "sb_checksum"), (.casefold, "casefold"), (.compression, "compression"), (.readOnly, "ro"),
            (.deviceAlias, "device_alias"),
        ]

        /// mkfs.f2fs's names, comma-separated ("extra_attr,inode_checksum,sb_checksum").
        public var description: String {
            var parts = Self.names.filter { contains($0.0) }.map(\.1)
            let known = Self.names.reduce(UInt32(0)) { $0 | $1.0.rawValue }
            if rawValue & ~known != 0 { parts.append("0x" + String(rawValue & ~known, radix: 16)) }
            return parts.joined(separator: ",")
        }
    }

    /// Compression algorithms (`COMPRESS_LZO` ... `COMPRESS_LZORLE`, `i_compress_algorithm`).
    public enum Algorithm: UInt8, Sendable {
        case lzo = 0, lz4 = 1, zstd = 2, lzoRLE = 3
    }

    /// Inode flags (`F2FS_*_FL` in `i_flags`) the reader acts on.
    enum InodeFlag {
        static let compressed: UInt32 = 0x0000_0004
        static let encrypted: UInt32 = 0x0000_0800
        static let casefold: UInt32 = 0x4000_0000
    }

    /// `i_inline` flags.
    enum InlineFlag {
        static let xattr: UInt8 = 0x01
        static let data: UInt8 = 0x02
        static let dentry: UInt8 = 0x04
        static let dataExists: UInt8 = 0x08
        static let extraAttributes: UInt8 = 0x20
    }

    /// Checkpoint flags (`CP_*_FLAG` in `ckpt_flags`).
    enum CheckpointFlag {
        static let unmount: UInt32 = 0x0001
        static let compactSummary: UInt32 = 0x0004
        static let fastboot: UInt32 = 0x0020
        static let largeNATBitmap: UInt32 = 0x0400
    }
}
