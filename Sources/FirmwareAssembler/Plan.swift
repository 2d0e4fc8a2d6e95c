import DiskImage
import Foundation
import FileSystemExt4
import FileSystemFAT
import FileSystems
import MountPlan

@_exported import struct MountPlan.Plan
@_exported import struct MountPlan.PlanOptions
@_exported import struct MountPlan.PlannedMount
@_exported import struct MountPlan.SkippedMount
@_exported import struct MountPlan.RootChoice

/// The disk as the mount planner and the namespace see it: inspected partitions, and their
/// filesystems opened once each (cached) by magic.
final class PartitionFileSystems: PlanningDisk {
    let disk: Disk
    let inspection: DiskInspection
    let partitions: [PlanPartition]
    /// Readers by partition and the FAT mount options (uid=, gid=, umask=...) they were opened
    /// with: planning reads boot files with none, the namespace mounts with the plan's.
    private var readers: [Int: [(fat: FATMountOptions?, reader: (any FileSystemReader)?)]] = [:]
    /// Partitions that could not be opened, with the error (reported once each).
    private(set) var openFailures: [Int: FWError] = [:]
    /// Partitions whose filesystem claims more bytes than the partition holds, with the warning.
    private(set) var cutShort: [Int: String] = [:]
    /// Replay the journal of ext3/ext4 filesystems that need recovery (false: `--no-replay`).
    let replayJournal: Bool
    /// What journal replay did, by partition, for the ext3/ext4 filesystems that needed recovery.
    private(set) var journals: [Int: (description: String, replay: JournalReplay)] = [:]
    /// Each opened partition's journal replay warnings (ext3/ext4 and UBIFS), worded as
    /// `replayWarnings(of:)` words them.
    private var warningLists: [Int: (description: String, warnings: [String])] = [:]

    /// The journal replay warnings of every opened partition, by partition number.
    var journalWarnings: [(place: String, message: String)] {
        warningLists.sorted { $0.key < $1.key }.flatMap { _, r in r.warnings.map { (r.description, $0) } }
    }

    /// Called during a journal replay (a progress line).
    let journalProgress: JournalReplayProgress?

    init(disk: Disk, replayJournal: Bool = true, journalProgress: JournalReplayProgress? = nil) throws {
        self.disk = disk
        self.replayJournal = replayJournal
        self.journalProgress = journalProgress
        self.inspection = try disk.inspect()
        self.partitions = inspection.partitions.filter { !$0.extended }.map { p in
            PlanPartition(index: p.index, name: p.name, partUUID: p.uuid, typeID: p.type, fsType: p.filesystem?.type,
                          label: p.filesystem?.label, fsUUID: p.filesystem?.uuid, size: p.withinImage ? p.size : 0,
                          slot: p.slotAttributes)
        }
    }

    func fileSystem(partition index: Int) throws -> (any FileSystemReader)? {
        try fileSystem(partition: index, fat: nil)
    }

    /// The filesystem of a partition, a FAT one read with `fat` mount options, opened once for
    /// each set of options.
    func fileSystem(partition index: Int, fat: FATMountOptions?) throws -> (any FileSystemReader)? {
        if let cached = readers[index]?.first(where: { $0.fat == fat }) { return cached.reader }
        var reader: (any FileSystemReader)?
        if let info = inspection.partitions.first(where: { $0.index == index }), info.filesystem != nil, info.withinImage {
            do {
                let (slice, description) = try disk.partitionSource(.number(index))
                if let fat, try FileSystemFormat.detect(slice) == .vfat {
                    reader = try FATReader(source: slice, name: description, options: fat)
                } else if try FileSystemFormat.detect(slice) != nil {
                    reader = try disk.openReader(slice, name: description, replayJournal: replayJournal,
                                                 journalProgress: journalProgress)
                    if let ext4 = reader as? Ext4Reader, let journal = ext4.journal, journals[index] == nil {
                        journals[index] = (description, journal)
                    }
                    if let reader, case let warnings = replayWarnings(of: reader), !warnings.isEmpty {
                        warningLists[index] = (description, warnings)
                    }
                }
                if let reader, let claimed = reader.declaredSize, claimed > slice.size {
                    cutShort[index] = "partition \(index): its \(reader.formatName) filesystem spans \(claimed) bytes, more than the "
                        + "partition's \(slice.size): what lies past the partition's end cannot be read"
                        + (reader is Ext4Reader ? " (the kernel refuses to mount it)" : "")
                }
            } catch {
                openFailures[index] = FWError(error)
            }
        }
        readers[index, default: []].append((fat, reader))
        return reader
    }

    /// Why a partition's filesystem cannot be read: it reaches past the end of the image, it
    /// failed to open, or it is a filesystem fwassemble has no reader for (named as the magic
    /// table `FileSystemKind` or libblkid names it). Nil when it can be read or holds nothing.
    func unreadableReason(partition index: Int) -> String? {
        guard let info = inspection.partitions.first(where: { $0.index == index }) else { return nil }
        guard info.withinImage else {
            return "reaches past the end of the image (image \(inspection.image.size) bytes, partition ends at \(info.start + info.size))"
        }
        guard let type = info.filesystem?.type else { return nil }
        do {
            if try fileSystem(partition: index) != nil { return nil }
            if let failure = openFailures[index] { return "holds \(type) that cannot be read: \(failure.message)" }
            let kind = try FileSystemFormat.kind(of: try disk.partitionSource(.number(index)).source)
            return "holds \(kind?.rawValue ?? type), which fwassemble does not read"
        } catch {
            return "holds \(type) that cannot be read: \(FWError(error).message)"
        }
    }

    private var offsetReaders: [String: (any FileSystemReader)?] = [:]

    /// The filesystem starting `offset` bytes into a partition (OpenWrt's rootfs_data), cached.
    func fileSystem(partition index: Int, offset: UInt64) throws -> (any FileSystemReader)? {
        if offset == 0 { return try fileSystem(partition: index) }
        let key = "\(index)@\(offset)"
        if let cached = offsetReaders[key] { return cached }
        var reader: (any FileSystemReader)?
        if let info = inspection.partitions.first(where: { $0.index == index }), info.withinImage {
            let (slice, _) = try disk.partitionSource(.number(index))
            guard offset < slice.size else { offsetReaders[key] = .some(nil); return nil }
            var place = slice.place
            place.partition = (place.partition.map { $0 + " " } ?? "") + "at offset \(offset)"
            let inner = try slice.slice(offset: offset, length: slice.size - offset, place: place)
            if try FileSystemFormat.detect(inner) != nil {
                reader = try disk.openReader(inner, name: inner.name, replayJournal: replayJournal,
                                             journalProgress: journalProgress)
            }
        }
        offsetReaders[key] = reader
        return reader
    }

    func rawBytes(partition index: Int, count: Int) throws -> [UInt8] {
        guard let p = inspection.partitions.first(where: { $0.index == index }), p.withinImage else { return [] }
        let n = Int(min(UInt64(count), p.size))
        let (slice, _) = try disk.partitionSource(.number(index))
        return try slice.bytes(at: 0, count: n)
    }

    func rawDiskBytes(at offset: UInt64, count: Int) throws -> [UInt8] {
        guard offset < disk.source.size else { return [] }
        return try disk.source.bytes(at: offset, count: Int(min(UInt64(count), disk.source.size - offset)))
    }
}

extension Plan {
    /// The `fwassemble plan --json` document.
    public func json() throws -> String {
        try JSONText.pretty(self)
    }
}

extension Disk {
    /// Works out the mounts the booted device performs (docs/mount-plan.md): the root slot from
    /// bootloader state, fstab, enabled systemd mount units, in the order the kernel stacks them.
    public func plan(options: PlanOptions = PlanOptions()) throws -> Plan {
        let partitions = try PartitionFileSystems(disk: self, replayJournal: options.replayJournal)
        return try plan(using: partitions, options: options)
    }

    func plan(using partitions: PartitionFileSystems, options: PlanOptions) throws -> Plan {
        do {
            var plan = try Planner.plan(partitions, options: options)
            for (index, why) in partitions.openFailures.sorted(by: { $0.key < $1.key }) {
                plan.warnings.append("partition \(index): cannot read its filesystem: \(why.description)")
            }
            plan.warnings += partitions.cutShort.sorted { $0.key < $1.key }.map(\.value)
            return plan
        } catch let e as FWError {
            throw e.within(disk: path)
        }
    }
}
