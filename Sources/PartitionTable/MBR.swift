import DiskImage

/// One 16-byte MBR/EBR partition entry (at 446 + 16 * slot of its sector).
struct MBREntry: Sendable, Equatable {
    /// 0x00: boot indicator (0x80 bootable, 0x00 not).
    var status: UInt8
    /// 0x04: partition type.
    var type: UInt8
    /// 0x08: first sector (LBA), relative to the table's base.
    var firstLBA: UInt32
    /// 0x0C: number of sectors.
    var sectorCount: UInt32

    init(_ c: ByteCursor, at base: Int) throws {
        status = try c.u8(at: base + 0x00)
        type = try c.u8(at: base + 0x04)
        firstLBA = try c.u32le(at: base + 0x08)
        sectorCount = try c.u32le(at: base + 0x0C)
    }

    var isEmpty: Bool { type == 0 || sectorCount == 0 }
    var isExtended: Bool { MBR.extendedTypes.contains(type) }

    /// As a partition, at an absolute first sector.
    func partition(index: Int, signature: UInt32?, absoluteFirst: UInt64? = nil, logical: Bool = false) -> Partition {
        Partition(index: index, firstSector: absoluteFirst ?? UInt64(firstLBA), sectorCount: UInt64(sectorCount),
                  sectorSize: 512, type: "0x" + hex(type, digits: 2), typeName: MBR.typeNames[type],
                  uuid: signature.map { hex($0, digits: 8) + "-" + hex(index, digits: 2) },
                  bootable: status == 0x80, isExtended: isExtended, isLogical: logical)
    }
}

/// The master boot record (sector 0): 446 bytes of boot code, the disk signature at 440, four
/// entries at 446, and 0x55 0xAA at 510.
struct MBR: Sendable {
    static let extendedTypes: Set<UInt8> = [0x05, 0x0F, 0x85]
    /// Linux's limit on partitions per disk; also bounds the EBR chain.
    static let maximumLogicalPartitions = 256

    /// 0x1B8: 32-bit disk signature (PARTUUID prefix).
    var signature: UInt32
    /// 0x1BE: the four primary entries.
    var entries: [MBREntry]
    /// Bytes 0..<512, kept to tell a FAT boot sector from an MBR.
    var sector: ByteCursor

    /// Nil when the sector is not an MBR (no 0x55AA, or boot indicators other than 0x00/0x80).
    init?(_ bytes: [UInt8]) throws {
        let c = ByteCursor(bytes, context: "MBR")
        guard try c.u8(at: 510) == 0x55, try c.u8(at: 511) == 0xAA else { return nil }
        var entries: [MBREntry] = []
        for slot in 0..<4 {
            let e = try MBREntry(c, at: 446 + 16 * slot)
            guard e.status == 0x00 || e.status == 0x80 else { return nil }
            entries.append(e)
        }
        self.signature = try c.u32le(at: 440)
        self.entries = entries
        self.sector = c
    }

    /// True for a FAT volume boot record (a bare FAT filesystem, which also ends in 0x55AA): a
    /// jump instruction, a power-of-two sector size 512-4096, a power-of-two cluster size, reserved
    /// sectors, one or two FATs, a media byte 0xF0/0xF8-0xFF, and "FAT" at 0x36 or 0x52 or no
    /// MBR entries at all (as libblkid decides).
    var looksLikeFATBootSector: Bool {
        func u8(_ at: Int) -> UInt8? { sector.integerIfPresent(at: at, endianness: .little) }
        func u16(_ at: Int) -> UInt16? { sector.integerIfPresent(at: at, endianness: .little) }
        guard let jump = u8(0), jump == 0xEB || jump == 0xE9,
              let bps = u16(11), [512, 1024, 2048, 4096].contains(bps),
              let spc = u8(13), spc != 0, spc & (spc - 1) == 0,
              let reserved = u16(14), reserved > 0,
              let fats = u8(16), fats == 1 || fats == 2,
              let media = u8(21), media == 0xF0 || media >= 0xF8 else { return false }
        // A boot loader's MBR can start like a BPB; a FAT volume names itself or has no entries.
        let fat = Array("FAT".utf8)
        let named = sector.matches(fat, at: 0x36) || sector.matches(fat, at: 0x52)
        return named || entries.allSatisfy(\.isEmpty)
    }

    /// The partitions of an MBR disk: non-empty primaries 1-4, then the logicals of the first
    /// extended partition (types 0x05, 0x0F, 0x85) numbered from 5, following the EBR chain.
    static func readTable(_ mbr: MBR, from source: any ByteSource) throws -> PartitionTable {
        var warnings: [String] = []
        var partitions: [Partition] = []
        var extended: MBREntry? = nil
        for (slot, e) in mbr.entries.enumerated() where !e.isEmpty {
            partitions.append(e.partition(index: slot + 1, signature: mbr.signature))
            if e.isExtended {
                if extended == nil { extended = e } else {
                    warnings.append("MBR entry \(slot + 1) is a second extended partition; its logical partitions are ignored")
                }
            }
        }
        if let extended {
            partitions += readLogicals(extended: extended, signature: mbr.signature, source: source, warnings: &warnings)
        }
        return PartitionTable(kind: .mbr, sectorSize: 512, diskID: hex(mbr.signature, digits: 8),
                              partitions: partitions, warnings: warnings)
    }

    /// Walks the EBR chain. Each EBR holds a data entry (relative to this EBR) and a link entry
    /// (relative to the start of the extended partition). Loops, links outside the image or the
    /// extended partition, and over-long chains end the walk with a warning.
    static func readLogicals(extended: MBREntry, signature: UInt32, source: any ByteSource, warnings: inout [String]) -> [Partition] {
        let extStart = UInt64(extended.firstLBA)
        let extEnd = extStart + UInt64(extended.sectorCount)
        let imageSectors = source.size / 512
        var result: [Partition] = []
        var visited: Set<UInt64> = []
        var ebr = extStart
        var number = 5
        while true {
            guard visited.insert(ebr).inserted else {
                warnings.append("the EBR chain loops back to sector \(ebr); logical partitions after \(number - 1) ignored")
                break
            }
            guard visited.count <= maximumLogicalPartitions else {
                warnings.append("the EBR chain is longer than \(maximumLogicalPartitions) links; the rest is ignored")
                break
            }
            guard ebr < imageSectors else {
                warnings.append("EBR at sector \(ebr) is past the end of the image (\(imageSectors) sectors); logical partitions from \(number) on are missing")
                break
            }
            if ebr >= extEnd {
                warnings.append("EBR at sector \(ebr) lies outside the extended partition (sectors \(extStart)..<\(extEnd))")
            }
            let sector: MBR?
            do {
                sector = try MBR(try source.bytes(at: ebr * 512, count: 512))
            } catch {
                warnings.append("cannot read the EBR at sector \(ebr): \(error)")
                break
            }
            guard let sector else {
                if ebr == extStart {
                    warnings.append("the extended partition's first EBR (sector \(ebr)) has no 0x55AA signature; it holds no logical partitions")
                } else {
                    warnings.append("EBR at sector \(ebr) has no 0x55AA signature; logical partitions from \(number) on are missing")
                }
                break
            }
            var next: UInt64? = nil
            for e in sector.entries where !e.isEmpty {
                if e.isExtended {
                    if next == nil { next = extStart + UInt64(e.firstLBA) }
                    continue
                }
                guard result.count < maximumLogicalPartitions else {
                    warnings.append("more than \(maximumLogicalPartitions) logical partitions; the rest is ignored")
                    return result
                }
                let first = ebr + UInt64(e.firstLBA)
                var p = e.partition(index: number, signature: signature, absoluteFirst: first, logical: true)
                p.isExtended = false
                if first < extStart || first + UInt64(e.sectorCount) > extEnd {
                    warnings.append("logical partition \(number) (sectors \(first)..<\(first + UInt64(e.sectorCount))) is not inside the extended partition")
                }
                result.append(p)
                number += 1
            }
            guard let link = next else { break }
            ebr = link
        }
        return result
    }

    /// Names for the common MBR partition types (as fdisk prints them).
    static let typeNames: [UInt8: String] = [
        0x01: "FAT12", 0x04: "FAT16 <32M", 0x05: "Extended", 0x06: "FAT16", 0x07: "HPFS/NTFS/exFAT",
        0x0B: "W95 FAT32", 0x0C: "W95 FAT32 (LBA)", 0x0E: "W95 FAT16 (LBA)", 0x0F: "W95 Ext'd (LBA)",
        0x82: "Linux swap", 0x83: "Linux", 0x85: "Linux extended", 0x8E: "Linux LVM",
        0xA5: "FreeBSD", 0xDA: "Non-FS data", 0xEE: "GPT", 0xEF: "EFI (FAT-12/16/32)",
        0xFD: "Linux raid autodetect",
    ]
}
