import DiskImage

/// The partition table of a disk image, parsed in Swift from the raw bytes.
///
/// `PartitionTable.read(from:)` recognises, in this order: a GPT (primary header at LBA 1 with
/// 512- or 4096-byte sectors, or its backup), a hybrid MBR beside it, a classic MBR with its EBR
/// chain, and otherwise nothing (`.none`, no partitions: the caller may then probe the whole disk
/// for a bare filesystem). Problems that leave the rest usable are collected as `warnings`;
/// problems that leave nothing usable throw `FWError` naming the image.
public struct PartitionTable: Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable, Codable {
        case gpt, mbr, hybrid, none
        /// A UBI image (raw flash): each volume of its volume table is a partition, numbered by
        /// volume id + 1 and named by the volume's name (`UBIImage`).
        case ubi
    }

    public var kind: Kind
    /// Logical sector size the table uses (512, or 4096 for a GPT found at byte 4096).
    public var sectorSize: Int
    /// GPT disk GUID (lowercase) or MBR disk signature as 8 lowercase hex digits.
    public var diskID: String?
    /// Partitions in Linux numbering: GPT entry slot + 1; MBR primaries 1-4, logicals from 5.
    public var partitions: [Partition]
    /// For a hybrid disk: the MBR's real entries beside the 0xEE one (the GPT wins).
    public var hybridMBREntries: [Partition]
    public var warnings: [String]

    public init(kind: Kind, sectorSize: Int, diskID: String?, partitions: [Partition],
                hybridMBREntries: [Partition] = [], warnings: [String] = []) {
        self.kind = kind
        self.sectorSize = sectorSize
        self.diskID = diskID
        self.partitions = partitions
        self.hybridMBREntries = hybridMBREntries
        self.warnings = warnings
    }
}

/// One partition, in bytes and in sectors of the table's sector size.
public struct Partition: Sendable, Equatable {
    /// Linux partition number (the N of sdaN / PARTUUID ...-0N).
    public var index: Int
    public var firstSector: UInt64
    public var sectorCount: UInt64
    public var sectorSize: Int
    /// GPT type GUID (lowercase) or MBR type as "0x0c".
    public var type: String
    /// A human name for `type` when it is a well-known one.
    public var typeName: String?
    /// GPT partition name (UTF-16LE on disk); nil on MBR.
    public var name: String?
    /// PARTUUID: the GPT unique GUID (lowercase) or `<signature>-<NN>` on MBR.
    public var uuid: String?
    /// MBR boot indicator 0x80, or GPT attribute bit 2 (legacy BIOS bootable).
    public var bootable: Bool
    /// GPT attribute bits (nil on MBR).
    public var attributes: UInt64?
    /// An MBR extended partition (a container of logical partitions, not a filesystem).
    public var isExtended: Bool
    /// An MBR logical partition (inside the extended one).
    public var isLogical: Bool
    /// False when the partition reaches past the end of the image (it is kept, with a warning).
    public var withinImage: Bool

    public init(index: Int, firstSector: UInt64, sectorCount: UInt64, sectorSize: Int, type: String,
                typeName: String? = nil, name: String? = nil, uuid: String? = nil, bootable: Bool = false,
                attributes: UInt64? = nil, isExtended: Bool = false, isLogical: Bool = false, withinImage: Bool = true) {
        self.index = index
        self.firstSector = firstSector
        self.sectorCount = sectorCount
        self.sectorSize = sectorSize
        self.type = type
        self.typeName = typeName
        self.name = name
        self.uuid = uuid
        self.bootable = bootable
        self.attributes = attributes
        self.isExtended = isExtended
        self.isLogical = isLogical
        self.withinImage = withinImage
    }

    /// Byte offset of the partition in the image (saturating: a corrupt table cannot trap).
    public var start: UInt64 {
        let (v, o) = firstSector.multipliedReportingOverflow(by: UInt64(sectorSize))
        return o ? UInt64.max : v
    }

    /// Length in bytes (saturating).
    public var size: UInt64 {
        let (v, o) = sectorCount.multipliedReportingOverflow(by: UInt64(sectorSize))
        return o ? UInt64.max : v
    }

    /// One past the last byte (saturating).
    public var end: UInt64 {
        let (v, o) = start.addingReportingOverflow(size)
        return o ? UInt64.max : v
    }
}

extension PartitionTable {
    /// Reads the partition table of `source`. Throws for an empty or unreadable image and for a
    /// GPT whose primary and backup are both unusable; everything else becomes warnings.
    /// `flashGeometry`: the NAND page and spare sizes of a raw flash dump that keeps its spare
    /// bytes (nil: detected).
    public static func read(from source: any ByteSource, flashGeometry: FlashGeometry? = nil) throws -> PartitionTable {
        guard source.size > 0 else {
            throw FWError(.corrupt, "the image is empty (0 bytes)", disk: source.name)
        }
        guard source.size >= 512 else {
            throw FWError(.corrupt, "the image is only \(source.size) bytes, too small for a partition table or filesystem", disk: source.name)
        }
        do {
            let sector0 = try source.bytes(at: 0, count: 512)
            let mbr = try MBR(sector0)

            // GPT: "EFI PART" at LBA 1 (512-byte sectors first, then 4096), or a protective MBR.
            var gptSectorSize: Int? = nil
            for ss in [512, 4096] where source.size >= UInt64(ss) * 2 {
                if try source.bytes(at: UInt64(ss), count: 8) == GPTHeader.signature {
                    gptSectorSize = ss
                    break
                }
            }
            let protective = mbr?.entries.contains { $0.type == 0xEE } ?? false
            if let mbr, !protective, gptSectorSize != nil, mbr.entries.contains(where: { !$0.isEmpty }), !mbr.looksLikeFATBootSector {
                // A GPT signature behind an MBR with real entries and no 0xEE entry is stale (the
                // disk was repartitioned with an MBR tool): Linux and libblkid use the MBR.
                var table = try MBR.readTable(mbr, from: source)
                table.warnings.append("ignoring a GPT header at LBA 1: the MBR has partitions and no protective (0xEE) entry")
                checkExtents(&table, imageSize: source.size)
                return table
            }
            if gptSectorSize != nil || protective {
                var table = try GPT.read(from: source, sectorSize: gptSectorSize, protectiveMBR: protective)
                if let mbr {
                    let real = mbr.entries.enumerated().filter { $0.element.type != 0xEE && !$0.element.isEmpty }
                    if protective, !real.isEmpty {
                        table.kind = .hybrid
                        table.hybridMBREntries = real.map { slot, e in
                            e.partition(index: slot + 1, signature: nil)
                        }
                    } else if !protective {
                        table.warnings.append("no protective MBR (type 0xEE) in front of the GPT")
                    }
                } else {
                    table.warnings.append("no protective MBR (no 0x55AA signature at byte 510) in front of the GPT")
                }
                checkExtents(&table, imageSize: source.size)
                return table
            }
            if let mbr, !mbr.looksLikeFATBootSector {
                var table = try MBR.readTable(mbr, from: source)
                checkExtents(&table, imageSize: source.size)
                return table
            }
            if let ubi = try UBIImage.attach(source, geometry: flashGeometry) {
                return ubi.partitionTable()
            }
            return PartitionTable(kind: .none, sectorSize: 512, diskID: nil, partitions: [])
        } catch let error as FWError {
            throw error.within(disk: source.name)
        }
    }

    /// Flags partitions past the end of the image and overlapping partitions (warnings only).
    static func checkExtents(_ table: inout PartitionTable, imageSize: UInt64) {
        for i in table.partitions.indices {
            let p = table.partitions[i]
            if p.end > imageSize {
                table.partitions[i].withinImage = false
                table.warnings.append("partition \(p.index) (bytes \(p.start)..<\(p.end)) reaches past the end of the image (\(imageSize) bytes)")
            }
        }
        // Overlaps between data partitions (an extended container overlaps its logicals by design).
        let data = table.partitions.filter { !$0.isExtended && $0.sectorCount > 0 }.sorted { $0.start < $1.start }
        if data.count > 1 {
            for i in 1..<data.count {
                for j in 0..<i where data[j].end > data[i].start {
                    table.warnings.append("partitions \(data[j].index) and \(data[i].index) overlap (bytes \(data[i].start)..<\(min(data[j].end, data[i].end)))")
                }
            }
        }
    }
}

/// Formats 4 bytes as 8 lowercase hex digits, 1 byte as 2.
func hex<T: FixedWidthInteger>(_ value: T, digits: Int) -> String {
    let s = String(value, radix: 16)
    return String(repeating: "0", count: max(0, digits - s.count)) + s
}
