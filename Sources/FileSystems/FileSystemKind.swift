/// The filesystems fwassemble tells apart by their first bytes: the one table of superblock magic
/// numbers that the facade (which reader to open), the planner (OpenWrt's squashfs) and the
/// batch (is a decoded head a disk?) read. The raw values are libblkid's TYPE names, except that
/// ext2, ext3 and ext4 are all "ext4" (one reader reads the three).
public enum FileSystemKind: String, Sendable, CaseIterable {
    case ext4, squashfs, erofs, vfat, btrfs, f2fs, jffs2, ubifs
    case xfs

    /// Superblock magics, in the order they are tried (the first match wins). FAT has no magic
    /// number and is recognised by its boot sector (`isFATBootSector`) after the formats
    /// fwassemble reads and before the others.
    public static let table: [(kind: FileSystemKind, offset: Int, bytes: [UInt8])] = [
        // squashfs 4.0 superblock at 0: s_magic "hsqs" (0x73717368 little-endian).
        (.squashfs, 0, Array("hsqs".utf8)),
        // EROFS superblock at 1024: magic 0xE0F5E1E2 little-endian at +0.
        (.erofs, 1024, [0xE2, 0xE1, 0xF5, 0xE0]),
        // ext2/3/4 superblock at 1024: s_magic 0xEF53 little-endian at +56.
        (.ext4, 1024 + 56, [0x53, 0xEF]),
        // F2FS superblock at 1024: magic 0xF2F52010 little-endian at +0.
        (.f2fs, 1024, [0x10, 0x20, 0xF5, 0xF2]),
        // XFS superblock at 0: sb_magicnum "XFSB" (0x58465342 big-endian).
        (.xfs, 0, Array("XFSB".utf8)),
        // btrfs superblock at 64 KiB: magic "_BHRfS_M" at +0x40.
        (.btrfs, 0x10040, Array("_BHRfS_M".utf8)),
        // UBIFS (inside a UBI volume): LEB 0 is the superblock node, common header magic
        // 0x06101831 little-endian at 0 and node_type UBIFS_SB_NODE (6) at 20.
        (.ubifs, 0, [0x31, 0x18, 0x10, 0x06]),
    ] + jffs2FirstNodes

    /// JFFS2 has no superblock: a filesystem starts with a node, magic 0x1985 then a node type,
    /// in either byte order. The first node of an erase block is a cleanmarker (0x2003) unless
    /// mkfs.jffs2 ran with -n, then a dirent (0xE001) or an inode (0xE002); padding (0x2004)
    /// also occurs. Four bytes, after every other magic (they are longer or at deeper offsets).
    static let jffs2FirstNodes: [(kind: FileSystemKind, offset: Int, bytes: [UInt8])] =
        [UInt16(0x2003), 0xE001, 0xE002, 0x2004].flatMap { type -> [(kind: FileSystemKind, offset: Int, bytes: [UInt8])] in
            let lo = UInt8(type & 0xFF), hi = UInt8(type >> 8)
            return [(.jffs2, 0, [0x85, 0x19, lo, hi]), (.jffs2, 0, [0x19, 0x85, hi, lo])]
        }

    /// How many bytes from the start of a filesystem `detect` needs to see every magic.
    public static let headSize = 0x10048

    /// Whether fwassemble has a reader for this kind (xfs is only recognised).
    public var isRead: Bool {
        switch self {
        case .ext4, .squashfs, .erofs, .vfat, .btrfs, .f2fs, .jffs2, .ubifs: true
        case .xfs: false
        }
    }

    /// Magics from this offset on (btrfs's at 64 KiB) lose to a FAT boot sector: mkfs.btrfs
    /// zeroes the start of its device, while mkfs.fat writes only the first sectors and leaves an
    /// older superblock further in, so a boot sector next to such a magic is the newer filesystem.
    static let fatOverridesFrom = 0x10000

    /// Where this kind's magic sits in the head.
    var magicOffset: Int { Self.table.first { $0.kind == self }?.offset ?? 0 }

    /// Whether `head` (the first bytes of a filesystem) holds this kind's superblock magic.
    public func hasMagic(in head: [UInt8]) -> Bool {
        Self.table.contains { $0.kind == self && Self.matches(head, $0.offset, $0.bytes) }
    }

    /// The filesystem whose magic `head` holds (the first bytes of a filesystem, `headSize` of
    /// them to see them all): the readable kinds by magic in the first 64 KiB, then a FAT boot
    /// sector, then btrfs and the kinds fwassemble only recognises. Nil when none matches (or
    /// `head` is shorter than a sector).
    public static func detect(_ head: [UInt8]) -> FileSystemKind? {
        guard head.count >= 512 else { return nil }
        if let kind = superblockMagic(in: head), kind.isRead, kind.magicOffset < fatOverridesFrom { return kind }
        if isFATBootSector(head) { return .vfat }
        return superblockMagic(in: head)
    }

    /// The first kind of `table` whose magic `head` holds (no FAT check): for heads that libblkid
    /// cannot probe (decoded bytes of a compressed file).
    public static func superblockMagic(in head: [UInt8]) -> FileSystemKind? {
        table.first { matches(head, $0.offset, $0.bytes) }?.kind
    }

    /// FAT boot sector: signature 0x55 0xAA at 510, a jump instruction at 0 (0xEB xx 0x90 or
    /// 0xE9), and a BIOS parameter block whose fields are in range: BPB_BytsPerSec (11, 2 bytes)
    /// a power of two 512-4096, BPB_SecPerClus (13) a power of two, BPB_RsvdSecCnt (14, 2 bytes)
    /// non-zero, BPB_NumFATs (16) 1 or 2, and a total sector count (BPB_TotSec16 at 19 or
    /// BPB_TotSec32 at 32) that is not zero.
    public static func isFATBootSector(_ head: [UInt8]) -> Bool {
        guard head.count >= 512, head[510] == 0x55, head[511] == 0xAA else { return false }
        func u16(_ at: Int) -> UInt16 { UInt16(head[at]) | UInt16(head[at + 1]) << 8 }
        func u32(_ at: Int) -> UInt32 { UInt32(u16(at)) | UInt32(u16(at + 2)) << 16 }
        guard head[0] == 0xE9 || (head[0] == 0xEB && head[2] == 0x90) else { return false }
        guard [512, 1024, 2048, 4096].contains(u16(11)) else { return false }
        let perCluster = head[13]
        guard perCluster != 0, perCluster & (perCluster - 1) == 0 else { return false }
        guard u16(14) != 0, head[16] == 1 || head[16] == 2 else { return false }
        return u16(19) != 0 || u32(32) != 0
    }

    private static func matches(_ head: [UInt8], _ offset: Int, _ bytes: [UInt8]) -> Bool {
        head.count >= offset + bytes.count && head[offset..<(offset + bytes.count)].elementsEqual(bytes)
    }
}
