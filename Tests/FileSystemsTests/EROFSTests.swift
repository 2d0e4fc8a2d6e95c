import DiskImage
import FileSystemEROFS
import FileSystems
import Foundation
import Testing
import TestSupport

/// The images of images/disks/fs-erofs.sh, made by mkfs.erofs 1.5 from one source tree.
enum EROFSFixtures {
    /// Extended-inode images: every field kept, compared with the source tree as is.
    static let extendedVariants = ["plain", "noinline", "lz4", "lz4-legacy", "lz4hc-big", "ztail"]
    /// Compact-inode images built with -T1700000000: mtime is the build time for every entry.
    static let compactVariants = ["compact", "ztail-compact"]
    /// Chunk-based images: the tree plus var/holes.img (data with holes).
    static let chunkVariants = ["chunk", "chunkidx"]

    static func image(_ variant: String) throws -> String { try TestImages.path("fs-erofs-\(variant).img") }

    static func open(_ variant: String) throws -> EROFSReader {
        let path = try image(variant)
        return try EROFSReader(source: try FileSource(path: path), name: path)
    }

    static func manifest(_ name: String) throws -> [ManifestEntry] {
        let text = try String(contentsOfFile: try TestImages.path(name), encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONDecoder().decode(ManifestEntry.self, from: Data($0.utf8)) }
    }

    static func compare(_ reader: EROFSReader, with expected: [ManifestEntry], ignoring: Set<Manifest.Field> = []) throws -> [ManifestEntry] {
        let (entries, problems) = try Manifest.of(reader)
        #expect(problems.isEmpty, "\(problems)")
        #expect(expected.count > 40)
        let diffs = Manifest.differences(expected: expected, actual: entries, ignoring: ignoring)
        #expect(diffs.isEmpty, "\(diffs.joined(separator: "\n"))")
        return entries
    }
}

@Suite("EROFS reader")
struct EROFSReaderTests {
    @Test("extended inodes: every field matches the source tree", arguments: EROFSFixtures.extendedVariants)
    func extendedMatchesSource(variant: String) throws {
        let reader = try EROFSFixtures.open(variant)
        _ = try EROFSFixtures.compare(reader, with: try EROFSFixtures.manifest("fs-erofs.manifest"))
    }

    @Test("compact inodes: every field but mtime matches; mtime is the superblock build time", arguments: EROFSFixtures.compactVariants)
    func compactMatchesSource(variant: String) throws {
        let reader = try EROFSFixtures.open(variant)
        let entries = try EROFSFixtures.compare(reader, with: try EROFSFixtures.manifest("fs-erofs.manifest"), ignoring: [.mtime])
        #expect(reader.superBlock.buildTime == 1_700_000_000)
        for e in entries {
            #expect(e.mtime == 1_700_000_000 && e.mtime_ns == 0, "\(e.path)")
        }
    }

    @Test("chunk-based files, holes included, match the source tree", arguments: EROFSFixtures.chunkVariants)
    func chunkMatchesSource(variant: String) throws {
        let reader = try EROFSFixtures.open(variant)
        let entries = try EROFSFixtures.compare(reader, with: try EROFSFixtures.manifest("fs-erofs-chunk.manifest"))
        #expect(entries.contains { $0.path == "var/holes.img" && $0.size == 4 << 20 })
    }
}
