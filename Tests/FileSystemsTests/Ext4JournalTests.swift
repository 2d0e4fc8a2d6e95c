import DiskImage
@testable import FileSystemExt4
import FileSystems
import Foundation
import Testing
import TestSupport

/// The hot snapshots built by images/disks/hot-ext4.sh: ext3/ext4 filesystems copied while the
/// kernel had them mounted, each with the kernel's own view after recovery (NAME.manifest).
enum HotImages {
    static let all = ["hot-ext4.img", "hot-ext4-32.img", "hot-ext4-wrap.img", "hot-ext3.img", "hot-ext4-dj.img"]

    /// The built image: in FWA_IMAGES, else in this checkout's images/out (the recipe is new, a
    /// shared image directory may not have it yet).
    static func path(_ name: String) -> String? {
        if let p = try? TestImages.path(name) { return p }
        let local = TestImages.repositoryRoot.appendingPathComponent("images/out/\(name)").path
        return FileManager.default.fileExists(atPath: local) ? local : nil
    }

    /// The recipe needs root and loop devices; without them it builds nothing and these tests skip.
    static var available: Bool { path("hot-ext4.img") != nil }

    static func manifest(_ image: String) throws -> [ManifestEntry] {
        let name = image.replacingOccurrences(of: ".img", with: ".manifest")
        let path = try #require(HotImages.path(name))
        return try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map {
            try JSONDecoder().decode(ManifestEntry.self, from: Data($0.utf8))
        }
    }

    static func open(_ image: String, replay: Bool = true) throws -> Ext4Reader {
        let path = try #require(HotImages.path(image))
        return try Ext4Reader(source: FileSource(path: path), name: image, replayJournal: replay)
    }
}

@Suite("Ext4 journal replay: hot snapshots made by the kernel", .enabled(if: HotImages.available,
    "hot snapshots not built (images/disks/hot-ext4.sh needs root and loop devices)"))
struct Ext4JournalTests {
    @Test("the replayed view equals the kernel's mount of the snapshot, every field", arguments: HotImages.all)
    func matchesKernel(image: String) throws {
        let reader = try HotImages.open(image)
        #expect(reader.needsRecovery)
        let journal = try #require(reader.journal)
        #expect(journal.replayed && journal.transactions > 0 && journal.blocks > 0)
        #expect(journal.warnings.isEmpty, "\(journal.warnings)")
        #expect(journal.orphans == 1, "the snapshot was taken with one file open and unlinked")
        let (actual, problems) = try Manifest.of(reader)
        #expect(problems.isEmpty, "\(problems)")
        let expected = try HotImages.manifest(image)
        // The kernel's view has what the changes made (so the comparison cannot pass vacuously).
        #expect(expected.filter { $0.path.hasPrefix("docker/containers/abc/") }.count == 50)
        #expect(expected.contains { $0.path == "renamed-dir/file" } && !expected.contains { $0.path.hasPrefix("old-dir") })
        let diffs = Manifest.differences(expected: expected, actual: actual)
        #expect(diffs.isEmpty, "\(diffs.prefix(20).joined(separator: "\n"))")
        // Without replay the view is not the kernel's: the snapshot really needed recovery.
        let (stale, _) = try Manifest.of(try HotImages.open(image, replay: false))
        #expect(!Manifest.differences(expected: expected, actual: stale).isEmpty)
    }

    @Test("fast commits: the full commits and the fast commit after them replayed, as the kernel does")
    func fastCommit() throws {
        guard HotImages.path("hot-ext4-fc.img") != nil else { return }
        let reader = try HotImages.open("hot-ext4-fc.img")
        let journal = try #require(reader.journal)
        #expect(journal.replayed && journal.transactions > 0 && journal.fastCommits > 0)
        #expect(journal.warnings.isEmpty, "\(journal.warnings)")
        let (actual, problems) = try Manifest.of(reader)
        #expect(problems.isEmpty, "\(problems)")
        var expected = try HotImages.manifest("hot-ext4-fc.img")
        // etc/fc-file is only in the fast commit (the comparison is not vacuous).
        #expect(expected.contains { $0.path == "etc/fc-file" })
        #expect(!(try Manifest.of(try HotImages.open("hot-ext4-fc.img", replay: false), readContents: false).0).contains { $0.path == "etc/fc-file" })
        // The kernel's replay of the new entry stamps its directory with the time of that mount
        // (__ext4_link); the archive keeps the directory's stored mtime.
        let etc = try #require(expected.firstIndex { $0.path == "etc" })
        let mine = try #require(actual.first { $0.path == "etc" })
        #expect((mine.mtime, mine.mtime_ns) <= (expected[etc].mtime, expected[etc].mtime_ns))
        expected[etc].mtime = mine.mtime
        expected[etc].mtime_ns = mine.mtime_ns
        let diffs = Manifest.differences(expected: expected, actual: actual)
        #expect(diffs.isEmpty, "\(diffs.prefix(20).joined(separator: "\n"))")
    }

    @Test("--no-replay reads the stale on-disk state", arguments: ["hot-ext4.img", "hot-ext3.img"])
    func noReplay(image: String) throws {
        let reader = try HotImages.open(image, replay: false)
        let journal = try #require(reader.journal)
        #expect(!journal.replayed && journal.blocks == 0 && !journal.warnings.isEmpty)
        let (actual, _) = try Manifest.of(reader, readContents: false)
        #expect(!actual.contains { $0.path.hasPrefix("docker/containers/abc/") })
    }

    @Test("the wrap snapshot's log really wraps around the end of its 1 MiB journal")
    func wraps() throws {
        let reader = try HotImages.open("hot-ext4-wrap.img")
        let journal = try #require(reader.journal)
        // 400 commits in a 1024-block journal: more transactions than fit without wrapping.
        #expect(journal.transactions > 10)
        let path = try #require(HotImages.path("hot-ext4-wrap.img"))
        let layout = try JournalLayout(image: path)
        let source = try FileSource(path: path)
        let sequence = try ByteCursor(try source.bytes(at: UInt64(layout.offset(0)), count: 1024)).u32be(at: 24)   // s_sequence
        // A live log that wraps has blocks of the live transactions before its start position.
        let wrapped = try (1..<Int(layout.start)).contains { i in
            let c = ByteCursor(try source.bytes(at: UInt64(layout.offset(i)), count: 12))
            return try c.u32be(at: 0) == JBD2.magic && Int32(bitPattern: try c.u32be(at: 8) &- sequence) >= 0
        }
        #expect(wrapped, "no live journal block before the log's start \(layout.start)")
    }
}

/// Where the journal of a snapshot is, block by block, and where its live log starts.
struct JournalLayout {
    var physical: [UInt64]
    var blockSize: Int
    var blocks: UInt32 { UInt32(physical.count) }
    var start: UInt32

    init(image: String) throws {
        let source = try FileSource(path: image)
        (physical, blockSize) = try Ext4Reader.journalLayout(of: source)
        let sb = try source.bytes(at: physical[0] * UInt64(blockSize), count: 1024)
        start = try ByteCursor(sb).u32be(at: 28)   // s_start
    }

    /// Byte offset in the image of journal block `i`.
    func offset(_ i: Int) -> Int { Int(physical[i]) * blockSize }
}

@Suite("Ext4 journal replay: damaged journals", .enabled(if: HotImages.available,
    "hot snapshots not built (images/disks/hot-ext4.sh needs root and loop devices)"))
struct Ext4JournalCorruptionTests {
    /// The image in memory with `change` applied to its journal (journal-relative block, bytes).
    static func damaged(_ image: String, _ change: (inout [UInt8], JournalLayout) throws -> Void) throws -> (Ext4Reader?, Error?) {
        let path = try #require(HotImages.path(image))
        let layout = try JournalLayout(image: path)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        try change(&bytes, layout)
        do {
            return (try Ext4Reader(source: MemorySource(bytes, name: image), name: image), nil)
        } catch {
            return (nil, error)
        }
    }

    /// Offsets of journal blocks of a type (1 descriptor, 2 commit, 5 revoke) in the live log.
    static func blocks(ofType type: UInt32, _ bytes: [UInt8], _ l: JournalLayout) -> [Int] {
        (1..<Int(l.blocks)).compactMap { i in
            let o = l.offset(i)
            let c = ByteCursor(Array(bytes[o..<(o + 12)]))
            guard (try? c.u32be(at: 0)) == JBD2.magic, (try? c.u32be(at: 4)) == type else { return nil }
            return o
        }
    }

    @Test("a journal superblock with a bad magic: not replayed, a warning, the on-disk state")
    func badMagic() throws {
        let (reader, error) = try Self.damaged("hot-ext4.img") { b, l in b[l.offset(0)] ^= 0x01 }
        let r = try #require(reader, "\(String(describing: error))")
        #expect(r.journal?.replayed == false)
        #expect(r.journal?.warnings.contains { $0.contains("journal superblock") } == true)
    }

    @Test("a flipped bit in a descriptor, commit or revoke block (csum v3): a warning and a result",
          arguments: [(UInt32(1), 40), (UInt32(2), 60), (UInt32(5), 20)])
    func flippedBlock(type: UInt32, offset: Int) throws {
        var found = false
        let (reader, error) = try Self.damaged("hot-ext4.img") { b, l in
            let all = Self.blocks(ofType: type, b, l)
            guard let last = all.last else { return }
            found = true
            b[last + offset] ^= 0x10
        }
        guard found else { return }   // this snapshot has no block of that type
        let r = try #require(reader, "\(String(describing: error))")
        let journal = try #require(r.journal)
        #expect(!journal.warnings.isEmpty, "a damaged block of type \(type) went unnoticed")
    }

    @Test("a descriptor pointing outside the filesystem (no checksums): replay ends before it, with a warning")
    func outsideTarget() throws {
        let (reader, error) = try Self.damaged("hot-ext4-32.img") { b, l in
            guard let d = Self.blocks(ofType: 1, b, l).last else { return }
            // First tag's t_blocknr (big-endian, at 12): far past the end.
            b[d + 12] = 0x7F
        }
        let r = try #require(reader, "\(String(describing: error))")
        #expect(r.journal?.warnings.contains { $0.contains("outside") } == true)
    }

    @Test("a hole in the journal inode (ext3, block map): replay ends before the transaction that needs it")
    func journalHole() throws {
        let path = try #require(HotImages.path("hot-ext3.img"))
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("hole-\(UUID().uuidString).img").path
        defer { try? FileManager.default.removeItem(atPath: copy) }
        try FileManager.default.copyItem(atPath: path, toPath: copy)
        // Journal block 2 is a data block of the first transaction (the log starts at block 1).
        try TestImages.run(["debugfs", "-w", "-R", "sif <8> block[2] 0", copy])
        let reader = try Ext4Reader(source: FileSource(path: copy), name: "hole")
        let journal = try #require(reader.journal)
        #expect(journal.transactions == 0 && !journal.replayed)
        #expect(journal.warnings.contains { $0.contains("hole") }, "\(journal.warnings)")
    }

    @Test("random bit flips in the journal never crash or hang", arguments: ["hot-ext4.img", "hot-ext4-32.img", "hot-ext4-wrap.img"])
    func randomFlips(image: String) throws {
        let path = try #require(HotImages.path(image))
        let layout = try JournalLayout(image: path)
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        var rng = SystemRandomNumberGenerator()
        let live = Int(layout.start)..<min(Int(layout.blocks), Int(layout.start) + 64)
        for _ in 0..<12 {
            var bytes = original
            for _ in 0..<8 {
                let block = Bool.random(using: &rng) ? 0 : Int.random(in: live, using: &rng)
                let o = layout.offset(block) + Int.random(in: 0..<layout.blockSize, using: &rng)
                bytes[o] ^= UInt8(1 << Int.random(in: 0..<8, using: &rng))
            }
            if let reader = try? Ext4Reader(source: MemorySource(bytes, name: image), name: image) {
                _ = try? Manifest.of(reader)
            }
        }
    }
}
