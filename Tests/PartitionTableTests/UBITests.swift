import DiskImage
import Foundation
@testable import PartitionTable
import Testing
import TestSupport

/// The UBI images of images/disks/fs-ubi.sh (ubinize from mtd-utils): each volume read through
/// the LEB map must be byte-equal to the image ubinize was given.
@Suite("UBI volumes")
struct UBITests {
    /// Volume id, name, static, and the file ubinize put in it.
    static let volumes: [(Int, String, Bool, String)] = [
        (0, "rootfs", true, "fs-ubi-rootfs.sqfs"), (1, "data-lzo", false, "fs-ubi-lzo.ubifs"),
        (2, "data-zlib", false, "fs-ubi-zlib.ubifs"), (3, "data-zstd", false, "fs-ubi-zstd.ubifs"),
        (4, "data-none", false, "fs-ubi-none.ubifs"),
    ]

    static func attach(_ name: String) throws -> UBIImage {
        try #require(try UBIImage.attach(try FileSource(path: try TestImages.path(name))))
    }

    static func check(_ ubi: UBIImage) throws {
        #expect(ubi.pebSize == 128 << 10)
        #expect(ubi.vidHeaderOffset == 2048 && ubi.dataOffset == 4096)
        #expect(ubi.volumes.map(\.name) == Self.volumes.map(\.1))
        for (id, name, isStatic, file) in Self.volumes {
            let expected = try Data(contentsOf: URL(fileURLWithPath: try TestImages.path(file)))
            let volume = try ubi.volume(id, place: FWError.Place(disk: "ubi", partition: name))
            #expect(ubi.volumes[id].isStatic == isStatic)
            if isStatic { #expect(volume.size == UInt64(expected.count)) } else { #expect(volume.size >= UInt64(expected.count)) }
            let got = try volume.bytes(at: 0, count: expected.count)
            let firstDifference = zip(got, expected).enumerated().first { $0.element.0 != $0.element.1 }?.offset
            #expect(firstDifference == nil, "volume \(name) differs from \(file) at byte \(firstDifference ?? -1)")
        }
    }

    @Test("ubinize's image: the volume table and every volume's bytes")
    func plain() throws {
        let ubi = try Self.attach("fs-ubi.img")
        #expect(ubi.warnings.isEmpty, "\(ubi.warnings)")
        try Self.check(ubi)
        let table = ubi.partitionTable()
        #expect(table.kind == .ubi)
        #expect(table.partitions.map(\.index) == [1, 2, 3, 4, 5])
        #expect(table.partitions.first?.type == "ubi-static")
    }

    @Test("worn flash: shuffled PEBs, blank and garbage PEBs, an older LEB copy and a newer copy with a bad data CRC")
    func worn() throws {
        let ubi = try Self.attach("fs-ubi-worn.img")
        try Self.check(ubi)
        #expect(ubi.warnings.contains { $0.contains("bad data CRC") })
        #expect(ubi.warnings.contains { $0.contains("2 erased") })
        #expect(ubi.warnings.contains { $0.contains("bad EC or VID header") })
    }

    @Test("a NAND dump with 64 spare bytes after every 2048-byte page: detected and stripped, or given")
    func oob() throws {
        let source = try FileSource(path: try TestImages.path("fs-ubi-oob.img"))
        let detected = try #require(try UBIImage.attach(source))
        #expect(detected.spare == FlashGeometry(pageSize: 2048, spareSize: 64))
        try Self.check(detected)
        #expect(detected.partitionTable().warnings.first?.contains("spare (OOB) bytes stripped") == true)
        let given = try #require(try UBIImage.attach(source, geometry: FlashGeometry(parsing: "2048+64")))
        try Self.check(given)
        #expect(FlashGeometry(parsing: "2048") == nil && FlashGeometry(parsing: "64+2048") == nil)
        // The plain image is not mistaken for a dump with spare bytes.
        #expect(try Self.attach("fs-ubi.img").spare == nil)
    }

    @Test("PartitionTable.read names the volumes of a UBI image")
    func table() throws {
        let table = try PartitionTable.read(from: try FileSource(path: try TestImages.path("fs-ubi.img")))
        #expect(table.kind == .ubi)
        #expect(table.partitions.compactMap(\.name) == Self.volumes.map(\.1))
    }

    @Test("damaged headers: garbage and truncated UBI images fail or attach without crashing")
    func hostile() throws {
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: try TestImages.path("fs-ubi.img"))))
        // Volume table LEBs both damaged: an error naming the volume table.
        for (peb, _) in bytes.indices.striding(by: 128 << 10).enumerated() {
            let base = peb * (128 << 10)
            if bytes[(base + 2048 + 8)..<(base + 2048 + 12)].elementsEqual([0x7F, 0xFF, 0xEF, 0xFF]) { bytes[base + 4096 + 20] ^= 0xFF }
        }
        #expect(throws: FWError.self) { try UBIImage.attach(MemorySource(bytes)) }
        let cut = Array(bytes.prefix(300_000))
        _ = try? UBIImage.attach(MemorySource(cut))   // may throw (no volume table); must not crash
        // One PEB's EC header alone, shorter than its data offset: an error, not an underflow.
        #expect(throws: FWError.self) { try UBIImage.attach(MemorySource(Array(bytes.prefix(3000)))) }
    }

    /// The volume table rewritten (record CRCs made right) to claim 2^32-1 reserved PEBs and a
    /// data_pad larger than a LEB: attaching allocates nothing by those numbers and opening the
    /// volume gives an error, not an arithmetic trap.
    @Test("a volume table claiming 2^32-1 PEBs and a data_pad past the LEB")
    func hostileVolumeTable() throws {
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: try TestImages.path("fs-ubi.img"))))
        let peb = 128 << 10
        for base in stride(from: 0, to: bytes.count, by: peb)
        where bytes[(base + 2048 + 8)..<(base + 2048 + 12)].elementsEqual([0x7F, 0xFF, 0xEF, 0xFF]) {
            for (record, field, value) in [(1, 0, UInt32.max), (2, 8, UInt32(1 << 20))] {   // reserved_pebs, data_pad
                let at = base + 4096 + record * 172
                for i in 0..<4 { bytes[at + field + i] = UInt8(truncatingIfNeeded: value >> (24 - 8 * UInt32(i))) }
                let crc = CRC32.kernel(bytes[at..<(at + 168)], seed: 0xFFFF_FFFF)
                for i in 0..<4 { bytes[at + 168 + i] = UInt8(truncatingIfNeeded: crc >> (24 - 8 * UInt32(i))) }
            }
        }
        let ubi = try #require(try UBIImage.attach(MemorySource(bytes)))
        #expect(ubi.volumes[1].reservedPEBs == UInt32.max)
        let huge = try ubi.volume(1, place: FWError.Place(disk: "hostile"))
        #expect(huge.size == UInt64(UInt32.max) * ubi.lebSize)
        #expect(try huge.bytes(at: huge.size - 16, count: 16) == [UInt8](repeating: 0xFF, count: 16))
        #expect(throws: FWError.self) { try ubi.volume(2, place: FWError.Place(disk: "hostile")) }
        _ = ubi.partitionTable()
    }
}

extension Range where Bound == Int {
    func striding(by step: Int) -> StrideTo<Int> { stride(from: lowerBound, to: upperBound, by: step) }
}
