import Archive
import DiskImage
import FileSystemExt4
import FileSystems
import Foundation
import TestSupport
import Testing

/// Unit tests for the crashes and escapes the corpus found (see docs/limits.md).
@Suite("Hostile disks: regressions")
struct RegressionTests {
    /// ext4-huge: an i_size of 2^63-1 was archived as an endless stream of zeros (the corpus run
    /// hit the 60 s limit); now metadata(of:) reports it as corrupt for that one path.
    @Test func ext4SizeBeyondTheBlockMapIsAnErrorForThatFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hostile-ext4-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + "/tree", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data("ok\n".utf8).write(to: URL(fileURLWithPath: dir + "/tree/huge"))
        try Data("ok\n".utf8).write(to: URL(fileURLWithPath: dir + "/tree/fine"))
        let image = dir + "/fs.img"
        try TestImages.run(["mkfs.ext4", "-q", "-F", "-b", "1024", "-d", dir + "/tree", image, "4096"])
        try TestImages.run(["debugfs", "-w", "-R", "sif /huge size 0x7fffffffffffffff", image])
        let reader = try Ext4Reader(source: FileSource(path: image), name: "huge")
        let entries = try reader.directoryEntries(of: reader.rootInode)
        let huge = try #require(entries.first { $0.name == Array("huge".utf8) }).inode
        let fine = try #require(entries.first { $0.name == Array("fine".utf8) }).inode
        #expect(throws: FWError.self) { try reader.metadata(of: huge) }
        #expect(try reader.metadata(of: fine).size == 3)
        // The walk lists the problem and goes on.
        var walk = TreeWalk(reader)
        var names: [String] = []
        while let e = walk.next() { names.append(String(decoding: e.path, as: UTF8.self)) }
        #expect(names.contains("fine") && !names.contains("huge"))
        #expect(walk.problems.contains { $0.path == "/huge" })
    }

    /// ext4-names: entries named "../../../escape" and "/abs" became members "./srv/../../../escape"
    /// and "./srv//abs". The namespace now skips such names and TarEntry refuses such paths.
    @Test(arguments: ["../escape", "a/../../b", "/abs", "a//b", "a/./b", ".", "..", "a\u{0}b", "a/"])
    func tarEntryRefusesPathsThatAreNotNormalised(_ path: String) {
        #expect(!TarEntry.isNormalized(Array(path.utf8)))
        let meta = Metadata(type: .regular, permissions: 0o644, uid: 0, gid: 0, size: 0,
                            mtime: Timestamp(seconds: 0), linkCount: 1, inode: 1)
        #expect(throws: FWError.self) { try TarEntry(path: Array(path.utf8), metadata: meta) }
    }

    @Test(arguments: ["", "etc", "etc/fstab", "a/..b/c.", "...", "x y/z"])
    func tarEntryAcceptsNormalisedPaths(_ path: String) {
        #expect(TarEntry.isNormalized(Array(path.utf8)))
    }
}
