import DiskImage
import FileSystemJFFS2
import FileSystemUBIFS
import FileSystems
import Foundation
import PartitionTable
import Testing
import TestSupport

/// UBIFS and JFFS2 images Linux itself wrote (images/disks/fs-flash-kernel.sh: Debian's kernel
/// under QEMU, nandsim and mtdram): the source tree copied in with `cp -a`, committed, then
/// changed (deletes, renames, rewrites, a truncation, new entries, chmod, chown, xattrs). The
/// UBIFS chip was dumped while mounted (the changes only in the journal) and after the unmount.
enum FlashKernelFixtures {
    /// Absent (no QEMU, network or modules where the images were built): the suites are skipped.
    static var available: Bool {
        FileManager.default.fileExists(atPath: TestImages.directory.appendingPathComponent("fs-flash-kernel-journal.img").path)
    }

    /// The UBIFS volume ("rootfs", volume 0) of one of the UBI dumps.
    static func volume(_ image: String) throws -> UBIVolume {
        let path = try TestImages.path(image)
        let ubi = try #require(try UBIImage.attach(try FileSource(path: path)))
        return try ubi.volume(0, place: FWError.Place(disk: image, partition: "rootfs"))
    }

    static func ubifs(_ image: String, replay: Bool = true) throws -> UBIFSReader {
        try UBIFSReader(source: try volume(image), name: "\(image) rootfs", replayJournal: replay)
    }

    /// The kernel stamps the root when the guest removes the ext4 copy's lost+found: its time
    /// is not the source's. UBIFS as the kernel formats it and JFFS2 keep whole seconds.
    static func compare(_ reader: any FileSystemReader, with expected: [ManifestEntry]) throws {
        let (entries, problems) = try Manifest.of(reader)
        #expect(problems.isEmpty, "\(problems)")
        #expect(expected.count > 400)
        #expect(entries.allSatisfy { $0.mtime_ns == 0 })
        let diffs = Manifest.differences(expected: Manifest.withoutRootTime(expected), actual: Manifest.withoutRootTime(entries),
                                         ignoring: [.mtimeNanoseconds])
        #expect(diffs.isEmpty, "\(diffs.prefix(20).joined(separator: "\n"))")
    }
}

@Suite("UBIFS and JFFS2: kernel-written images", .enabled(if: FlashKernelFixtures.available, "no kernel-written flash image (fs-flash-kernel.skipped says why)"))
struct FlashKernelTests {
    @Test("UBIFS dumped while mounted: the journal replayed over the index gives the tree after the changes")
    func journalReplayed() throws {
        let reader = try FlashKernelFixtures.ubifs("fs-flash-kernel-journal.img")
        #expect(reader.masterFlags & 1 == 1, "mounted: UBIFS_MST_DIRTY")
        #expect(reader.uncommittedBuds > 0 && reader.journal.replayed)
        #expect(reader.journal.nodes > 50, "the changes are in the journal: \(reader.journal)")
        #expect(reader.journal.warnings.isEmpty, "\(reader.journal.warnings)")
        try FlashKernelFixtures.compare(reader, with: try Manifest.load("fs-flash-kernel.manifest"))
    }

    @Test("the same UBIFS without replay reads the committed index: the tree before the changes")
    func committedIndexOnly() throws {
        let reader = try FlashKernelFixtures.ubifs("fs-flash-kernel-journal.img", replay: false)
        #expect(!reader.journal.replayed && reader.journal.nodes == 0 && reader.uncommittedBuds > 0)
        try FlashKernelFixtures.compare(reader, with: try Manifest.load("fs-flash-kernel-before.manifest"))
        #expect(reader.probe("/etc/rename-me") != nil && reader.probe("/etc/renamed") == nil)
        let numbers = try #require(reader.probe("/usr/lib/numbers.txt"))
        #expect(try reader.readSmallFile(numbers, limit: 1 << 20).count > 100_000)
    }

    @Test("UBIFS after the unmount (everything committed), also read from the dump with spare bytes",
          arguments: ["fs-flash-kernel-clean.img", "fs-flash-kernel-oob.img"])
    func committed(image: String) throws {
        let reader = try FlashKernelFixtures.ubifs(image)
        #expect(reader.masterFlags & 1 == 0)
        #expect(reader.journal.nodes == 0 && reader.journal.warnings.isEmpty, "\(reader.journal)")
        try FlashKernelFixtures.compare(reader, with: try Manifest.load("fs-flash-kernel.manifest"))
    }

    @Test("the replayed journal holds each kind of change: a truncation, a rewrite, an xattr set and one removed, a new hardlink")
    func changes() throws {
        let reader = try FlashKernelFixtures.ubifs("fs-flash-kernel-journal.img")
        // truncated to 5000 bytes, then grown to 20000: the committed blocks past 5000 are gone
        let libbig = try #require(reader.probe("/usr/lib/libbig.so"))
        let bytes = try reader.readSmallFile(libbig)
        let old = try FlashKernelFixtures.ubifs("fs-flash-kernel-journal.img", replay: false)
        let committed = try old.readSmallFile(try #require(old.probe("/usr/lib/libbig.so")))
        #expect(committed.count == 300_000 && bytes.count == 20_000)
        #expect(bytes.prefix(5000) == committed.prefix(5000) && bytes.dropFirst(5000).allSatisfy { $0 == 0 })
        let numbers = try #require(reader.probe("/usr/lib/numbers.txt"))
        #expect(try reader.readSmallFile(numbers) == Array("rewritten after the commit\n".utf8))
        #expect(reader.probeMetadata("/etc/fstab")?.xattr("user.journal") == Array("after-commit".utf8))
        #expect(reader.probeMetadata("/etc/hostname")?.xattr("user.comment") == nil)
        #expect(reader.probeMetadata("/etc/hostname")?.permissions == 0o600)
        #expect(reader.probeMetadata("/usr/bin/journal-link")?.linkCount == 3)
    }

    @Test("the fuzz seed (a small UBIFS dumped while mounted): a file, a hardlink and a delete in its journal")
    func seed() throws {
        let path = try TestImages.path("fs-flash-kernel.seed")
        let replayed = try UBIFSReader(source: try FileSource(path: path), name: path)
        #expect(replayed.journal.nodes > 0 && replayed.journal.warnings.isEmpty, "\(replayed.journal)")
        let journal = try #require(replayed.probe("/etc/journal"))
        #expect(try replayed.readSmallFile(journal) == Array("in the journal\n".utf8))
        #expect(replayed.probe("/bin/numbers.txt") == nil && replayed.probeMetadata("/bin/passwd")?.linkCount == 2)
        let committed = try UBIFSReader(source: try FileSource(path: path), name: path, replayJournal: false)
        #expect(committed.probe("/etc/journal") == nil && committed.probe("/bin/numbers.txt") != nil)
        #expect(committed.probe("/bin/passwd") == nil)
    }

    @Test("JFFS2 written by the kernel on a NOR chip (summaries, its own compressor choice) matches the tree after the changes")
    func jffs2() throws {
        let path = try TestImages.path("fs-flash-kernel-jffs2.img")
        let reader = try JFFS2Reader(source: try FileSource(path: path), name: path)
        try FlashKernelFixtures.compare(reader, with: try Manifest.load("fs-flash-kernel-jffs2.manifest"))
    }
}

/// The mounted dump's UBIFS volume damaged in its journal: what replays cleanly is applied over
/// the committed index, the rest is dropped with a warning naming the LEB and byte, never a crash.
@Suite("UBIFS journal replay: damaged journals", .enabled(if: FlashKernelFixtures.available, "no kernel-written flash image (fs-flash-kernel.skipped says why)"))
struct UBIFSJournalDamageTests {
    static func volumeBytes() throws -> (bytes: [UInt8], reader: UBIFSReader) {
        let volume = try FlashKernelFixtures.volume("fs-flash-kernel-journal.img")
        let reader = try UBIFSReader(source: volume, name: "journal")
        return (try volume.bytes(at: 0, count: Int(volume.size)), reader)
    }

    /// Every path read is in the tree before or after the changes (nothing invented), and each
    /// problem of the walk is an error that names its place.
    static func plausible(_ reader: UBIFSReader) throws {
        let known = Set(try Manifest.load("fs-flash-kernel-before.manifest").map(\.path)
                        + Manifest.load("fs-flash-kernel.manifest").map(\.path))
        let (entries, problems) = try Manifest.of(reader)
        #expect(entries.count > 400)
        #expect(entries.allSatisfy { known.contains($0.path) }, "\(entries.map(\.path).filter { !known.contains($0) })")
        #expect(problems.allSatisfy { "\($0)".contains("journal-damaged") }, "\(problems)")
    }

    @Test("a bud whose second half is garbage: its first nodes replay, a warning names the bud LEB and byte")
    func garbageInBud() throws {
        let (bytes, intact) = try Self.volumeBytes()
        let lebSize = Int(intact.superblock.lebSize)
        var damagedBuds = 0
        for bud in intact.journal.budStarts {
            // the bud's nodes: from its offset up to the first erased word
            let start = Int(bud.lnum) * lebSize + Int(bud.offset)
            var end = start
            while end + 4 <= (Int(bud.lnum) + 1) * lebSize, bytes[end..<end + 4] != [0xFF, 0xFF, 0xFF, 0xFF] { end += 8 }
            guard end - start > 1024 else { continue }
            damagedBuds += 1
            var damaged = bytes
            let cut = start + (end - start) / 2
            var random = SystemRandomNumberGenerator()
            for i in cut..<end { damaged[i] = UInt8.random(in: 0...255, using: &random) }
            let reader = try UBIFSReader(source: MemorySource(damaged), name: "journal-damaged")
            #expect(reader.journal.nodes > 0 && reader.journal.nodes < intact.journal.nodes, "bud \(bud.lnum)")
            #expect(reader.journal.warnings.count == 1 && reader.journal.warnings[0].contains("bud LEB \(bud.lnum) at byte "),
                    "\(reader.journal.warnings)")
            try Self.plausible(reader)
        }
        #expect(damagedBuds == 2, "the base and the data head's buds")
    }

    @Test("the image cut in the middle of a bud: the bud replays up to the cut, with a warning")
    func truncatedMidBud() throws {
        let (bytes, intact) = try Self.volumeBytes()
        let lebSize = Int(intact.superblock.lebSize)
        let bud = try #require(intact.journal.budStarts.max { $0.lnum < $1.lnum })
        let cut = Int(bud.lnum) * lebSize + Int(bud.offset) + 2000 + 4
        let reader = try UBIFSReader(source: MemorySource(Array(bytes.prefix(cut))), name: "journal-damaged")
        #expect(reader.journal.nodes < intact.journal.nodes)
        #expect(reader.journal.warnings.contains { $0.contains("bud LEB \(bud.lnum) at byte ") }, "\(reader.journal.warnings)")
        // the walk may meet nodes past the cut: errors naming the image, never a crash
        _ = try Manifest.of(reader)
    }

    @Test("a log whose commit-start node is damaged: no replay, a warning, the committed index read")
    func damagedLog() throws {
        let (bytes, intact) = try Self.volumeBytes()
        var damaged = bytes
        let logLEB = Int(try #require(try Self.logHead(intact)))
        damaged[logLEB * Int(intact.superblock.lebSize) + 30] ^= 0xFF
        let reader = try UBIFSReader(source: MemorySource(damaged), name: "journal-damaged")
        #expect(reader.journal.nodes == 0)
        #expect(reader.journal.warnings.contains { $0.contains("log LEB \(logLEB)") }, "\(reader.journal.warnings)")
        try FlashKernelFixtures.compare(reader, with: try Manifest.load("fs-flash-kernel-before.manifest"))
    }

    @Test("the kernel seed with bytes of its log and buds mutated: an error or a reading, never a crash or a hang")
    func mutatedJournal() throws {
        let path = try TestImages.path("fs-flash-kernel.seed")
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let intact = try UBIFSReader(source: MemorySource(bytes), name: "seed")
        let lebSize = Int(intact.superblock.lebSize)
        // the log LEBs and every bud's nodes
        var ranges = [3 * lebSize..<(3 + Int(intact.superblock.logLEBs)) * lebSize]
        ranges += intact.journal.budStarts.map { Int($0.lnum) * lebSize + Int($0.offset)..<(Int($0.lnum) + 1) * lebSize }
        #expect(ranges.count == 3 && intact.journal.nodes > 0)
        var state: UInt64 = 27   // a fixed LCG: the same mutations every run
        func next(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(bound))
        }
        var opened = 0
        for _ in 0..<400 {
            var damaged = bytes
            let range = ranges[next(ranges.count)]
            let at = range.lowerBound + next(min(range.count, 4096))
            for i in 0..<1 + next(8) where at + i < damaged.count { damaged[at + i] = UInt8(next(256)) }
            do {
                let reader = try UBIFSReader(source: MemorySource(damaged), name: "journal-damaged")
                _ = try Manifest.of(reader)
                opened += 1
            } catch let error as FWError {
                #expect("\(error)".contains("journal-damaged"), "\(error)")
            }
        }
        #expect(opened > 100)
    }

    /// The log LEB holding the commit-start node (the first log LEB whose first node is one).
    static func logHead(_ reader: UBIFSReader) throws -> UInt32? {
        let volume = try FlashKernelFixtures.volume("fs-flash-kernel-journal.img")
        let lebSize = UInt64(reader.superblock.lebSize)
        for lnum in UInt32(3)..<3 + reader.superblock.logLEBs {
            let head = try volume.bytes(at: UInt64(lnum) * lebSize, count: 40)
            if head[20] == 10, try ByteCursor(head).u64le(at: 24) == reader.commitNumber { return lnum }
        }
        return nil
    }
}
