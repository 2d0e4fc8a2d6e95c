import DiskImage
import FileSystems

extension F2FS {
    /// An inode node block (`struct f2fs_inode` followed by `struct node_footer`), decoded, with
    /// the block kept for its address table, inline data, inline dentries and inline xattrs.
    public struct Inode: Sendable, InodeRecord {
        /// The node id (= inode number).
        public var nid: UInt32
        /// 0 `i_mode`, 3 `i_inline`, 4 `i_uid`, 8 `i_gid`, 12 `i_links`, 16 `i_size`.
        public var mode: UInt16
        public var inline: UInt8
        public var uid: UInt32
        public var gid: UInt32
        public var links: UInt32
        public var size: UInt64
        /// 24 `i_blocks`: 512-byte sectors allocated (a sparse file has fewer than its size).
        public var blocks: UInt64
        /// 32 `i_atime`, 40 `i_ctime`, 48 `i_mtime` with 56/60/64 `i_*time_nsec`.
        public var atime: Timestamp
        public var ctime: Timestamp
        public var mtime: Timestamp
        /// 68 `i_generation` (part of the inode checksum).
        public var generation: UInt32
        /// 72 `i_current_depth` (directories).
        public var currentDepth: UInt32
        /// 76 `i_xattr_nid`: the node holding xattrs that do not fit inline (0 when none).
        public var xattrNid: UInt32
        /// 80 `i_flags` (`F2FS_*_FL`).
        public var flags: UInt32
        /// 347 `i_dir_level`.
        public var directoryLevel: UInt8
        /// 360 `i_extra_isize` in bytes (0 without `F2FS_EXTRA_ATTR`).
        public var extraSize: Int
        /// Inline xattr space in 4-byte words (`get_inline_xattr_addrs`).
        public var inlineXattrWords: Int
        /// 364 `i_projid`, 372 `i_crtime` + 380 `i_crtime_nsec` (when `i_extra_isize` covers them).
        public var projectID: UInt32?
        public var creationTime: Timestamp?
        /// 392 `i_compress_algorithm`, 393 `i_log_cluster_size` (compressed files).
        public var compressionAlgorithm: UInt8
        public var logClusterSize: UInt8
        /// 4052 `i_nid[5]`: two direct, two indirect, one double-indirect node.
        public var nids: [UInt32]
        /// The whole node block.
        let block: [UInt8]

        /// Decodes `block`, the node block of `nid`, with the checks of Linux's
        /// `sanity_check_inode` that matter for reading.
        init(nid: UInt32, block: [UInt8], features: Features) throws {
            let c = ByteCursor(block, context: "f2fs inode \(nid)")
            self.nid = nid
            self.block = block
            mode = try c.u16le(at: 0)
            inline = try c.u8(at: 3)
            uid = try c.u32le(at: 4)
            gid = try c.u32le(at: 8)
            links = try c.u32le(at: 12)
            size = try c.u64le(at: 16)
            blocks = try c.u64le(at: 24)
            atime = try Self.time(c, 32, 56)
            ctime = try Self.time(c, 40, 60)
            mtime = try Self.time(c, 48, 64)
            generation = try c.u32le(at: 68)
            currentDepth = try c.u32le(at: 72)
            xattrNid = try c.u32le(at: 76)
            flags = try c.u32le(at: 80)
            directoryLevel = try c.u8(at: 347)
            nids = try (0..<5).map { try c.u32le(at: F2FS.inodeNidOffset + 4 * $0) }
            extraSize = 0
            inlineXattrWords = 0
            compressionAlgorithm = 0
            logClusterSize = 0
            if inline & InlineFlag.extraAttributes != 0 {
                extraSize = Int(try c.u16le(at: 360))
                guard extraSize % 4 == 0, extraSize <= F2FS.maximumExtraSize, extraSize >= 4 else {
                    throw FWError.corrupt("f2fs inode \(nid): extra attribute size \(extraSize) is invalid")
                }
                if extraSize >= 8 { projectID = try c.u32le(at: 364) }
                if extraSize >= 24 { creationTime = try Self.time(c, 372, 380) }
                if extraSize >= 36 {
                    compressionAlgorithm = try c.u8(at: 392)
                    logClusterSize = try c.u8(at: 393)
                }
            } else if features.contains(.extraAttributes) {
                throw FWError.corrupt("f2fs inode \(nid) has no extra attributes although the filesystem has extra_attr")
            }
            if features.contains(.flexibleInlineXattr) {
                guard extraSize >= 4 else {
                    throw FWError.corrupt("f2fs inode \(nid) has no inline xattr size although the filesystem has flexible_inline_xattr")
                }
                inlineXattrWords = Int(try c.u16le(at: 362))
                guard inlineXattrWords <= F2FS.maximumInlineXattrAddresses else {
                    throw FWError.corrupt("f2fs inode \(nid): inline xattr size of \(inlineXattrWords) words is too large")
                }
            } else if inline & (InlineFlag.xattr | InlineFlag.dentry) != 0 {
                inlineXattrWords = F2FS.defaultInlineXattrAddresses
            }
            if isCompressed {
                guard extraSize >= 36, (2...8).contains(logClusterSize) else {
                    throw FWError.corrupt("f2fs inode \(nid): compressed with a cluster of 2^\(logClusterSize) blocks")
                }
            }
        }

        private static func time(_ c: ByteCursor, _ seconds: Int, _ nanoseconds: Int) throws -> Timestamp {
            let ns = try c.u32le(at: nanoseconds)
            return Timestamp(seconds: Int64(bitPattern: try c.u64le(at: seconds)), nanoseconds: ns < 1_000_000_000 ? ns : 0)
        }

        public var posixMode: UInt32 { UInt32(mode) }
        public var isCompressed: Bool { flags & InodeFlag.compressed != 0 && fileType == .regular }
        public var isEncrypted: Bool { flags & InodeFlag.encrypted != 0 }
        public var isCasefolded: Bool { flags & InodeFlag.casefold != 0 }
        /// The file's data lives in the inode (`F2FS_INLINE_DATA`).
        public var usesInlineData: Bool { inline & InlineFlag.data != 0 }
        /// The directory's entries live in the inode (`F2FS_INLINE_DENTRY`).
        public var usesInlineDentries: Bool { inline & InlineFlag.dentry != 0 }
        var clusterBlocks: Int { 1 << Int(logClusterSize) }

        /// Where `i_addr` starts for data (`get_dnode_addr`: after the extra attributes).
        var addressOffset: Int { F2FS.inodeAddressOffset + extraSize }
        /// `addrs_per_inode`: the addresses left after extra attributes and inline xattrs,
        /// rounded down to whole clusters for compressed files.
        var addressCount: Int {
            let n = F2FS.addressesPerInode - extraSize / 4 - inlineXattrWords
            return isCompressed ? n / clusterBlocks * clusterBlocks : n
        }
        /// `addrs_per_block`.
        var addressesPerBlock: Int {
            isCompressed ? F2FS.addressesPerBlock / clusterBlocks * clusterBlocks : F2FS.addressesPerBlock
        }
        /// `inline_data_addr` and `MAX_INLINE_DATA`: inline data and dentries start one word
        /// into the address table.
        var inlineOffset: Int { addressOffset + 4 }
        var inlineCapacity: Int { 4 * (F2FS.addressesPerInode - extraSize / 4 - inlineXattrWords - 1) }
        /// The inline xattr area (`inline_xattr_addr`): the last words of `i_addr`.
        var inlineXattrRange: Range<Int> {
            let start = F2FS.inodeAddressOffset + 4 * (F2FS.addressesPerInode - inlineXattrWords)
            return start..<(start + 4 * inlineXattrWords)
        }

        /// `i_addr[index]` (data part).
        func address(_ index: Int) throws -> UInt32 {
            try ByteCursor(block, context: "f2fs inode \(nid)").u32le(at: addressOffset + 4 * index)
        }

        /// The device number of a character or block device (`__get_inode_rdev`): the old
        /// 16-bit encoding in `i_addr[0]` when it is not zero, else the new one in `i_addr[1]`.
        func deviceNumber() throws -> DeviceNumber {
            let old = try address(0)
            if old != 0 { return DeviceNumber(major: (old >> 8) & 0xFF, minor: old & 0xFF) }
            return DeviceNumber(linux: UInt64(try address(1)))
        }

        /// The inode checksum (`f2fs_inode_chksum`): seeded by the CRC of the uuid, then the
        /// footer's ino and `i_generation`, over the block with the checksum field as zeros.
        func checksum(seed: UInt32) -> UInt32 {
            var crc = F2FS.crc(block[(F2FS.footerOffset + 4)..<(F2FS.footerOffset + 8)], seed: seed)
            crc = F2FS.crc(block[68..<72], seed: crc)
            crc = F2FS.crc(block[0..<368], seed: crc)
            crc = F2FS.crc([0, 0, 0, 0], seed: crc)
            return F2FS.crc(block[372..<F2FS.blockSize], seed: crc)
        }

        func checksumIsValid(seed: UInt32) throws -> Bool {
            try ByteCursor(block, context: "f2fs inode \(nid)").u32le(at: 368) == checksum(seed: seed)
        }
    }
}
