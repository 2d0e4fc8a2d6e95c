import DiskImage
import FileSystemBtrfs
import DiskFormats
import FileSystemF2FS
import FileSystems
import FileSystemUBIFS
import PartitionTable
import Synchronization

/// A raw firmware disk image: the one entry point the CLI (and later the C ABI) calls.
///
/// Opening reads nothing but the file's size; each operation reads what it needs with pread.
public final class Disk: Sendable {
    /// The image path as given by the user (used in every message).
    public let path: String
    /// The virtual disk: the raw file, or what a container (qcow2, VMDK, VHDX, VHD, VDI, and
    /// xz/gzip/zstd/zip/OVA wrappers, detected by content) holds.
    let source: any ByteSource
    /// Every file the disk reads (the image, qcow2 backing files, VMDK extents): no output may
    /// replace one of them.
    public let inputFiles: [String]
    /// Stops the job running on this disk from another thread (the C ABI's `fwa_cancel`): the
    /// edges that take it pass it as `JobHooks.cancellation`.
    public let cancellation = Cancellation()
    /// The partition table, parsed once (`table()`).
    private let parsedTable = Mutex<PartitionTable?>(nil)
    /// The UBI image of a raw flash dump, attached once (`ubiImage()`).
    private let attachedUBI = Mutex<UBIImage?>(nil)

    /// Opens `path` read-only. Throws `FWError` naming the path if it is missing, a directory,
    /// or not a regular file or block device, or a container that cannot be read.
    /// `flashGeometry`: the NAND page and spare sizes of a raw flash dump that keeps its spare
    /// (OOB) bytes (`--flash-geometry`); nil detects them.
    /// `devices`: other devices of a multi-device filesystem (`--device`: btrfs RAID members,
    /// whole files or partitioned disks), opened with the same options.
    public init(path: String, options: DiskImageOptions = DiskImageOptions(), flashGeometry: FlashGeometry? = nil,
                devices: [String] = []) throws {
        self.path = path
        self.flashGeometry = flashGeometry
        let (source, files) = try openDiskImageFiles(path: path, options: options)
        self.source = source
        memberDevices = devices.isEmpty ? nil : try MemberDevices(paths: devices, options: options)
        inputFiles = files + (memberDevices?.inputFiles ?? [])
    }

    /// The other devices given (`--device`), nil when none.
    let memberDevices: MemberDevices?
    /// Which of them the btrfs readers opened so far took (`openReader`, `deviceWarnings()`).
    let deviceUse = Mutex(DeviceUse())

    /// The NAND page and spare sizes given for a raw flash dump (nil: detected).
    public let flashGeometry: FlashGeometry?

    /// Opens `path` with a qcow2 backing-file folder (`--backing-dir`) and internal snapshot
    /// (`--snapshot`, name or ID; nil reads the active state). `decompressionProgress` is called
    /// while a compressed image (.xz, .gz, .zst, .zip) is decompressed: bytes so far, total if known.
    public convenience init(path: String, backingDirectory: String?, snapshot: String?, flashGeometry: FlashGeometry? = nil,
                            devices: [String] = [],
                            decompressionProgress: (@Sendable (_ done: UInt64, _ total: UInt64?) -> Void)? = nil) throws {
        var options = DiskImageOptions(backingDirectory: backingDirectory, snapshot: snapshot)
        options.progress = decompressionProgress
        try self.init(path: path, options: options, flashGeometry: flashGeometry, devices: devices)
    }

    /// The container format: "raw", "qcow2", "vmdk", "vhdx", "vpc", "vdi", or a wrapper chain
    /// such as "xz+qcow2".
    public var format: String { diskImageFormat(of: source) }

    /// libblkid probes the image file itself when it is raw (exactly as before); for any other
    /// format it probes a sparse in-memory copy of the first 8 MiB and last 1 MiB of the disk
    /// and of each partition, at the same offsets.
    func makeProber() throws -> FilesystemProber {
        guard format != "raw" else { return try FilesystemProber(path: path) }
        var ranges: [(offset: UInt64, length: UInt64)] = [(0, 8 << 20), (source.size >= 1 << 20 ? source.size - (1 << 20) : 0, 1 << 20)]
        if let table = try? table() {  // no table: the whole-disk ranges above are probed
            for p in table.partitions where p.withinImage && p.sectorCount > 0 {
                ranges.append((p.start, min(p.size, 8 << 20)))
                if p.size > 1 << 20 { ranges.append((p.start + p.size - (1 << 20), 1 << 20)) }
            }
        }
        let copy = try ProbeCopy(of: source, ranges: ranges)
        return try withExtendedLifetime(copy) { try FilesystemProber(path: copy.path) }
    }

    /// The partition table as read from the disk (MBR/EBR, GPT, hybrid, or none), parsed on first
    /// use and kept: every operation and every partition opened reads it from here.
    func table() throws -> PartitionTable {
        if let table = parsedTable.withLock({ $0 }) { return table }
        var table = try PartitionTable.read(from: source, flashGeometry: flashGeometry)
        if table.kind == .none, let (offset, ubi) = try ubiAfterStart() {
            table = ubi.partitionTable()
            table.warnings.insert("UBI starts at byte \(offset) of the dump (the MTD partitions before it are not read)", at: 0)
            attachedUBI.withLock { $0 = ubi }
        }
        parsedTable.withLock { $0 = table }
        return table
    }

    /// Whole-chip NAND dumps: with no partition table and no filesystem magic at byte 0 (a
    /// bootloader there), the first EC header at a 64 KiB boundary of the first 4 GiB starts
    /// UBI (the MTD partition that holds it). Nil when there is none.
    private func ubiAfterStart() throws -> (UInt64, UBIImage)? {
        guard try FileSystemFormat.kind(of: source) == nil, !UBI.hasECHeader(try source.bytes(at: 0, count: min(64, Int(source.size)))) else {
            return nil
        }
        let step: UInt64 = 64 << 10
        var offset = step
        while offset + 64 <= min(source.size, 4 << 30) {
            try Task.checkCancellation()
            if UBI.hasECHeader(try source.bytes(at: offset, count: 64)) {
                let place = FWError.Place(disk: path, partition: "UBI at byte \(offset)")
                let rest = try source.slice(offset: offset, length: source.size - offset, place: place)
                if let ubi = try UBIImage.attach(rest, geometry: flashGeometry) { return (offset, ubi) }
            }
            offset += step
        }
        return nil
    }

    /// The UBI image a table of kind `.ubi` comes from, attached on first use and kept.
    func ubiImage() throws -> UBIImage {
        if let ubi = attachedUBI.withLock({ $0 }) { return ubi }
        guard let ubi = try UBIImage.attach(source, geometry: flashGeometry) else {
            throw FWError(.corrupt, "no UBI erase-counter header at byte 0", disk: path)
        }
        attachedUBI.withLock { $0 = ubi }
        return ubi
    }

    /// The bytes of a UBI volume (partition `index` = volume id + 1), as a source of its own.
    func ubiVolume(_ p: Partition) throws -> (source: any ByteSource, description: String) {
        let place = FWError.Place(disk: path, partition: "UBI volume \(p.index - 1)" + (p.name.map { " (\($0))" } ?? ""))
        return (try ubiImage().volume(p.index - 1, place: place), place.description)
    }

    /// The image size in bytes.
    public var size: UInt64 { source.size }

    /// The partition table as parsed (for the facade's other operations). A disk with no table
    /// but a filesystem at offset 0 gets one whole-disk partition 1 (kind `.none`).
    func partitionTable(prober: FilesystemProber) throws -> (table: PartitionTable, wholeDisk: FilesystemSignature?) {
        var table = try table()
        guard table.kind == .none else { return (table, nil) }
        let signature: FilesystemSignature?
        do {
            signature = try probe(prober, offset: 0, size: source.size)
        } catch let error as FWError {
            throw error.within(disk: path)
        }
        guard let signature else {
            throw FWError(.unsupported, "no partition table (MBR or GPT) and no filesystem signature found", disk: path)
        }
        table.partitions = [Partition(index: 1, firstSector: 0, sectorCount: source.size / 512, sectorSize: 512,
                                      type: "none", typeName: "whole disk")]
        if source.size % 512 != 0 {
            table.warnings.append("the image size (\(source.size) bytes) is not a multiple of 512; the whole-disk partition covers \(source.size / 512 * 512) bytes")
        }
        return (table, signature)
    }

    /// The filesystem signature of `size` bytes at `offset`: libblkid's, or for the filesystems
    /// libblkid has no prober for (JFFS2) the magic table's (`FileSystemKind`), as a signature
    /// with only a type.
    func probe(_ prober: FilesystemProber, offset: UInt64, size: UInt64) throws -> FilesystemSignature? {
        if let signature = try prober.probe(offset: offset, size: size) { return signature }
        guard size > 0 else { return nil }
        let slice = try source.slice(offset: offset, length: min(size, source.size - min(offset, source.size)))
        guard let kind = try FileSystemFormat.kind(of: slice), kind == .jffs2 else { return nil }
        return FilesystemSignature(type: kind.rawValue)
    }

    /// The ext3/ext4 superblock's RECOVER flag (s_feature_incompat at superblock offset 0x60, bit
    /// 0x4) for a filesystem libblkid called ext2/ext3/ext4 at `offset`; false for other types or
    /// when the superblock cannot be read (inspect reports, it does not fail on this).
    private func needsRecovery(at offset: UInt64, type: String?) -> Bool {
        // s_magic at 56 (0xEF53, little-endian), s_feature_incompat at 0x60.
        guard let type, type.hasPrefix("ext"),
              let sb = try? source.bytes(at: offset + 1024, count: 0x61),  // unreadable: reported as not needing it
              sb[56] == 0x53, sb[57] == 0xEF else { return false }
        return sb[0x60] & 0x4 != 0
    }

    /// A btrfs filesystem's subvolumes, features, checksum and superblock copies for `inspect`.
    static func btrfsDetails(_ reader: BtrfsReader) throws -> DiskInspection.BtrfsDetails {
        DiskInspection.BtrfsDetails(
            features: reader.featureNames, checksum: reader.checksumType.name, checksumsVerified: reader.checksumsVerified,
            devices: reader.superBlock.deviceCount, logTree: reader.superBlock.logTree != 0,
            logReplay: reader.logReplay.map { .init(replayed: $0.replayed, subvolumes: $0.subvolumes, items: $0.items, warnings: $0.warnings) },
            subvolumes: try reader.subvolumes().map { .init(id: $0.id, path: $0.path, readOnly: $0.isReadOnly, isDefault: $0.isDefault) },
            superblocks: Dictionary(reader.superBlockCopies.map { ($0.name, $0.status) }, uniquingKeysWith: { a, _ in a }),
            memberDevices: reader.devices.map { .init(id: $0.id, name: $0.name) },
            ignoredDevices: reader.ignoredDevices.isEmpty ? nil : reader.ignoredDevices.map { .init(name: $0.name, reason: $0.reason) })
    }

    /// The f2fs superblock's feature names (the first valid of its two copies); nil, with a
    /// warning, when neither can be read.
    private func f2fsFeatures(at offset: UInt64, size: UInt64, index: Int, warnings: inout [String]) -> [String]? {
        do {
            let slice = try source.slice(offset: offset, length: min(size, source.size - min(offset, source.size)))
            let features = try F2FSReader.superBlock(of: slice).features
            return features.description.split(separator: ",").map(String.init)
        } catch {
            warnings.append("partition \(index): f2fs superblock: \(FWError(error).message)")
            return nil
        }
    }

    /// What `inspect` says of a UBIFS journal: what was replayed over the committed index (as
    /// every reading command replays it; `--no-replay` reads the index only) and its warnings.
    static func journalNotes(_ journal: UBIFSJournalSummary) -> [String] {
        var notes: [String] = []
        if journal.nodes > 0 {
            notes.append("its UBIFS journal holds \(journal.nodes) node(s) in \(journal.buds) bud LEB(s) written after the last commit: "
                         + "replayed in memory as the kernel mounts it (--no-replay reads the committed index only)")
        }
        return notes + journal.warnings.map { "UBIFS journal: \($0)" }
    }

    /// Parses the partition table and probes every partition with libblkid. Problems that leave
    /// the rest usable are returned as `table.warnings`; the rest throw `FWError` naming the image.
    public func inspect() throws -> DiskInspection {
        let prober = try makeProber()
        var (table, wholeDisk) = try partitionTable(prober: prober)
        var partitions: [DiskInspection.PartitionInfo] = []
        for p in table.partitions {
            var fs: FilesystemSignature? = nil
            var ubifsDirty = false
            if table.kind == .none {
                fs = wholeDisk
            } else if table.kind == .ubi {
                // A volume is not a byte range of the image: the magic table names what it holds.
                do {
                    let (volume, description) = try ubiVolume(p)
                    fs = try FileSystemFormat.kind(of: volume).map { FilesystemSignature(type: $0.rawValue) }
                    // An unreadable UBIFS is a warning below (the volume stays listed with its kind).
                    if fs?.type == FileSystemKind.ubifs.rawValue {
                        let reader = try UBIFSReader(source: volume, name: description)
                        ubifsDirty = reader.masterFlags & 1 != 0
                        table.warnings += Self.journalNotes(reader.journal).map { "UBI volume \(p.index - 1): \($0)" }
                    }
                } catch let error as FWError {
                    table.warnings.append("UBI volume \(p.index - 1): \(error.message)")
                }
            } else if p.withinImage, p.sectorCount > 0 {
                do {
                    fs = try probe(prober, offset: p.start, size: p.size)
                } catch let error as FWError {
                    table.warnings.append("partition \(p.index): \(error.message)")
                }
            }
            var info = DiskInspection.PartitionInfo(p, kind: table.kind, filesystem: fs)
            if info.filesystem != nil {
                info.filesystem?.needsRecovery = table.kind == .ubi ? ubifsDirty : needsRecovery(at: table.kind == .none ? 0 : p.start, type: fs?.type)
                if fs?.type == "f2fs" {
                    info.filesystem?.features = f2fsFeatures(at: table.kind == .none ? 0 : p.start, size: p.size, index: p.index, warnings: &table.warnings)
                }
            }
            if fs?.type == "btrfs", p.withinImage {
                do {
                    let offset = table.kind == .none ? 0 : p.start
                    let slice = try source.slice(offset: offset, length: min(p.size, source.size - offset), name: "partition \(p.index)")
                    info.filesystem?.btrfs = try Self.btrfsDetails(BtrfsReader(source: slice, name: "partition \(p.index)",
                                                                               devices: try btrfsDevices(for: slice)))
                } catch {
                    table.warnings.append("partition \(p.index): btrfs: \(FWError(error).message)")
                }
            }
            partitions.append(info)
        }
        return DiskInspection(
            image: .init(path: path, size: source.size, sectorSize: table.sectorSize,
                         format: format, virtualSize: source.size),
            table: .init(type: table.kind.rawValue, diskID: table.diskID, warnings: table.warnings,
                         hybridMBR: table.kind == .hybrid
                            ? table.hybridMBREntries.map { DiskInspection.PartitionInfo($0, kind: .mbr, filesystem: nil) }
                            : nil),
            partitions: partitions)
    }
}
