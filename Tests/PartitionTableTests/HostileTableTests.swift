import DiskImage
import Foundation
@testable import PartitionTable
import Testing

/// Tiny disks built from bytes in the test: every malformed table gets a clear FWError naming
/// the image, or a warning where the rest is usable; nothing crashes or hangs.
@Suite struct HostileTableTests {
    // MARK: builders

    static func put32(_ v: UInt32, _ b: inout [UInt8], _ at: Int) { for i in 0..<4 { b[at + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }
    static func put64(_ v: UInt64, _ b: inout [UInt8], _ at: Int) { for i in 0..<8 { b[at + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }

    /// An MBR (or EBR) entry at `slot` of the sector at `sector`.
    static func mbrEntry(_ disk: inout [UInt8], sector: Int = 0, slot: Int, type: UInt8, first: UInt32, count: UInt32, boot: Bool = false) {
        let base = sector * 512 + 446 + 16 * slot
        disk[base] = boot ? 0x80 : 0
        disk[base + 4] = type
        put32(first, &disk, base + 8)
        put32(count, &disk, base + 12)
        disk[sector * 512 + 510] = 0x55
        disk[sector * 512 + 511] = 0xAA
    }

    struct GPTPart { var first: UInt64; var last: UInt64; var name: String }

    static let linuxFS: [UInt8] = [0xAF, 0x3D, 0xC6, 0x0F, 0x83, 0x84, 0x72, 0x47, 0x8E, 0x79, 0x3D, 0x69, 0xD8, 0x47, 0x7D, 0xE4]

    /// Writes a GPT header at `headerLBA` with its entry array at `entriesLBA`.
    static func writeGPT(_ disk: inout [UInt8], ss: Int, headerLBA: UInt64, alternateLBA: UInt64, entriesLBA: UInt64,
                         parts: [GPTPart], entryCount: UInt32 = 128, entrySize: UInt32 = 128, firstUsable: UInt64 = 34, lastUsable: UInt64) {
        // A hostile header may claim an array far larger than the disk: only the header is written.
        let arrayBytes = Int(entryCount) * Int(entrySize)
        let eOff = Int(entriesLBA) * ss
        var arrayCRC: UInt32 = 0
        if arrayBytes <= disk.count - eOff {
            var array = [UInt8](repeating: 0, count: arrayBytes)
            for (i, p) in parts.enumerated() {
                let b = i * Int(entrySize)
                array.replaceSubrange(b..<(b + 16), with: linuxFS)
                array.replaceSubrange((b + 16)..<(b + 32), with: (0..<16).map { UInt8(i * 16 + $0 + 1) })
                put64(p.first, &array, b + 32)
                put64(p.last, &array, b + 40)
                for (j, u) in p.name.utf16.enumerated() { array[b + 56 + 2 * j] = UInt8(u & 0xFF); array[b + 57 + 2 * j] = UInt8(u >> 8) }
            }
            disk.replaceSubrange(eOff..<(eOff + array.count), with: array)
            arrayCRC = CRC32.checksum(array)
        }
        var h = [UInt8](repeating: 0, count: 92)
        h.replaceSubrange(0..<8, with: Array("EFI PART".utf8))
        put32(0x0001_0000, &h, 8)
        put32(92, &h, 12)
        put64(headerLBA, &h, 24)
        put64(alternateLBA, &h, 32)
        put64(firstUsable, &h, 40)
        put64(lastUsable, &h, 48)
        h.replaceSubrange(56..<72, with: [UInt8](repeating: 0x5A, count: 16))
        put64(entriesLBA, &h, 72)
        put32(entryCount, &h, 80)
        put32(entrySize, &h, 84)
        put32(arrayCRC, &h, 88)
        put32(CRC32.checksum(h), &h, 16)
        let hOff = Int(headerLBA) * ss
        disk.replaceSubrange(hOff..<(hOff + 92), with: h)
    }

    /// A small, valid GPT disk (512-byte sectors) with a protective MBR and both headers.
    static func gptDisk(sectors: Int = 256, parts: [GPTPart] = [GPTPart(first: 40, last: 99, name: "one"), GPTPart(first: 100, last: 199, name: "two")]) -> [UInt8] {
        var d = [UInt8](repeating: 0, count: sectors * 512)
        mbrEntry(&d, slot: 0, type: 0xEE, first: 1, count: UInt32(sectors - 1))
        let last = UInt64(sectors - 1)
        writeGPT(&d, ss: 512, headerLBA: 1, alternateLBA: last, entriesLBA: 2, parts: parts, lastUsable: last - 33)
        writeGPT(&d, ss: 512, headerLBA: last, alternateLBA: 1, entriesLBA: last - 32, parts: parts, lastUsable: last - 33)
        return d
    }

    func read(_ bytes: [UInt8]) throws -> PartitionTable {
        try PartitionTable.read(from: MemorySource(bytes, name: "hostile.img"))
    }

    /// Expects an FWError whose text names the image and contains `fragment`.
    func expectError(_ bytes: [UInt8], _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            let t = try read(bytes)
            Issue.record("expected an error containing \"\(fragment)\", got \(t)", sourceLocation: sourceLocation)
        } catch let e as FWError {
            #expect(e.description.hasPrefix("hostile.img: "), "\(e)", sourceLocation: sourceLocation)
            #expect(e.description.contains(fragment), "\(e)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("not an FWError: \(error)", sourceLocation: sourceLocation)
        }
    }

    // MARK: sanity of the builders

    @Test func builtGPTIsValid() throws {
        let t = try read(Self.gptDisk())
        #expect(t.kind == .gpt)
        #expect(t.warnings.isEmpty, "\(t.warnings)")
        #expect(t.partitions.map(\.name) == ["one", "two"])
        #expect(t.partitions.map(\.start) == [40 * 512, 100 * 512])
        #expect(t.diskID == "5a5a5a5a-5a5a-5a5a-5a5a-5a5a5a5a5a5a")
    }

    // MARK: size

    @Test func emptyImage() { expectError([], "empty (0 bytes)") }
    @Test func truncatedBelowOneSector() { expectError([UInt8](repeating: 0, count: 300), "300 bytes") }

    @Test func truncatedGPTDiskKeepsWhatFitsAndWarns() throws {
        let full = Self.gptDisk()
        let t = try read(Array(full.prefix(150 * 512)))   // cuts partition two and the backup
        #expect(t.kind == .gpt)
        #expect(t.partitions.count == 2)
        #expect(t.partitions[0].withinImage && !t.partitions[1].withinImage)
        #expect(t.warnings.contains { $0.contains("partition 2") && $0.contains("past the end") }, "\(t.warnings)")
        #expect(t.warnings.contains { $0.contains("truncated") }, "\(t.warnings)")
    }

    // MARK: GPT header limits

    @Test func gptClaimingMillionsOfEntries() {
        var d = Self.gptDisk()
        Self.writeGPT(&d, ss: 512, headerLBA: 1, alternateLBA: 255, entriesLBA: 2, parts: [], entryCount: 4_000_000, lastUsable: 222)
        d.replaceSubrange((255 * 512)..<(256 * 512), with: [UInt8](repeating: 0, count: 512))   // no backup either
        expectError(d, "4000000 partition entries")
    }

    @Test func gptEntrySizeBelow128() {
        var d = Self.gptDisk()
        Self.writeGPT(&d, ss: 512, headerLBA: 1, alternateLBA: 255, entriesLBA: 2, parts: [], entryCount: 128, entrySize: 64, lastUsable: 222)
        d.replaceSubrange((255 * 512)..<(256 * 512), with: [UInt8](repeating: 0, count: 512))
        expectError(d, "entry size of 64 bytes")
    }

    @Test func millionsOfEntriesInPrimaryButGoodBackup() throws {
        var d = Self.gptDisk()
        Self.writeGPT(&d, ss: 512, headerLBA: 1, alternateLBA: 255, entriesLBA: 2, parts: [], entryCount: 4_000_000, lastUsable: 222)
        let t = try read(d)
        #expect(t.partitions.map(\.name) == ["one", "two"])
        #expect(t.warnings.contains { $0.contains("4000000") && $0.contains("backup") }, "\(t.warnings)")
    }

    @Test func protectiveMBRWithoutAnyGPT() {
        var d = [UInt8](repeating: 0, count: 64 * 512)
        Self.mbrEntry(&d, slot: 0, type: 0xEE, first: 1, count: 63)
        expectError(d, "protective MBR")
    }

    @Test func corruptEntryArrayOnGrownDiskUsesBackupWherePrimarySays() throws {
        var d = Self.gptDisk()
        d += [UInt8](repeating: 0, count: 64 * 512)     // the image grew after flashing
        d[2 * 512 + 60] ^= 0xFF                          // damage the primary entry array
        let t = try read(d)
        #expect(t.partitions.map(\.name) == ["one", "two"])
        #expect(t.warnings.contains { $0.contains("entry array") && $0.contains("CRC") }, "\(t.warnings)")
        #expect(t.warnings.contains { $0.contains("LBA 255") && $0.contains("larger") }, "\(t.warnings)")
    }

    @Test func staleGPTBehindARealMBRIsIgnored() throws {
        var d = Self.gptDisk()
        // Overwrite the protective entry with a Linux partition, as an MBR tool would.
        Self.mbrEntry(&d, slot: 0, type: 0x83, first: 40, count: 100)
        let t = try read(d)
        #expect(t.kind == .mbr)
        #expect(t.partitions.map(\.type) == ["0x83"])
        #expect(t.warnings.contains { $0.contains("ignoring a GPT") }, "\(t.warnings)")
    }

    @Test func gptWithoutProtectiveMBRIsUsedWithWarning() throws {
        var d = Self.gptDisk()
        d.replaceSubrange(446..<512, with: [UInt8](repeating: 0, count: 66))
        let t = try read(d)
        #expect(t.kind == .gpt)
        #expect(t.partitions.count == 2)
        #expect(t.warnings.contains { $0.contains("no protective MBR") }, "\(t.warnings)")
    }

    @Test func gptEntrySpanningEverything() throws {
        let t = try read(Self.gptDisk(parts: [GPTPart(first: 0, last: .max, name: "all"), GPTPart(first: 40, last: .max - 1, name: "huge")]))
        #expect(t.partitions.map(\.index) == [2])
        #expect(t.partitions.first?.withinImage == false)
        #expect(t.warnings.contains { $0.contains("entry 1") && $0.contains("more than any disk") }, "\(t.warnings)")
    }

    @Test func gptEntryEndingBeforeItStarts() throws {
        let t = try read(Self.gptDisk(parts: [GPTPart(first: 90, last: 50, name: "bad"), GPTPart(first: 100, last: 199, name: "ok")]))
        #expect(t.partitions.map(\.index) == [2])
        #expect(t.warnings.contains { $0.contains("entry 1") }, "\(t.warnings)")
    }

    @Test func fourKSectorGPTFromBytes() throws {
        let ss = 4096
        var d = [UInt8](repeating: 0, count: 64 * ss)
        Self.mbrEntry(&d, slot: 0, type: 0xEE, first: 1, count: 63)
        let parts = [GPTPart(first: 8, last: 39, name: "four-k")]
        Self.writeGPT(&d, ss: ss, headerLBA: 1, alternateLBA: 63, entriesLBA: 2, parts: parts, firstUsable: 6, lastUsable: 58)
        Self.writeGPT(&d, ss: ss, headerLBA: 63, alternateLBA: 1, entriesLBA: 59, parts: parts, firstUsable: 6, lastUsable: 58)
        let t = try read(d)
        #expect(t.sectorSize == 4096)
        #expect(t.warnings.isEmpty, "\(t.warnings)")
        #expect(t.partitions.first?.start == 8 * 4096)
        #expect(t.partitions.first?.size == 32 * 4096)
    }

    // MARK: MBR

    @Test func overlappingAndPastTheEndPrimaries() throws {
        var d = [UInt8](repeating: 0, count: 200 * 512)
        Self.mbrEntry(&d, slot: 0, type: 0x83, first: 10, count: 100)
        Self.mbrEntry(&d, slot: 1, type: 0x83, first: 50, count: 100)
        Self.mbrEntry(&d, slot: 2, type: 0x0C, first: 150, count: 1000, boot: true)
        let t = try read(d)
        #expect(t.kind == .mbr)
        #expect(t.partitions.map(\.index) == [1, 2, 3])
        #expect(t.warnings.contains { $0.contains("partitions 1 and 2 overlap") }, "\(t.warnings)")
        #expect(t.warnings.contains { $0.contains("partition 3") && $0.contains("past the end") }, "\(t.warnings)")
        #expect(t.partitions[2].bootable && !t.partitions[2].withinImage)
    }

    @Test func ebrChainThatLoops() throws {
        var d = [UInt8](repeating: 0, count: 400 * 512)
        Self.mbrEntry(&d, slot: 0, type: 0x0F, first: 100, count: 300)
        Self.mbrEntry(&d, sector: 100, slot: 0, type: 0x83, first: 10, count: 20)
        Self.mbrEntry(&d, sector: 100, slot: 1, type: 0x05, first: 50, count: 60)   // -> EBR at 150
        Self.mbrEntry(&d, sector: 150, slot: 0, type: 0x83, first: 10, count: 20)
        Self.mbrEntry(&d, sector: 150, slot: 1, type: 0x05, first: 0, count: 60)    // -> back to 100
        let t = try read(d)
        #expect(t.partitions.map(\.index) == [1, 5, 6])
        #expect(t.partitions.last?.firstSector == 160)
        #expect(t.warnings.contains { $0.contains("loops") }, "\(t.warnings)")
    }

    @Test func ebrPointingOutsideTheDisk() throws {
        var d = [UInt8](repeating: 0, count: 400 * 512)
        Self.mbrEntry(&d, slot: 0, type: 0x85, first: 100, count: 300)
        Self.mbrEntry(&d, sector: 100, slot: 0, type: 0x83, first: 10, count: 20)
        Self.mbrEntry(&d, sector: 100, slot: 1, type: 0x05, first: 0xFFFF_FF00, count: 60)
        let t = try read(d)
        #expect(t.partitions.map(\.index) == [1, 5])
        #expect(t.warnings.contains { $0.contains("past the end of the image") }, "\(t.warnings)")
    }

    @Test func extendedPointingPastTheEnd() throws {
        var d = [UInt8](repeating: 0, count: 100 * 512)
        Self.mbrEntry(&d, slot: 0, type: 0x05, first: 5000, count: 300)
        let t = try read(d)
        #expect(t.partitions.map(\.index) == [1])
        #expect(t.warnings.count >= 2, "\(t.warnings)")
    }

    @Test func longEBRChainIsBounded() throws {
        // 400 EBRs each pointing to the next: stops at the limit, no hang.
        let n = 400
        var d = [UInt8](repeating: 0, count: (2 + n * 2) * 512)
        Self.mbrEntry(&d, slot: 0, type: 0x05, first: 2, count: UInt32(n * 2))
        for i in 0..<n {
            let s = 2 + 2 * i
            Self.mbrEntry(&d, sector: s, slot: 0, type: 0x83, first: 1, count: 1)
            Self.mbrEntry(&d, sector: s, slot: 1, type: 0x05, first: UInt32(2 * (i + 1)), count: 2)
        }
        let t = try read(d)
        #expect(t.partitions.count <= MBR.maximumLogicalPartitions + 1)
        #expect(t.warnings.contains { $0.contains("longer than") || $0.contains("more than") }, "\(t.warnings)")
    }

    @Test func mbrDiskSignatureAndPartUUID() throws {
        var d = [UInt8](repeating: 0, count: 100 * 512)
        Self.put32(0x1A2B_3C4D, &d, 440)
        Self.mbrEntry(&d, slot: 1, type: 0x83, first: 10, count: 50)
        let t = try read(d)
        #expect(t.diskID == "1a2b3c4d")
        #expect(t.partitions.map(\.uuid) == ["1a2b3c4d-02"])
    }

    @Test func garbageSectorIsNoTable() throws {
        var d = [UInt8](repeating: 0x41, count: 4096)
        d[510] = 0x55; d[511] = 0xAA           // signature but boot indicators 0x41
        #expect(try read(d).kind == .none)
        #expect(try read([UInt8](repeating: 0, count: 4096)).kind == .none)
    }
}
