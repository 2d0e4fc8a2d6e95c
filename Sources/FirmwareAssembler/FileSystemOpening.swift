import DiskImage
import FileSystemBtrfs
import FileSystemEROFS
import FileSystemExt4
import FileSystemF2FS
import FileSystemFAT
import FileSystemJFFS2
import FileSystemUBIFS
import FileSystemSquashFS
import FileSystems

/// The filesystem formats fwassemble reads, told apart by their magic numbers.
public enum FileSystemFormat: String, Sendable, Equatable, CaseIterable {
    case ext4, squashfs, erofs, vfat, btrfs, f2fs, jffs2, ubifs

    /// The filesystem in `source` by its magic number (`FileSystemKind.detect` over its first
    /// bytes): nil when there is none, or when it is one fwassemble does not read (`kind(of:)`
    /// names those).
    public static func detect(_ source: any ByteSource) throws -> FileSystemFormat? {
        try kind(of: source).flatMap(FileSystemFormat.init)
    }

    /// The reader format of a filesystem kind; nil for the kinds fwassemble does not read.
    public init?(_ kind: FileSystemKind) {
        self.init(rawValue: kind.rawValue)
    }

    /// Every filesystem the magic table knows, the one without a reader (xfs)
    /// included; nil when none matches.
    public static func kind(of source: any ByteSource) throws -> FileSystemKind? {
        let count = Int(min(source.size, UInt64(FileSystemKind.headSize)))
        guard count >= 512 else { return nil }
        return FileSystemKind.detect(try source.bytes(at: 0, count: count))
    }

    /// Opens the right reader for the filesystem in `source` (detected by magic).
    /// `name` is used in messages ("disk.img partition 3 (hassos-overlay)"). `replayJournal`: an
    /// ext3/ext4 filesystem that needs recovery is read with its journal replayed (in memory),
    /// as the kernel mounts it; false reads the on-disk state (`--no-replay`).
    /// `journalProgress` is called now and then during a replay (`name`, blocks done, in all).
    /// `btrfsDevices`: devices a multi-device btrfs may span (`--device`; `Disk.btrfsDevices`).
    public static func open(_ source: any ByteSource, name: String, replayJournal: Bool = true,
                            journalProgress: JournalReplayProgress? = nil, btrfsDevices: [BtrfsDevice] = []) throws -> any FileSystemReader {
        guard let kind = try kind(of: source) else {
            throw FWError(.unsupported, "no ext2/3/4, squashfs, EROFS, FAT, btrfs, f2fs, JFFS2 or UBIFS filesystem found (unknown magic)", disk: name)
        }
        guard let format = FileSystemFormat(kind) else {
            throw FWError(.unsupported, "holds \(kind.rawValue), which fwassemble does not read yet (README.md, \"What does not work yet\")", disk: name)
        }
        return try open(source, as: format, name: name, replayJournal: replayJournal, journalProgress: journalProgress,
                        btrfsDevices: btrfsDevices)
    }

    public static func open(_ source: any ByteSource, as format: FileSystemFormat, name: String,
                            replayJournal: Bool = true, journalProgress: JournalReplayProgress? = nil,
                            btrfsDevices: [BtrfsDevice] = []) throws -> any FileSystemReader {
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
        case .btrfs: return try BtrfsReader(source: source, name: name, devices: btrfsDevices, replayLog: replayJournal)
        case .f2fs: return try F2FSReader(source: source, name: name)
        case .jffs2: return try JFFS2Reader(source: source, name: name)
        case .ubifs: return try UBIFSReader(source: source, name: name, replayJournal: replayJournal)
        }
    }
}
