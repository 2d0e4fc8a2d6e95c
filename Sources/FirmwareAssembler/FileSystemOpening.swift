import DiskImage
import FileSystemEROFS
import FileSystemExt4
import FileSystemFAT
import FileSystemSquashFS
import FileSystems

/// The filesystem formats fwassemble reads, told apart by their magic numbers.
public enum FileSystemFormat: String, Sendable, Equatable, CaseIterable {
    case ext4, squashfs, erofs, vfat

    /// Looks at the first 4 KiB of `source`: squashfs "hsqs" at 0, EROFS 0xE0F5E1E2 at 1024,
    /// ext2/3/4 0xEF53 at 1080, FAT boot sector (0x55AA at 510 and a sane BIOS parameter block).
    /// Nil when none matches.
    public static func detect(_ source: any ByteSource) throws -> FileSystemFormat? {
        let count = Int(min(source.size, 4096))
        guard count >= 512 else { return nil }
        let head = ByteCursor(try source.bytes(at: 0, count: count), context: "filesystem superblock probe")
        // squashfs 4.0 superblock: s_magic[4] at 0 "hsqs" (little-endian 0x73717368).
        if try head.u32le(at: 0) == 0x7371_7368 { return .squashfs }
        // EROFS superblock at 1024: magic[4] at +0, 0xE0F5E1E2 little-endian.
        if count >= 1028, try head.u32le(at: 1024) == 0xE0F5_E1E2 { return .erofs }
        // ext2/3/4 superblock at 1024: s_magic[2] at +56, 0xEF53 little-endian.
        if count >= 1082, try head.u16le(at: 1080) == 0xEF53 { return .ext4 }
        if try isFATBootSector(head) { return .vfat }
        return nil
    }

    /// FAT boot sector: signature 0x55 0xAA at 510, a jump instruction at 0 (0xEB xx 0x90 or
    /// 0xE9), and a BIOS parameter block whose fields are in range: BPB_BytsPerSec (11, 2 bytes)
    /// a power of two 512-4096, BPB_SecPerClus (13) a power of two, BPB_RsvdSecCnt (14, 2 bytes)
    /// non-zero, BPB_NumFATs (16) 1 or 2, and a total sector count (BPB_TotSec16 at 19 or
    /// BPB_TotSec32 at 32) that is not zero.
    static func isFATBootSector(_ c: ByteCursor) throws -> Bool {
        guard try c.u8(at: 510) == 0x55, try c.u8(at: 511) == 0xAA else { return false }
        let jump = try c.u8(at: 0)
        let nop = try c.u8(at: 2)
        guard jump == 0xE9 || (jump == 0xEB && nop == 0x90) else { return false }
        let bytesPerSector = try c.u16le(at: 11)
        guard [512, 1024, 2048, 4096].contains(bytesPerSector) else { return false }
        let perCluster = try c.u8(at: 13)
        guard perCluster != 0, perCluster & (perCluster - 1) == 0 else { return false }
        guard try c.u16le(at: 14) != 0 else { return false }
        let fats = try c.u8(at: 16)
        guard fats == 1 || fats == 2 else { return false }
        let total16 = try c.u16le(at: 19)
        let total32 = try c.u32le(at: 32)
        return total16 != 0 || total32 != 0
    }

    /// Opens the right reader for the filesystem in `source` (detected by magic).
    /// `name` is used in messages ("disk.img partition 3 (hassos-overlay)"). `replayJournal`: an
    /// ext3/ext4 filesystem that needs recovery is read with its journal replayed (in memory),
    /// as the kernel mounts it; false reads the on-disk state (`--no-replay`).
    /// `journalProgress` is called now and then during a replay (`name`, blocks done, in all).
    public static func open(_ source: any ByteSource, name: String, replayJournal: Bool = true,
                            journalProgress: JournalReplayProgress? = nil) throws -> any FileSystemReader {
        guard let format = try detect(source) else {
            throw FWError(.unsupported, "no ext2/3/4, squashfs, EROFS or FAT filesystem found (unknown magic)", disk: name)
        }
        return try open(source, as: format, name: name, replayJournal: replayJournal, journalProgress: journalProgress)
    }

    public static func open(_ source: any ByteSource, as format: FileSystemFormat, name: String,
                            replayJournal: Bool = true, journalProgress: JournalReplayProgress? = nil) throws -> any FileSystemReader {
        switch format {
        case .ext4:
            var progress: JournalProgress? = nil
            if let journalProgress {
                progress = { @Sendable done, total in journalProgress(name, done, total) }
            }
            return try Ext4Reader(source: source, name: name, replayJournal: replayJournal, journalProgress: progress)
        case .squashfs: return try SquashFSReader(source: source, name: name)
        case .erofs: return try EROFSReader(source: source, name: name)
        case .vfat: return try FATReader(source: source, name: name)
        }
    }
}
