import DiskImage
import FileSystems
import FileSystemSquashFS
import Foundation
import Testing
import TestSupport

/// Hostile images made by patching the real ones in memory: every failure must be an `FWError`
/// with a clear message, the walk must go on past it, and nothing may crash or hang.
@Suite("SquashFS reader: bad input")
struct SquashFSCorruptionTests {
    static func bytes(_ variant: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: SquashFSFixtures.image(variant))))
    }

    static func u64(_ b: [UInt8], _ at: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { $0 | UInt64(b[at + $1]) << (8 * $1) }
    }

    /// Offset of the directory entry record (8 bytes before the name) of `name`, found in an
    /// image whose directory table is stored uncompressed (-noI): the record's size field
    /// (name length - 1) must precede the name.
    static func entryRecord(_ image: [UInt8], name: String, from: Int) throws -> Int {
        let pattern = Array(name.utf8)
        var found: [Int] = []
        var i = from
        while i + pattern.count <= image.count {
            if image[i] == pattern[0], Array(image[i..<(i + pattern.count)]) == pattern,
               image[i - 2] == UInt8(pattern.count - 1), image[i - 1] == 0 {
                found.append(i - 8)
            }
            i += 1
        }
        #expect(found.count == 1, "directory entry \(name) found \(found.count) times")
        return try #require(found.first)
    }

    /// Walks everything, reading every regular file up to 16 MiB; returns the walked paths and the
    /// problems of the walk plus those of the file reads.
    static func walkAll(_ reader: SquashFSReader) -> (paths: [String], problems: [(String, FWError)]) {
        var walk = TreeWalk(reader)
        var paths: [String] = []
        var problems: [(String, FWError)] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while let entry = walk.next() {
            paths.append(entry.displayPath)
            guard entry.metadata.type == .regular, entry.metadata.size <= 16 << 20 else { continue }
            do {
                let file = try reader.openFile(entry.metadata.inode)
                var total: UInt64 = 0
                while true {
                    let n = try buffer.withUnsafeMutableBytes { try file.read(into: $0) }
                    if n == 0 { break }
                    total += UInt64(n)
                    guard total <= 16 << 20 else { break }
                }
            } catch let error as FWError {
                problems.append((entry.displayPath, error))
            } catch {
                problems.append((entry.displayPath, FWError(.io, "not an FWError: \(error)")))
                Issue.record("non-FWError from \(entry.displayPath): \(error)")
            }
        }
        problems += walk.problems.map { ($0.path, $0.error) }
        return (paths, problems)
    }

    @Test("a truncated image is refused with a clear error")
    func truncated() throws {
        let image = try Self.bytes("gzip")
        for length in [0, 50, 96, image.count / 2, image.count - 4096] {
            let error = #expect(throws: FWError.self) {
                _ = try SquashFSReader(source: MemorySource(Array(image.prefix(length)), name: "cut.img"), name: "cut.img")
            }
            #expect(error?.code == .corrupt)
            #expect(error?.disk == "cut.img")
            #expect(error?.message.contains("squashfs") == true, "\(String(describing: error))")
        }
    }

    @Test("a bad superblock: magic, version, block size")
    func badSuperblock() throws {
        let image = try Self.bytes("gzip")
        for (offset, value, words) in [(0, UInt8(0x41), "magic"), (28, 3, "version"), (13, 0x30, "block size"), (20, 9, "compression")] {
            var bad = image
            bad[offset] = value
            let error = #expect(throws: FWError.self) { _ = try SquashFSReader(source: MemorySource(bad), name: "bad.img") }
            #expect(error?.message.contains(words) == true, "\(String(describing: error))")
        }
    }

    @Test("a directory entry with a bad inode reference: that entry fails, the walk goes on")
    func badInodeReference() throws {
        var image = try Self.bytes("nocomp")
        let reader = try SquashFSReader(source: MemorySource(image), name: "ok.img")
        let clean = Self.walkAll(reader)
        #expect(clean.problems.isEmpty)
        let record = try Self.entryRecord(image, name: "hostname", from: Int(Self.u64(image, 72)))
        image[record] = 0xFF
        image[record + 1] = 0x1F   // inode offset 8191: past the end of the inode metadata block
        let bad = Self.walkAll(try SquashFSReader(source: MemorySource(image), name: "bad.img"))
        #expect(bad.problems.count == 1)
        let problem = try #require(bad.problems.first)
        #expect(problem.0 == "/etc/hostname")
        #expect(problem.1.code == .corrupt)
        #expect(problem.1.message.contains("inode 0x1fff"), "\(problem.1)")
        #expect(bad.paths == clean.paths.filter { $0 != "/etc/hostname" })
    }

    @Test("a directory that contains itself is reported once, not walked forever")
    func selfContainingDirectory() throws {
        var image = try Self.bytes("nocomp")
        let reader = try SquashFSReader(source: MemorySource(image), name: "ok.img")
        let srv = try #require(try reader.lookup("/srv"))
        let opaque = try #require(try reader.lookup("/srv/opaque"))
        #expect(srv >> 16 == opaque >> 16, "both inodes in one metadata block (a small inode table)")
        let record = try Self.entryRecord(image, name: "opaque", from: Int(Self.u64(image, 72)))
        image[record] = UInt8(srv & 0xFF)
        image[record + 1] = UInt8(srv >> 8 & 0xFF)
        let bad = Self.walkAll(try SquashFSReader(source: MemorySource(image), name: "loop.img"))
        #expect(bad.problems.count == 1)
        #expect(bad.problems.first?.0 == "/srv/opaque")
        #expect(bad.problems.first?.1.message.contains("contains itself") == true)
        #expect(bad.paths.contains("/srv/whiteout"))
        #expect(bad.paths.contains("/var/sparse.img"))
    }

    /// A two-file image made here: a.txt's one compressed block is the first thing after the
    /// superblock, b.txt's follows; a.txt's block is then damaged.
    @Test("a corrupt compressed data block is an error naming the codec; other files still read", arguments: ["gzip", "xz", "zstd", "lzo", "lz4", "lzma"])
    func corruptDataBlock(compressor: String) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fwa-sqcorrupt-\(compressor)-\(getpid())")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("src"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let text = (0..<4000).map { "line \($0)\n" }.joined()
        try Data(text.utf8).write(to: dir.appendingPathComponent("src/a.txt"))
        try Data(text.utf8.reversed()).write(to: dir.appendingPathComponent("src/b.txt"))
        let path = dir.appendingPathComponent("two.img").path
        try TestImages.run(["mksquashfs", dir.appendingPathComponent("src").path, path, "-comp", compressor,
                            "-no-fragments", "-noappend", "-quiet", "-no-progress"])
        var image = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let clean = Self.walkAll(try SquashFSReader(source: MemorySource(image), name: "ok.img"))
        #expect(clean.problems.isEmpty)
        // Past a compressor options block, if any: the flag is bit 10 of the flags at 24.
        var start = 96
        if image[25] & 0x04 != 0 { start += 2 + Int(UInt16(image[96]) | UInt16(image[97] & 0x7F) << 8) }
        for i in (start + 12)..<(start + 40) { image[i] ^= 0xA5 }
        let bad = Self.walkAll(try SquashFSReader(source: MemorySource(image), name: "bad.img"))
        #expect(bad.paths == clean.paths)
        #expect(bad.problems.map(\.0) == ["/a.txt"])
        for (path, error) in bad.problems {
            #expect(error.code == .corrupt, "\(path): \(error)")
            #expect(error.message.contains(compressor) && error.message.contains("data block 0"), "\(path): \(error)")
            #expect(error.disk == "bad.img")
        }
    }

    @Test("a corrupt metadata block in the inode table fails the inodes it holds, without a crash")
    func corruptInodeTable() throws {
        var image = try Self.bytes("gzip")
        let inodeTable = Int(Self.u64(image, 64))
        for i in (inodeTable + 8)..<(inodeTable + 40) { image[i] ^= 0x3C }
        let reader = try SquashFSReader(source: MemorySource(image), name: "bad.img")
        let result = Self.walkAll(reader)
        #expect(!result.problems.isEmpty)
        for (path, error) in result.problems {
            #expect(error.message.contains("metadata block") || error.message.contains("inode"), "\(path): \(error)")
        }
    }

    /// Random corruption anywhere after the superblock, many times: only `FWError`s, no crash,
    /// no hang (the per-file read cap keeps a corrupt huge size from running long). Seeded, so a
    /// failure names the seed and iteration that reproduce it.
    @Test("random byte flips never crash the reader", arguments: [("gzip", UInt64(1)), ("nocomp", 2), ("xz", 3), ("lz4", 4), ("frag", 5)])
    func randomFlips(variant: String, seed: UInt64) throws {
        let image = try Self.bytes(variant)
        var rng = SplitMix64(seed: seed)
        var opened = 0
        for iteration in 0..<60 {
            var bad = image
            for _ in 0..<8 {
                let at = Int.random(in: 96..<bad.count, using: &rng)
                bad[at] = UInt8.random(in: 0...255, using: &rng)
            }
            do {
                let reader = try SquashFSReader(source: MemorySource(bad), name: "fuzz-\(seed)-\(iteration).img")
                opened += 1
                _ = Self.walkAll(reader)
            } catch let error as FWError {
                #expect(error.disk == "fuzz-\(seed)-\(iteration).img")
            }
        }
        #expect(opened > 0)
    }
}

/// A small seeded generator (SplitMix64) for reproducible corruption.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
