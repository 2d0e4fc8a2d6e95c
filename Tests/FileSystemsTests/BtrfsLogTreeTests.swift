import DiskImage
import FileSystemBtrfs
import FileSystems
import Foundation
import TestSupport
import Testing

/// Hot snapshots of a mounted btrfs whose last changes were fsync'd into the log tree
/// (images/disks/hot-btrfs.sh: names, extents, links and xattrs), against the kernel's two views
/// of each: the last commit (`ro,rescue=nologreplay`) and the replayed filesystem (a writable
/// copy mounted).
@Suite("btrfs log tree", .enabled(if: (try? TestImages.path("hot-btrfs.img")) != nil,   // a probe: a missing image skips
                                  "hot-btrfs.img not built (needs root, loop devices and btrfs)"))
struct BtrfsLogTreeTests {
    static let variants = ["hot-btrfs", "hot-btrfs-extents", "hot-btrfs-names", "hot-btrfs-many"]

    static func open(_ name: String, replayLog: Bool = true) throws -> BtrfsReader {
        let path = try TestImages.path("\(name).img")
        return try BtrfsReader(source: try FileSource(path: path), name: path, replayLog: replayLog)
    }

    static func expectSame(_ reader: BtrfsReader, _ manifest: String) throws {
        let (entries, problems) = try Manifest.of(reader)
        #expect(problems.isEmpty, "\(problems)")
        let diffs = Manifest.differences(expected: try Manifest.load(manifest), actual: entries)
        #expect(diffs.isEmpty, "\(diffs.prefix(20).joined(separator: "\n"))")
    }

    @Test("each snapshot has a log tree, and the kernel's replay differs from the last commit", arguments: variants)
    func snapshotNeedsReplay(name: String) throws {
        #expect(try Self.open(name).superBlock.logTree != 0)
        let committed = try Manifest.load("\(name).committed.manifest"), replayed = try Manifest.load("\(name).manifest")
        #expect(!Manifest.differences(expected: replayed, actual: committed).isEmpty)
    }

    @Test("replayed, the reader's view equals the kernel's after its own replay, every field", arguments: variants)
    func replayed(name: String) throws {
        let reader = try Self.open(name)
        #expect(reader.logReplay?.replayed == true && reader.logReplay?.warnings == [], "\(String(describing: reader.logReplay))")
        try Self.expectSame(reader, "\(name).manifest")
    }

    @Test("not replayed (--no-replay), the reader's view equals the kernel's view of the last commit, every field", arguments: variants)
    func committedState(name: String) throws {
        let reader = try Self.open(name, replayLog: false)
        #expect(reader.logReplay?.replayed == false && reader.logReplay?.warnings.first?.hasPrefix("not replayed (--no-replay)") == true)
        try Self.expectSame(reader, "\(name).committed.manifest")
    }

    @Test("the logged data checksums are replayed: a byte flipped in a file that only the log holds is a checksum warning")
    func loggedChecksums() throws {
        let image = try TestImages.path("hot-btrfs-extents.img")
        let reader = try Self.open("hot-btrfs-extents")
        let inode = try #require(try reader.lookup("/var/new.bin"))
        let block = Array(try reader.openFile(inode).readPrefix(4096))
        // The block found by content in a copy of the image, one byte of it flipped.
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("hot-btrfs-csum-\(UUID().uuidString).img").path
        try TestImages.run(["cp", "--sparse=always", image, copy])
        defer { _ = try? FileManager.default.removeItem(atPath: copy) }   // cleanup of a scratch file
        try TestImages.flipByte(100, ofBlock: block, in: copy)
        let damaged = try BtrfsReader(source: try FileSource(path: copy), name: copy)
        #expect(damaged.logReplay?.replayed == true)
        let file = try damaged.openFile(try #require(try damaged.lookup("/var/new.bin")))
        _ = try file.readPrefix(Int(file.size))
        #expect(file.warnings.contains { $0.contains("checksum") }, "\(file.warnings)")
        // Without the replay the file is not there at all.
        #expect(try Self.open("hot-btrfs-extents", replayLog: false).lookup("/var/new.bin") == nil)
    }
}
