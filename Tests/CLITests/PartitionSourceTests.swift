import DiskImage
@testable import FirmwareAssembler
import TestSupport
import Testing

/// The facade's partition byte ranges (what the filesystem readers will be given).
@Suite struct PartitionSourceTests {
    @Test func dataPartitionSliceStartsWithItsExt4Superblock() throws {
        let disk = try Disk(path: try TestImages.path("haos-gpt.img"))
        let partition = try #require(try disk.inspect().partitions.first { $0.index == 8 })
        // By number and by GPT name: one selector, the same slice.
        for selector in ["8", "hassos-data"] {
            let (source, description) = try disk.partitionSource(selector)
            #expect(partition.name == "hassos-data")
            #expect(source.size == partition.size)
            #expect(description.hasSuffix("partition 8 (hassos-data)"))
        }
        let (source, _) = try disk.partitionSource("8")
        // ext4 superblock magic 0xEF53 at byte 1024 + 0x38 of the partition.
        #expect(try source.bytes(at: 1024 + 0x38, count: 2) == [0x53, 0xEF])
    }

    @Test func missingPartitionIsNotFound() throws {
        let disk = try Disk(path: try TestImages.path("rpi-mbr.img"))
        let error = try #require(throws: FWError.self) { try disk.partitionSource("5") }
        #expect(error.code == .notFound)
        #expect(error.description.contains("rpi-mbr.img"))
    }
}
