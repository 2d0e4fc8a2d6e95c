import DiskImage
@testable import FileSystemExt4
import FileSystems
import Foundation
import Testing
import TestSupport

/// The snapshots of images/disks/hot-ext4-power.sh (the journal cases real power loss makes), each
/// with the kernel's view of a writable copy (NAME.manifest) and what the recipe did (NAME.info).
enum PowerLossImages {
    static var available: Bool { HotImages.path("hot-ext4-torn.img") != nil }

    /// NAME.info: lines "key value...".
    static func info(_ image: String) throws -> [[String]] {
        let path = try #require(HotImages.path(image.replacingOccurrences(of: ".img", with: ".info")))
        return try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
    }

    /// The reader's walk compared with the kernel's view, every field.
    static func compare(_ image: String, _ reader: Ext4Reader, expected: [ManifestEntry]? = nil) throws -> [String] {
        let (actual, problems) = try Manifest.of(reader)
        #expect(problems.isEmpty, "\(problems)")
        return Manifest.differences(expected: try expected ?? HotImages.manifest(image), actual: actual)
    }
}

@Suite("Ext4 journal replay: power-loss cases made by the kernel", .enabled(if: PowerLossImages.available,
    "hot-ext4-power snapshots not built (images/disks/hot-ext4-power.sh needs root and loop devices)"))
struct Ext4PowerLossTests {
    @Test("torn commit blocks (header intact, tail overwritten): replayed with the later transactions, as the kernel does")
    func tornCommit() throws {
        let torn = try PowerLossImages.info("hot-ext4-torn.img").filter { $0.first == "torn" }.compactMap { UInt32($0[1]) }
        #expect(torn.count == 2)
        let reader = try HotImages.open("hot-ext4-torn.img")
        let journal = try #require(reader.journal)
        for sequence in torn {
            #expect(journal.warnings.contains { $0.contains("transaction \(sequence) has an incomplete commit block") }, "\(journal.warnings)")
        }
        #expect(!journal.warnings.contains { $0.contains("fails") }, "\(journal.warnings)")
        #expect(journal.warnings.count == torn.count)
        let expected = try HotImages.manifest("hot-ext4-torn.img")
        // What the torn transactions carry is in the kernel's view (the comparison is not vacuous).
        #expect(expected.contains { $0.path == "t3/f10" } && expected.contains { $0.path == "t2/f10" })
        let diffs = try PowerLossImages.compare("hot-ext4-torn.img", reader, expected: expected)
        #expect(diffs.isEmpty, "\(diffs.prefix(20).joined(separator: "\n"))")
    }

    @Test("a torn commit block whose header is damaged too: replay ends before that transaction")
    func tornHeader() throws {
        let torn = try PowerLossImages.info("hot-ext4-torn.img").filter { $0.first == "torn" }
        let first = try #require(torn.first.flatMap { UInt32($0[1]) })
        let block = try #require(torn.first.flatMap { Int($0[2]) })
        let (reader, error) = try Ext4JournalCorruptionTests.damaged("hot-ext4-torn.img") { b, l in
            b[l.offset(block) + 14] ^= 0x01   // h_padding, inside the 64-byte header (not the commit time)
        }
        let r = try #require(reader, "\(String(describing: error))")
        let journal = try #require(r.journal)
        #expect(journal.warnings.contains { $0.contains("transaction \(first) fails its commit checksum") }, "\(journal.warnings)")
        let (actual, _) = try Manifest.of(r, readContents: false)
        #expect(!actual.contains { $0.path == "t3/f10" })
    }

    @Test("orphans at the copy: an unlinked open file and a truncate in progress, as the kernel leaves them",
          arguments: ["hot-ext4-trunc.img", "hot-ext4-orphanfile.img"])
    func orphans(image: String) throws {
        let reader = try HotImages.open(image)
        let journal = try #require(reader.journal)
        #expect(journal.warnings.isEmpty, "\(journal.warnings)")
        let info = try PowerLossImages.info(image)
        let truncating = info.first { $0.first == "truncating" && $0.count == 3 }
        // The recipe checked the kernel's log: one orphan deleted (and one truncate cleaned up).
        #expect(journal.orphans == (truncating == nil ? 1 : 2))
        if image == "hot-ext4-orphanfile.img" {
            // The orphans are in the orphan file, not on the list.
            let sb = ByteCursor(try reader.source.bytes(at: 1024, count: 1024))
            #expect(try sb.u32le(at: 0xE8) == 0, "s_last_orphan")
        }
        var expected = try HotImages.manifest(image)
        #expect(!expected.contains { $0.path == "var/orphan" })
        if let truncating {
            let path = truncating[1]
            let index = try #require(expected.firstIndex { $0.path == path })
            #expect(expected[index].size == UInt64(truncating[2]))
            // The kernel stamps mtime/ctime with the time of its mount when it finishes the
            // truncate; the archive keeps the inode's stored times (those of the truncate call).
            let (actual, _) = try Manifest.of(reader, readContents: false)
            let mine = try #require(actual.first { $0.path == path })
            #expect((mine.mtime, mine.mtime_ns) < (expected[index].mtime, expected[index].mtime_ns))
            expected[index].mtime = mine.mtime
            expected[index].mtime_ns = mine.mtime_ns
        }
        let diffs = try PowerLossImages.compare(image, reader, expected: expected)
        #expect(diffs.isEmpty, "\(diffs.prefix(20).joined(separator: "\n"))")
    }

    @Test("a fast commit with every kind of record (append, punch, truncate, link, unlink, create, rename): the kernel's view")
    func fastCommitRecords() throws {
        let reader = try HotImages.open("hot-ext4-fc2.img")
        let journal = try #require(reader.journal)
        #expect(journal.fastCommits > 0 && journal.warnings.isEmpty, "\(journal.warnings)")
        var expected = try HotImages.manifest("hot-ext4-fc2.img")
        #expect(expected.contains { $0.path == "var/renamed" } && expected.contains { $0.path == "var/big-link" })
        #expect(!expected.contains { $0.path == "var/gone" || $0.path == "var/new" })
        let (stale, _) = try Manifest.of(try HotImages.open("hot-ext4-fc2.img", replay: false), readContents: false)
        #expect(!stale.contains { $0.path == "var/renamed" } && stale.contains { $0.path == "var/gone" })
        let (actual, problems) = try Manifest.of(reader)
        #expect(problems.isEmpty, "\(problems)")
        // The kernel's replay of the entries stamps var with the time of its mount (__ext4_link);
        // the archive keeps the stored mtime.
        let index = try #require(expected.firstIndex { $0.path == "var" })
        let mine = try #require(actual.first { $0.path == "var" })
        #expect((mine.mtime, mine.mtime_ns) <= (expected[index].mtime, expected[index].mtime_ns))
        expected[index].mtime = mine.mtime
        expected[index].mtime_ns = mine.mtime_ns
        let diffs = Manifest.differences(expected: expected, actual: actual)
        #expect(diffs.isEmpty, "\(diffs.prefix(20).joined(separator: "\n"))")
    }

    @Test("after an online grow the journal writes past the on-disk block count: all replayed, as the kernel does")
    func grow() throws {
        guard HotImages.path("hot-ext4-grow.img") != nil else {
            // The recipe says why (online resize needs CAP_SYS_RESOURCE); `staleBlockCount` covers the rule.
            return
        }
        let info = try PowerLossImages.info("hot-ext4-grow.img")
        let before = try #require(info.first { $0.first == "blocks_on_disk" }.flatMap { UInt64($0[1]) })
        let after = try #require(info.first { $0.first == "blocks_after" }.flatMap { UInt64($0[1]) })
        let reader = try HotImages.open("hot-ext4-grow.img")
        #expect(try HotImages.open("hot-ext4-grow.img", replay: false).blocksCount == before)
        #expect(reader.blocksCount == after)
        let diffs = try PowerLossImages.compare("hot-ext4-grow.img", reader)
        #expect(diffs.isEmpty, "\(diffs.prefix(20).joined(separator: "\n"))")
    }

    @Test("a superblock block count below the blocks the journal writes (a stale count): replay is bounded by the device")
    func staleBlockCount() throws {
        let image = "hot-ext4-trunc.img"
        let path = try #require(HotImages.path(image))
        let layout = try JournalLayout(image: path)
        let source = try FileSource(path: path)
        var journalBytes: [UInt8] = []
        for i in 0..<Int(layout.blocks) { journalBytes += try source.bytes(at: UInt64(layout.offset(i)), count: layout.blockSize) }
        let written = JournalParser.replay(journal: journalBytes).blocks.keys
        let highest = try #require(written.max())
        #expect(written.contains(0), "the journal carries the superblock")
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("stale-\(UUID().uuidString).img").path
        defer { try? FileManager.default.removeItem(atPath: copy) }
        try FileManager.default.copyItem(atPath: path, toPath: copy)
        // The on-disk count set below the highest journalled block, as after an online grow (-n:
        // the stale bitmaps fail their checksums until the journal is replayed).
        try TestImages.run(["debugfs", "-w", "-n", "-R", "ssv blocks_count \(highest - 1)", copy])
        let stale = try Ext4Reader(source: FileSource(path: copy), name: "stale")
        let original = try HotImages.open(image)
        #expect(try Ext4Reader(source: FileSource(path: copy), name: "stale", replayJournal: false).blocksCount == highest - 1)
        #expect(stale.journal?.transactions == original.journal?.transactions)
        #expect(stale.journal?.blocks == original.journal?.blocks)
        #expect(stale.journal?.warnings == original.journal?.warnings)
        #expect(stale.blocksCount == original.blocksCount)
        let (a, _) = try Manifest.of(stale)
        let (b, _) = try Manifest.of(original)
        #expect(Manifest.differences(expected: b, actual: a).isEmpty)
    }
}

/// e2fsprogs' own fast-commit test image (tests/j_recover_fast_commit: image.gz and what e2fsck
/// and debugfs show after its replay, `expect`), fetched at test time by
/// images/fetch-e2fsprogs-source.sh (GPL test data, never committed).
enum E2fsprogsFastCommit {
    static let directory = "/tmp/fwassemble-e2fsprogs-src"
    static let available: Bool = {
        let script = TestImages.repositoryRoot.appendingPathComponent("images/fetch-e2fsprogs-source.sh").path
        return (try? TestImages.run(["bash", script, directory])) != nil   // no network: the test skips
    }()
    static var test: String { directory + "/tests/j_recover_fast_commit" }

    /// The (inode, name) pairs debugfs's `ls DIR` printed in the expect file, "." and ".." left out.
    static func listing(_ dir: String) throws -> [(UInt64, String)] {
        let expect = try String(contentsOfFile: test + "/expect", encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        let index = try #require(expect.firstIndex { $0 == "debugfs: ls\(dir.isEmpty ? "" : " " + dir)" })
        let line = String(expect[index + 1])
        let regex = try NSRegularExpression(pattern: #"(\d+)\s+\(\d+\)\s+(\S+)"#)
        return regex.matches(in: line, range: NSRange(line.startIndex..., in: line)).compactMap { m in
            guard let i = Range(m.range(at: 1), in: line), let n = Range(m.range(at: 2), in: line),
                  let ino = UInt64(line[i]), line[n] != ".", line[n] != ".." else { return nil }
            return (ino, String(line[n]))
        }
    }
}

@Suite("Ext4 fast-commit replay: e2fsprogs' j_recover_fast_commit image", .enabled(if: E2fsprogsFastCommit.available,
    "e2fsprogs' source package could not be fetched (no network?)"))
struct Ext4FastCommitImageTests {
    @Test("the replayed view has what e2fsck's expect file and the kernel's replayed mount show")
    func matches() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("fc-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let image = scratch + "/image"
        try TestImages.run(["sh", "-c", "gunzip < \"$1\" > \"$2\"", "sh", E2fsprogsFastCommit.test + "/image.gz", image])
        let reader = try Ext4Reader(source: FileSource(path: image), name: "j_recover_fast_commit")
        let journal = try #require(reader.journal)
        #expect(journal.fastCommits > 0 && journal.warnings.isEmpty, "\(journal.warnings)")
        // debugfs's listings after e2fsck's replay: names and inode numbers.
        func entries(_ inode: UInt64) throws -> [String] {
            try reader.directoryEntries(of: inode).map { "\($0.inode) \(String(decoding: $0.name, as: UTF8.self))" }.sorted()
        }
        let root = try E2fsprogsFastCommit.listing("")
        #expect(try entries(2) == root.map { "\($0.0) \($0.1)" }.sorted())
        let a = try #require(root.first { $0.1 == "a" }?.0)
        let inA = try E2fsprogsFastCommit.listing("a/")
        #expect(inA.map(\.1).sorted() == ["data", "new"])
        #expect(try entries(a) == inA.map { "\($0.0) \($0.1)" }.sorted())
        // Without the fast commits the two files are not there.
        let stale = try Ext4Reader(source: FileSource(path: image), name: "stale", replayJournal: false)
        #expect(try stale.directoryEntries(of: a).count < 2)
        // The kernel's own replay, where loop mounts work: every field.
        guard TestImages.canLoopMount("ext4") else { return }
        let copy = scratch + "/kernel.img"
        try FileManager.default.copyItem(atPath: image, toPath: copy)
        let mountPoint = scratch + "/mnt"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        let mounted = Date()
        try TestImages.run(["mount", "-o", "loop", copy, mountPoint])
        var expected: [ManifestEntry]
        do {
            expected = try Manifest.ofDirectory(mountPoint)
            _ = try? TestImages.run(["umount", mountPoint])
        } catch {
            _ = try? TestImages.run(["umount", mountPoint])
            throw error
        }
        let (actual, problems) = try Manifest.of(reader)
        #expect(problems.isEmpty, "\(problems)")
        // The kernel's replay of the new entries stamps "a" with the time of its mount
        // (__ext4_link); the archive keeps the directory's stored mtime.
        let ka = try #require(expected.firstIndex { $0.path == "a" })
        #expect(expected[ka].mtime >= Int64(mounted.timeIntervalSince1970) - 1)
        let mine = try #require(actual.first { $0.path == "a" })
        expected[ka].mtime = mine.mtime
        expected[ka].mtime_ns = mine.mtime_ns
        let diffs = Manifest.differences(expected: expected, actual: actual)
        #expect(diffs.isEmpty, "\(diffs.joined(separator: "\n"))")
    }
}

@Suite("Ext4 fast-commit replay: a damaged fast-commit area", .enabled(if: HotImages.path("hot-ext4-fc.img") != nil,
    "hot snapshots not built (images/disks/hot-ext4.sh needs root and loop devices)"))
struct Ext4FastCommitDamageTests {
    @Test("a flipped byte in the fast commit: nothing of it applied, a warning, the full commits replayed")
    func damagedArea() throws {
        let (reader, error) = try Ext4JournalCorruptionTests.damaged("hot-ext4-fc.img") { b, l in
            let sb = ByteCursor(Array(b[l.offset(0)..<(l.offset(0) + 1024)]))
            let maxlen = Int(try sb.u32be(at: 16))
            let fc = Int(try sb.u32be(at: 84))
            let first = maxlen - (fc == 0 ? 256 : fc) + 1
            b[l.offset(first) + 20] ^= 0x40   // inside the record after the 12-byte head
        }
        let r = try #require(reader, "\(String(describing: error))")
        let journal = try #require(r.journal)
        #expect(journal.fastCommits == 0 && journal.transactions > 0)
        #expect(journal.warnings.contains { $0.contains("fast-commit area") }, "\(journal.warnings)")
        let (actual, _) = try Manifest.of(r, readContents: false)
        #expect(!actual.contains { $0.path == "etc/fc-file" })
    }
}

extension Ext4FastCommitDamageTests {
    /// Rewrites the fast-commit area of `bytes` with random bytes changed inside record values
    /// (headers kept) and every tail's CRC recomputed, so that the damage reaches the replay.
    static func mutateValues(_ bytes: inout [UInt8], _ l: JournalLayout, mutate: Bool = true,
                             using rng: inout some RandomNumberGenerator) throws {
        let sb = ByteCursor(Array(bytes[l.offset(0)..<(l.offset(0) + 1024)]))
        let maxlen = Int(try sb.u32be(at: 16))
        let fc = Int(try sb.u32be(at: 84))
        var crc: UInt32 = 0
        for block in (maxlen - (fc == 0 ? 256 : fc) + 1)..<maxlen {
            let base = l.offset(block)
            var cur = 0
            while cur + 4 <= l.blockSize {
                let tag = Int(bytes[base + cur]) | Int(bytes[base + cur + 1]) << 8
                let length = Int(bytes[base + cur + 2]) | Int(bytes[base + cur + 3]) << 8
                guard (1...9).contains(tag), cur + 4 + length <= l.blockSize else { return }
                let value = base + cur + 4
                if tag == 8 {
                    crc = JBD2.crc32c(crc, Array(bytes[(base + cur)..<(value + 4)]))
                    for i in 0..<4 { bytes[value + 4 + i] = UInt8((crc >> (8 * UInt32(i))) & 0xFF) }
                    crc = 0
                } else {
                    if mutate, tag != 9, length > 0, Int.random(in: 0..<3, using: &rng) == 0 {
                        bytes[value + Int.random(in: 0..<length, using: &rng)] ^= UInt8(1 << Int.random(in: 0..<8, using: &rng))
                    }
                    crc = JBD2.crc32c(crc, Array(bytes[(base + cur)..<(value + length)]))
                }
                cur += 4 + length
            }
        }
    }

    @Test("damaged record values with valid CRCs: the replay warns or applies, never crashes or hangs")
    func damagedValues() throws {
        let path = try #require(HotImages.path("hot-ext4-fc2.img") ?? HotImages.path("hot-ext4-fc.img"))
        let image = URL(fileURLWithPath: path).lastPathComponent
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<16 {
            let (reader, _) = try Ext4JournalCorruptionTests.damaged(image) { b, l in try Self.mutateValues(&b, l, using: &rng) }
            // A damaged filesystem may fail its walk: only no crash counts. Contents are not read:
            // a changed i_size makes a sparse file of any size, which reads as zeros (slowly).
            if let reader { _ = try? Manifest.of(reader, readContents: false) }
        }
        // Unchanged values with the CRCs recomputed: the same fast commits as the image's own (so
        // the damaged runs above reach the replay, not the CRC check).
        let (same, _) = try Ext4JournalCorruptionTests.damaged(image) { b, l in try Self.mutateValues(&b, l, mutate: false, using: &rng) }
        #expect(try #require(same).journal?.fastCommits == (try HotImages.open(image)).journal?.fastCommits)
    }
}
