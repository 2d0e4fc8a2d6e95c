import DiskImage
import FileSystemBtrfs
import FileSystems
import Foundation
import TestSupport
import Testing

/// A hot snapshot of a mounted btrfs whose last changes were fsync'd into the log tree
/// (images/disks/hot-btrfs.sh), against the kernel's two views of it: the last commit
/// (`ro,rescue=nologreplay`) and the replayed filesystem (a writable copy mounted).
@Suite("btrfs log tree", .enabled(if: (try? TestImages.path("hot-btrfs.img")) != nil,   // a probe: a missing image skips
                                  "hot-btrfs.img not built (needs root, loop devices and btrfs)"))
struct BtrfsLogTreeTests {
    static func open() throws -> BtrfsReader {
        let path = try TestImages.path("hot-btrfs.img")
        return try BtrfsReader(source: try FileSource(path: path), name: path)
    }

    @Test("the snapshot has a log tree, and the kernel's replay differs from the last commit")
    func snapshotNeedsReplay() throws {
        #expect(try Self.open().superBlock.logTree != 0)
        let committed = try Manifest.load("hot-btrfs.committed.manifest"), replayed = try Manifest.load("hot-btrfs.manifest")
        let diffs = Manifest.differences(expected: replayed, actual: committed)
        #expect(diffs.contains { $0.contains("srv/new-file") } && diffs.contains { $0.contains("etc/renamed") }, "\(diffs)")
    }

    @Test("the reader's view equals the kernel's view of the last commit, every field")
    func committedState() throws {
        let (entries, problems) = try Manifest.of(try Self.open())
        #expect(problems.isEmpty, "\(problems)")
        let diffs = Manifest.differences(expected: try Manifest.load("hot-btrfs.committed.manifest"), actual: entries)
        #expect(diffs.isEmpty, "\(diffs.prefix(20).joined(separator: "\n"))")
    }
}
