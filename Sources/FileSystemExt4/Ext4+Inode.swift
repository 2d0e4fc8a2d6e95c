import DiskImage
import FileSystems

/// The ext2/3/4 on-disk inode (`struct ext2_inode_large`), decoded field by field from the bytes
/// libext2fs hands back (`ext2fs_read_inode_full`, which has already checked the inode checksum).
/// Offsets are those of the kernel's `struct ext4_inode`; all fields little-endian.
struct Ext4Inode: Sendable {
    /// i_mode (0x00): file type and permission bits.
    var mode: UInt16
    /// i_uid (0x02) | l_i_uid_high (0x78) << 16.
    var uid: UInt32
    /// i_size_lo (0x04) and i_size_high (0x6C).
    var sizeLow: UInt32
    var sizeHigh: UInt32
    /// i_atime (0x08), i_ctime (0x0C), i_mtime (0x10): seconds, signed 32-bit.
    var atime: UInt32
    var ctime: UInt32
    var mtime: UInt32
    /// i_gid (0x18) | l_i_gid_high (0x7A) << 16.
    var gid: UInt32
    /// i_links_count (0x1A).
    var linksCount: UInt16
    /// i_blocks_lo (0x1C) | l_i_blocks_high (0x74) << 32, in 512-byte units (or filesystem
    /// blocks with EXT4_HUGE_FILE_FL).
    var blocks: UInt64
    /// i_flags (0x20).
    var flags: UInt32
    /// i_block (0x28, 60 bytes): block map, extent tree root, fast symlink target or device.
    var block: [UInt8]
    /// i_file_acl_lo (0x68) | l_i_file_acl_high (0x76) << 32: external xattr block.
    var fileACL: UInt64
    /// i_extra_isize (0x80): bytes used past the 128-byte base inode (0 for 128-byte inodes).
    var extraSize: UInt16
    /// i_ctime_extra (0x84), i_mtime_extra (0x88), i_atime_extra (0x8C): epoch bits (low 2)
    /// and nanoseconds (high 30), when `extraSize` covers them.
    var ctimeExtra: UInt32?
    var mtimeExtra: UInt32?
    var atimeExtra: UInt32?
    /// An in-inode xattr area starts with this magic right after the extra fields.
    var hasInodeXattrs: Bool

    static let baseSize = 128
    static let inlineDataFlag: UInt32 = 0x1000_0000   // EXT4_INLINE_DATA_FL
    static let hugeFileFlag: UInt32 = 0x0004_0000     // EXT4_HUGE_FILE_FL
    static let extentsFlag: UInt32 = 0x0008_0000      // EXT4_EXTENTS_FL
    static let xattrMagic: UInt32 = 0xEA02_0000       // EXT2_EXT_ATTR_MAGIC

    /// Decodes an inode of `bytes.count` bytes (128 or the superblock's s_inode_size).
    /// `highIDs`: whether l_i_uid_high/l_i_gid_high/l_i_blocks_high hold ids (false on Hurd).
    init(_ bytes: [UInt8], highIDs: Bool) throws {
        let c = ByteCursor(bytes, context: "ext4 inode")
        mode = try c.u16le(at: 0x00)
        let uidLow = try c.u16le(at: 0x02)
        sizeLow = try c.u32le(at: 0x04)
        atime = try c.u32le(at: 0x08)
        ctime = try c.u32le(at: 0x0C)
        mtime = try c.u32le(at: 0x10)
        let gidLow = try c.u16le(at: 0x18)
        linksCount = try c.u16le(at: 0x1A)
        let blocksLow = try c.u32le(at: 0x1C)
        flags = try c.u32le(at: 0x20)
        block = try c.array(at: 0x28, count: 60)
        let aclLow = try c.u32le(at: 0x68)
        sizeHigh = try c.u32le(at: 0x6C)
        let blocksHigh = highIDs ? try c.u16le(at: 0x74) : 0
        let aclHigh = highIDs ? try c.u16le(at: 0x76) : 0
        let uidHigh = highIDs ? try c.u16le(at: 0x78) : 0
        let gidHigh = highIDs ? try c.u16le(at: 0x7A) : 0
        uid = UInt32(uidLow) | UInt32(uidHigh) << 16
        gid = UInt32(gidLow) | UInt32(gidHigh) << 16
        blocks = UInt64(blocksLow) | UInt64(blocksHigh) << 32
        fileACL = UInt64(aclLow) | UInt64(aclHigh) << 32

        extraSize = 0
        hasInodeXattrs = false
        if bytes.count > Self.baseSize {
            extraSize = try c.u16le(at: 0x80)
            // The extra fields end at 128 + i_extra_isize, which must fit the inode (and is a
            // multiple of 4); beyond it, the in-inode xattr area.
            let end = Self.baseSize + Int(extraSize)
            guard end <= bytes.count, extraSize % 4 == 0 else {
                throw FWError.corrupt("ext4 inode: i_extra_isize \(extraSize) does not fit a \(bytes.count)-byte inode")
            }
            func extra(_ offset: Int) throws -> UInt32? { offset + 4 <= end ? try c.u32le(at: offset) : nil }
            ctimeExtra = try extra(0x84)
            mtimeExtra = try extra(0x88)
            atimeExtra = try extra(0x8C)
            if end + 4 <= bytes.count {
                hasInodeXattrs = try c.u32le(at: end) == Self.xattrMagic
            }
        }
    }

    var fileType: FileType? { Metadata.fileType(mode: UInt32(mode)) }
    var permissions: UInt16 { mode & 0o7777 }
    var hasInlineData: Bool { flags & Self.inlineDataFlag != 0 }

    /// The size as the kernel reads it (`ext4_isize`): the high half counts for regular files, and
    /// for directories only with the largedir feature (it was i_dir_acl before).
    func size(largeDirectories: Bool) -> UInt64 {
        if fileType == .regular || largeDirectories {
            return UInt64(sizeLow) | UInt64(sizeHigh) << 32
        }
        return UInt64(sizeLow)
    }

    /// A timestamp from its seconds field and optional extra field: seconds are signed 32-bit,
    /// extended by the two epoch bits; nanoseconds are the upper 30 bits.
    static func timestamp(_ seconds: UInt32, extra: UInt32?) -> Timestamp {
        var s = Int64(Int32(bitPattern: seconds))
        var ns: UInt32 = 0
        if let extra {
            s += Int64(extra & 3) << 32
            ns = extra >> 2
            if ns > 999_999_999 { ns = 0 }   // out of range: keep the seconds, drop the fraction
        }
        return Timestamp(seconds: s, nanoseconds: ns)
    }

    /// Device numbers in i_block: the old 16-bit encoding in i_block[0] when non-zero, else
    /// the new 32-bit encoding (`new_encode_dev`) in i_block[1].
    func device() throws -> DeviceNumber {
        let c = ByteCursor(block, context: "ext4 device inode i_block")
        let old = try c.u32le(at: 0)
        if old != 0 {
            return DeviceNumber(major: (old >> 8) & 0xFF, minor: old & 0xFF)
        }
        let new = try c.u32le(at: 4)
        return DeviceNumber(major: (new & 0xF_FF00) >> 8, minor: (new & 0xFF) | ((new >> 12) & 0xF_FF00))
    }

    /// Whether a symlink keeps its target in i_block, as the kernel decides it
    /// (`ext4_inode_is_fast_symlink`): on a filesystem with the ea_inode feature by its size alone
    /// (1...59 bytes: the xattr block and EA inodes make i_blocks useless there); otherwise when
    /// it has no data blocks besides an xattr block, and no inline data.
    func isFastSymlink(blockSize: Int, clusterRatioBits: Int, eaInodeFeature: Bool) -> Bool {
        if eaInodeFeature {
            let size = self.size(largeDirectories: false)
            return size > 0 && size < 60
        }
        if hasInlineData { return false }
        let sectorsPerBlock = UInt64(blockSize / 512)
        let used = flags & Self.hugeFileFlag != 0 ? blocks.multipliedReportingOverflow(by: sectorsPerBlock).partialValue : blocks
        let eaSectors: UInt64 = fileACL != 0 ? sectorsPerBlock << UInt64(clusterRatioBits) : 0
        return used == eaSectors
    }
}
