import DiskImage
import PartitionTable

/// A raw firmware disk image: the one entry point the CLI (and later the C ABI) calls.
///
/// Opening reads nothing but the file's size; each operation reads what it needs with pread.
public final class Disk: Sendable {
    /// The image path as given by the user (used in every message).
    public let path: String
    let source: FileSource

    /// Opens `path` read-only. Throws `FWError` naming the path if it is missing, a directory,
    /// or not a regular file or block device.
    public init(path: String) throws {
        self.path = path
        self.source = try FileSource(path: path)
    }

    /// The image size in bytes.
    public var size: UInt64 { source.size }

    /// The partition table as parsed (for the facade's other operations). A disk with no table
    /// but a filesystem at offset 0 gets one whole-disk partition 1 (kind `.none`).
    func partitionTable(prober: FilesystemProber) throws -> (table: PartitionTable, wholeDisk: FilesystemSignature?) {
        var table = try PartitionTable.read(from: source)
        guard table.kind == .none else { return (table, nil) }
        let signature: FilesystemSignature?
        do {
            signature = try prober.probe(offset: 0, size: source.size)
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

    /// Parses the partition table and probes every partition with libblkid. Problems that leave
    /// the rest usable are returned as `table.warnings`; the rest throw `FWError` naming the image.
    public func inspect() throws -> DiskInspection {
        let prober = try FilesystemProber(path: path)
        var (table, wholeDisk) = try partitionTable(prober: prober)
        var partitions: [DiskInspection.PartitionInfo] = []
        for p in table.partitions {
            var fs: FilesystemSignature? = nil
            if table.kind == .none {
                fs = wholeDisk
            } else if p.withinImage, p.sectorCount > 0 {
                do {
                    fs = try prober.probe(offset: p.start, size: p.size)
                } catch let error as FWError {
                    table.warnings.append("partition \(p.index): \(error.message)")
                }
            }
            partitions.append(DiskInspection.PartitionInfo(p, kind: table.kind, filesystem: fs))
        }
        return DiskInspection(
            image: .init(path: path, size: source.size, sectorSize: table.sectorSize),
            table: .init(type: table.kind.rawValue, diskID: table.diskID, warnings: table.warnings,
                         hybridMBR: table.kind == .hybrid
                            ? table.hybridMBREntries.map { DiskInspection.PartitionInfo($0, kind: .mbr, filesystem: nil) }
                            : nil),
            partitions: partitions)
    }
}

extension Disk {
    /// The bytes of partition `index` (Linux numbering, as `inspect` reports it) as a byte source
    /// named "IMAGE partition N (NAME)", for the filesystem readers. Throws `.notFound` for a
    /// partition that does not exist and `.corrupt` for one reaching past the end of the image.
    func partitionSource(index: Int) throws -> (partition: Partition, source: SliceSource) {
        let prober = try FilesystemProber(path: path)
        let (table, _) = try partitionTable(prober: prober)
        guard let p = table.partitions.first(where: { $0.index == index }) else {
            throw FWError(.notFound, "no partition \(index) (the \(table.kind.rawValue) table has \(table.partitions.map { String($0.index) }.joined(separator: ", ")))", disk: path)
        }
        let label = "partition \(index)" + (p.name.map { $0.isEmpty ? "" : " (\($0))" } ?? "")
        guard p.withinImage else {
            throw FWError(.corrupt, "reaches past the end of the image", disk: path, partition: label)
        }
        return (p, try source.slice(offset: p.start, length: p.size, name: "\(path) \(label)"))
    }
}
