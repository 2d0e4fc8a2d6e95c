import DiskImage

/// A GUID as stored on disk: the first three fields little-endian, the last two big-endian
/// ("mixed-endian"), printed lowercase 8-4-4-4-12.
public struct GUID: Sendable, Hashable, CustomStringConvertible {
    public var bytes: [UInt8]

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var isZero: Bool { bytes.allSatisfy { $0 == 0 } }

    public var description: String {
        guard bytes.count == 16 else { return "invalid-guid" }
        func h(_ r: [Int]) -> String { r.map { hex(bytes[$0], digits: 2) }.joined() }
        return [h([3, 2, 1, 0]), h([5, 4]), h([7, 6]), h([8, 9]), h(Array(10..<16))].joined(separator: "-")
    }
}

/// The GPT header (UEFI spec 2.10, table 5.21), at LBA 1 (primary) or the last LBA (backup).
struct GPTHeader: Sendable {
    static let signature: [UInt8] = Array("EFI PART".utf8)
    /// Safety limits: the spec needs 128-byte entries in a 16 KiB array; real disks hold 128
    /// entries. Anything beyond these is treated as corruption rather than allocated.
    static let maximumEntries: UInt32 = 16384
    static let maximumEntrySize: UInt32 = 4096
    static let maximumArrayBytes = 4 << 20

    /// 0x08 Revision.
    var revision: UInt32
    /// 0x0C HeaderSize (92 ..< sector size).
    var headerSize: UInt32
    /// 0x10 HeaderCRC32 (over HeaderSize bytes with this field zeroed).
    var headerCRC: UInt32
    /// 0x18 MyLBA.
    var myLBA: UInt64
    /// 0x20 AlternateLBA.
    var alternateLBA: UInt64
    /// 0x28 FirstUsableLBA.
    var firstUsableLBA: UInt64
    /// 0x30 LastUsableLBA.
    var lastUsableLBA: UInt64
    /// 0x38 DiskGUID.
    var diskGUID: GUID
    /// 0x48 PartitionEntryLBA.
    var entriesLBA: UInt64
    /// 0x50 NumberOfPartitionEntries.
    var entryCount: UInt32
    /// 0x54 SizeOfPartitionEntry.
    var entrySize: UInt32
    /// 0x58 PartitionEntryArrayCRC32.
    var entriesCRC: UInt32

    /// Decodes and validates a header sector read at `lba`. Throws `.corrupt` naming the problem.
    init(_ sector: [UInt8], lba: UInt64) throws {
        let c = ByteCursor(sector, context: "GPT header at LBA \(lba)")
        guard try c.array(at: 0, count: 8) == GPTHeader.signature else {
            throw FWError.corrupt("no \"EFI PART\" signature at LBA \(lba)")
        }
        revision = try c.u32le(at: 0x08)
        headerSize = try c.u32le(at: 0x0C)
        headerCRC = try c.u32le(at: 0x10)
        myLBA = try c.u64le(at: 0x18)
        alternateLBA = try c.u64le(at: 0x20)
        firstUsableLBA = try c.u64le(at: 0x28)
        lastUsableLBA = try c.u64le(at: 0x30)
        diskGUID = GUID(try c.array(at: 0x38, count: 16))
        entriesLBA = try c.u64le(at: 0x48)
        entryCount = try c.u32le(at: 0x50)
        entrySize = try c.u32le(at: 0x54)
        entriesCRC = try c.u32le(at: 0x58)

        guard headerSize >= 92, Int(headerSize) <= sector.count else {
            throw FWError.corrupt("GPT header at LBA \(lba) has a header size of \(headerSize) bytes (must be 92..\(sector.count))")
        }
        var covered = try c.array(at: 0, count: Int(headerSize))
        for i in 0x10..<0x14 { covered[i] = 0 }
        let crc = CRC32.checksum(covered)
        guard crc == headerCRC else {
            throw FWError.corrupt("GPT header at LBA \(lba) has a bad CRC32 (stored 0x\(hex(headerCRC, digits: 8)), computed 0x\(hex(crc, digits: 8)))")
        }
        guard myLBA == lba else {
            throw FWError.corrupt("GPT header at LBA \(lba) says it is at LBA \(myLBA)")
        }
        guard entrySize >= 128, entrySize % 8 == 0, entrySize <= GPTHeader.maximumEntrySize else {
            throw FWError.corrupt("GPT header at LBA \(lba) has a partition entry size of \(entrySize) bytes (must be a multiple of 8, 128..\(GPTHeader.maximumEntrySize))")
        }
        guard entryCount <= GPTHeader.maximumEntries,
              Int(entryCount) * Int(entrySize) <= GPTHeader.maximumArrayBytes else {
            throw FWError(.limitExceeded, "GPT header at LBA \(lba) claims \(entryCount) partition entries of \(entrySize) bytes (limit \(GPTHeader.maximumEntries) entries, \(GPTHeader.maximumArrayBytes) bytes)")
        }
        guard firstUsableLBA <= lastUsableLBA else {
            throw FWError.corrupt("GPT header at LBA \(lba) has first usable LBA \(firstUsableLBA) after last usable LBA \(lastUsableLBA)")
        }
    }

    /// The raw AlternateLBA of a sector that starts with "EFI PART", even when the header is
    /// otherwise corrupt: a last-resort place to look for the backup.
    static func rawAlternateLBA(_ sector: [UInt8]) -> UInt64? {
        let c = ByteCursor(sector, context: "GPT header")
        guard c.matches(signature, at: 0) else { return nil }
        return c.integerIfPresent(at: 0x20, endianness: .little, as: UInt64.self)
    }
}

/// One GPT partition entry (UEFI spec table 5.22), `entrySize` bytes, first 128 defined.
struct GPTEntry: Sendable {
    /// 0x00 PartitionTypeGUID (all zero: unused entry).
    var typeGUID: GUID
    /// 0x10 UniquePartitionGUID (PARTUUID).
    var uniqueGUID: GUID
    /// 0x20 StartingLBA.
    var firstLBA: UInt64
    /// 0x28 EndingLBA (inclusive).
    var lastLBA: UInt64
    /// 0x30 Attributes.
    var attributes: UInt64
    /// 0x38 PartitionName: 36 UTF-16LE code units, NUL-terminated if shorter.
    var name: String

    init(_ c: ByteCursor, at base: Int) throws {
        typeGUID = GUID(try c.array(at: base, count: 16))
        uniqueGUID = GUID(try c.array(at: base + 0x10, count: 16))
        firstLBA = try c.u64le(at: base + 0x20)
        lastLBA = try c.u64le(at: base + 0x28)
        attributes = try c.u64le(at: base + 0x30)
        var units: [UInt16] = []
        for i in 0..<36 {
            let u = try c.u16le(at: base + 0x38 + 2 * i)
            if u == 0 { break }
            units.append(u)
        }
        name = String(decoding: units, as: UTF16.self)
    }
}

enum GPT {
    /// Reads the GPT: the primary header and entries if both check out, else the backup (at the
    /// last LBA, or where the primary says it is, for a disk grown after flashing), with a warning.
    /// `sectorSize` is the size at which "EFI PART" was found at LBA 1, nil when only a protective
    /// MBR announced a GPT (both sizes are then tried for the backup).
    static func read(from source: any ByteSource, sectorSize found: Int?, protectiveMBR: Bool) throws -> PartitionTable {
        var warnings: [String] = []
        var problems: [String] = []
        for ss in found.map({ [$0] }) ?? [512, 4096] where source.size >= UInt64(ss) * 3 {
            let lastLBA = source.size / UInt64(ss) - 1
            var backupCandidates: [UInt64] = [lastLBA]
            var primaryProblem: String
            // Primary at LBA 1.
            do {
                let sector = try source.bytes(at: UInt64(ss), count: ss)
                if let alt = GPTHeader.rawAlternateLBA(sector), alt != lastLBA, alt > 1 { backupCandidates.append(alt) }
                let header = try GPTHeader(sector, lba: 1)
                if header.alternateLBA != lastLBA, header.alternateLBA > 1 {
                    backupCandidates.insert(header.alternateLBA, at: 0)
                }
                let entries = try readEntries(header, source: source, sectorSize: ss)
                var table = makeTable(header, entries: entries, sectorSize: ss, source: source, warnings: &warnings)
                table.warnings = warnings + checkBackup(header, source: source, sectorSize: ss, lastLBA: lastLBA)
                return table
            } catch let error as FWError {
                primaryProblem = error.message
            }
            // Backup.
            problems.append("primary at LBA 1 (\(ss)-byte sectors): \(primaryProblem)")
            for lba in backupCandidates where lba > 1 {
                do {
                    guard let offset = checkedOffset(lba, ss), offset + UInt64(ss) <= source.size else {
                        throw FWError.corrupt("LBA \(lba) is past the end of the image")
                    }
                    let header = try GPTHeader(try source.bytes(at: offset, count: ss), lba: lba)
                    let entries = try readEntries(header, source: source, sectorSize: ss)
                    warnings.append("primary GPT is unusable (\(primaryProblem)); using the backup GPT header at LBA \(lba)")
                    if lba != lastLBA {
                        warnings.append("the backup GPT header is at LBA \(lba), not at the last LBA \(lastLBA): the image is larger than the disk it was made for")
                    }
                    var table = makeTable(header, entries: entries, sectorSize: ss, source: source, warnings: &warnings)
                    table.warnings = warnings
                    return table
                } catch let error as FWError {
                    problems.append("backup at LBA \(lba) (\(ss)-byte sectors): \(error.message)")
                }
            }
        }
        let why = protectiveMBR && found == nil ? "the protective MBR announces a GPT but no valid GPT header was found" : "no valid GPT header"
        throw FWError(.corrupt, "\(why): " + problems.joined(separator: "; "))
    }

    static func checkedOffset(_ lba: UInt64, _ ss: Int) -> UInt64? {
        let (v, o) = lba.multipliedReportingOverflow(by: UInt64(ss))
        return o ? nil : v
    }

    /// Reads and checks the entry array a header points to (bounded by the header's limits).
    static func readEntries(_ header: GPTHeader, source: any ByteSource, sectorSize ss: Int) throws -> [(slot: Int, entry: GPTEntry)] {
        let arrayBytes = Int(header.entryCount) * Int(header.entrySize)
        guard let offset = checkedOffset(header.entriesLBA, ss) else {
            throw FWError.corrupt("partition entry array LBA \(header.entriesLBA) is out of range")
        }
        let (end, overflow) = offset.addingReportingOverflow(UInt64(arrayBytes))
        guard !overflow, end <= source.size else {
            throw FWError.corrupt("partition entry array (LBA \(header.entriesLBA), \(arrayBytes) bytes) is past the end of the image (\(source.size) bytes)")
        }
        let bytes = try source.bytes(at: offset, count: arrayBytes)
        let crc = CRC32.checksum(bytes)
        guard crc == header.entriesCRC else {
            throw FWError.corrupt("partition entry array at LBA \(header.entriesLBA) has a bad CRC32 (stored 0x\(hex(header.entriesCRC, digits: 8)), computed 0x\(hex(crc, digits: 8)))")
        }
        let c = ByteCursor(bytes, context: "GPT partition entry array")
        var result: [(Int, GPTEntry)] = []
        for slot in 0..<Int(header.entryCount) {
            let e = try GPTEntry(c, at: slot * Int(header.entrySize))
            if !e.typeGUID.isZero { result.append((slot, e)) }
        }
        return result
    }

    static func makeTable(_ header: GPTHeader, entries: [(slot: Int, entry: GPTEntry)], sectorSize ss: Int,
                          source: any ByteSource, warnings: inout [String]) -> PartitionTable {
        var partitions: [Partition] = []
        for (slot, e) in entries {
            guard e.firstLBA <= e.lastLBA else {
                warnings.append("GPT entry \(slot + 1) ends (LBA \(e.lastLBA)) before it starts (LBA \(e.firstLBA)); ignored")
                continue
            }
            let (count, overflow) = (e.lastLBA - e.firstLBA).addingReportingOverflow(1)
            guard !overflow else {
                warnings.append("GPT entry \(slot + 1) spans LBA \(e.firstLBA)-\(e.lastLBA), more than any disk; ignored")
                continue
            }
            if e.firstLBA < header.firstUsableLBA || e.lastLBA > header.lastUsableLBA {
                warnings.append("partition \(slot + 1) (LBA \(e.firstLBA)-\(e.lastLBA)) is outside the usable area LBA \(header.firstUsableLBA)-\(header.lastUsableLBA)")
            }
            let type = e.typeGUID.description
            partitions.append(Partition(
                index: slot + 1, firstSector: e.firstLBA, sectorCount: count, sectorSize: ss,
                type: type, typeName: GPTTypes.names[type], name: e.name, uuid: e.uniqueGUID.description,
                bootable: e.attributes & (1 << 2) != 0, attributes: e.attributes))
        }
        return PartitionTable(kind: .gpt, sectorSize: ss, diskID: header.diskGUID.description, partitions: partitions)
    }

    /// Warnings about the backup GPT when the primary is good (missing or not matching).
    static func checkBackup(_ primary: GPTHeader, source: any ByteSource, sectorSize ss: Int, lastLBA: UInt64) -> [String] {
        var warnings: [String] = []
        if primary.alternateLBA != lastLBA {
            if primary.alternateLBA > lastLBA {
                warnings.append("the GPT says its backup is at LBA \(primary.alternateLBA), past the last LBA \(lastLBA): the image is truncated")
                return warnings
            }
            warnings.append("the GPT's backup header is at LBA \(primary.alternateLBA), not at the last LBA \(lastLBA): the image is larger than the disk it was made for")
        }
        guard let offset = checkedOffset(primary.alternateLBA, ss) else { return warnings }
        do {
            let backup = try GPTHeader(try source.bytes(at: offset, count: ss), lba: primary.alternateLBA)
            _ = try readEntries(backup, source: source, sectorSize: ss)
            if backup.diskGUID != primary.diskGUID || backup.entriesCRC != primary.entriesCRC {
                warnings.append("the backup GPT at LBA \(primary.alternateLBA) differs from the primary")
            }
        } catch let error as FWError {
            warnings.append("the backup GPT is unusable (\(error.message)); the primary is used")
        } catch {
            warnings.append("the backup GPT is unusable (\(error)); the primary is used")
        }
        return warnings
    }
}
