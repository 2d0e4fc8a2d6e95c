import DiskImage
import FileSystemUBIFS
import FileSystems
import Foundation
import PartitionTable
import Testing
import TestSupport

/// The images of images/disks/fs-ubi.sh: mkfs.ubifs with each compressor from one source tree,
/// and the UBI image ubinize made of them.
enum UBIFSFixtures {
    static let compressors = ["lzo", "zlib", "zstd", "none"]

    static func manifest() throws -> [ManifestEntry] {
        return try Manifest.load("fs-ubi.manifest")
    }

    /// UBIFS keeps every field the manifest has, but mkfs.ubifs 2.1.5 (Debian bookworm) writes
    /// times in whole seconds and no xattrs (it never lists the source's xattrs; its -a option
    /// sets one on the source tree instead), so those two are left out of the comparison: mode,
    /// owner, seconds, sizes, data, symlink targets, 32-bit device numbers and hardlinks remain.
    static func compare(_ reader: UBIFSReader) throws {
        let (entries, problems) = try Manifest.of(reader)
        #expect(problems.isEmpty, "\(problems)")
        let expected = try manifest()
        #expect(expected.count > 40)
        #expect(entries.allSatisfy { $0.xattrs.isEmpty && $0.mtime_ns == 0 })
        let diffs = Manifest.differences(expected: expected, actual: entries, ignoring: [.mtimeNanoseconds, .xattrs])
        #expect(diffs.isEmpty, "\(diffs.joined(separator: "\n"))")
    }
}

@Suite("UBIFS reader")
struct UBIFSReaderTests {
    @Test("mkfs.ubifs images, each compressor, match the source tree", arguments: UBIFSFixtures.compressors)
    func image(compressor: String) throws {
        let path = try TestImages.path("fs-ubi-\(compressor).ubifs")
        let reader = try UBIFSReader(source: try FileSource(path: path), name: path)
        #expect(reader.superblock.lebSize == 126_976)
        #expect(reader.uncommittedBuds == 0)
        try UBIFSFixtures.compare(reader)
    }

    @Test("the same filesystems read through the UBI volumes of ubinize's image and of the worn-flash image",
          arguments: ["fs-ubi.img", "fs-ubi-worn.img"])
    func throughUBI(image: String) throws {
        let ubi = try #require(try UBIImage.attach(try FileSource(path: try TestImages.path(image))))
        for (id, compressor) in UBIFSFixtures.compressors.enumerated() {
            let volume = try ubi.volume(id + 1, place: FWError.Place(disk: image, partition: "data-\(compressor)"))
            #expect(FileSystemKind.detect(try volume.bytes(at: 0, count: 4096)) == .ubifs)
            try UBIFSFixtures.compare(try UBIFSReader(source: volume, name: "\(image) data-\(compressor)"))
        }
    }

    @Test("damaged index and data nodes give errors naming the filesystem, never a crash")
    func damage() throws {
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: try TestImages.path("fs-ubi-none.ubifs"))))
        // Flip one byte in every 4 KiB of the image after the superblock and masters in turn
        // (a node's CRC then fails): opening or walking fails with FWError or reads around it.
        for offset in stride(from: 3 * 126_976, to: bytes.count, by: 65_536) {
            var damaged = bytes
            damaged[offset + 100] ^= 0x5A
            do {
                let reader = try UBIFSReader(source: MemorySource(damaged), name: "damaged")
                _ = try Manifest.of(reader)
            } catch is FWError {
            }
        }
        #expect(throws: FWError.self) { try UBIFSReader(source: MemorySource(Array(bytes.prefix(126_976 * 2))), name: "cut") }
    }
}
