import FirmwareAssembler
import Foundation
import TestSupport
import Testing

/// The btrfs log tree of a hot snapshot (images/disks/hot-btrfs.sh; the reader's view is checked
/// in FileSystemsTests/BtrfsLogTreeTests.swift) as the jobs report it.
@Suite("btrfs log tree: jobs", .enabled(if: (try? TestImages.path("hot-btrfs.img")) != nil,   // a probe: a missing image skips
                                        "hot-btrfs.img not built (needs root, loop devices and btrfs)"))
struct BtrfsLogTreeEndToEndTests {
    @Test("extract replays the log without a word; with --no-replay it says the log tree was not replayed")
    func warning() throws {
        let disk = try Disk(path: try TestImages.path("hot-btrfs.img"))
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("hot-btrfs-\(UUID().uuidString).tar").path
        defer { _ = try? FileManager.default.removeItem(atPath: out) }   // cleanup of a scratch file
        let replayed = try disk.extract(ExtractRequest(partition: "1", output: OutputRequest(output: out)))
        #expect(replayed.warnings == [], "\(replayed.warnings)")
        var request = ExtractRequest(partition: "1", output: OutputRequest(output: out))
        request.source.noReplay = true
        let committed = try disk.extract(request)
        #expect(committed.warnings.contains { $0.hasPrefix("btrfs log tree: not replayed (--no-replay)") }, "\(committed.warnings)")
    }

    @Test("inspect --json: log_tree and what the replay did (log_replay)")
    func inspect() throws {
        let btrfs = try #require(try Disk(path: try TestImages.path("hot-btrfs-names.img")).inspect().partitions.first?.filesystem?.btrfs)
        #expect(btrfs.logTree)
        let replay = try #require(btrfs.logReplay)
        #expect(replay.replayed && replay.subvolumes == 1 && replay.items > 10 && replay.warnings.isEmpty, "\(replay)")
    }

    @Test("diff hashes replayed files and reports a data checksum mismatch as a warning of the damaged side")
    func diffChecksumWarning() throws {
        let image = try TestImages.path("hot-btrfs-extents.img")
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("hot-btrfs-diff-\(UUID().uuidString).img").path
        try TestImages.run(["cp", "--sparse=always", image, copy])
        defer { _ = try? FileManager.default.removeItem(atPath: copy) }   // cleanup of a scratch file
        let tree = try Disk(path: image).tree(BrowseRequest(partition: "1"))
        let block = try tree.read("/var/new.bin").prefix(4096)
        try TestImages.flipByte(10, ofBlock: Array(block), in: copy)
        var changes: [TreeChange] = []
        let summary = try Disk.diff(DiffRequest(tree: BrowseRequest(source: SourceRequest(disk: image), partition: "1"), other: copy)) {
            changes.append($0)
        }
        #expect(changes.map(\.path) == ["/var/new.bin"] && changes.first?.fields == ["content"], "\(changes)")
        #expect(summary.problems.isEmpty, "\(summary.problems)")
        let warning = try #require(summary.warnings.first, "\(summary.warnings)")
        #expect(summary.warnings.count == 1 && warning.code == .readError && warning.place?.hasPrefix(copy) == true
                && warning.place?.hasSuffix("/var/new.bin") == true && warning.message.contains("checksum"), "\(warning)")
    }
}
