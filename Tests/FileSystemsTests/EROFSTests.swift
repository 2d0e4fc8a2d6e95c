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

    /// Every image: the kernel's view of each must equal the reader's.
    static var allVariants: [String] { extendedVariants + compactVariants + chunkVariants + ["lzma"] }

    static func image(_ variant: String) throws -> String { try TestImages.path("fs-erofs-\(variant).img") }

    static func open(_ variant: String) throws -> EROFSReader {
        let path = try image(variant)
        return try EROFSReader(source: try FileSource(path: path), name: path)
    }

    static func manifest(_ name: String) throws -> [ManifestEntry] {
        return try Manifest.load(name)
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

    @Test("hand-made image: MicroLZMA and HEAD2 zstd pclusters, a deduplicated pcluster, fragments, interlaced plain pclusters and long xattr prefixes match their files")
    func lzmaImageMatchesSource() throws {
        let reader = try EROFSFixtures.open("lzma")
        #expect(reader.availableAlgorithms == 1 << 1 | 1 << 3)
        #expect(reader.lzmaDictionarySize == 65536)
        #expect(reader.superBlock.featureIncompat.contains(.fragments))
        let (entries, problems) = try Manifest.of(reader)
        #expect(problems.isEmpty, "\(problems)")
        let expected = try EROFSFixtures.manifest("fs-erofs-lzma.manifest")
        #expect(expected.count == 8)
        #expect(entries.first { $0.path == "long-prefix.txt" }?.xattrs["trusted.overlay.opaque"] == "79")
        let diffs = Manifest.differences(expected: expected, actual: entries)
        #expect(diffs.isEmpty, "\(diffs.joined(separator: "\n"))")
    }

    /// Layouts of current mkfs.erofs (1.9.3) with Home Assistant OS's options, from images kept
    /// in the test source, against the manifest Linux gave for them.
    @Test("mkfs.erofs 1.9 images (fragments, dedupe, big pclusters) match the kernel's view", arguments: ["lz4hc", "lzma"])
    func mkfs19(variant: String) throws {
        let bytes = variant == "lz4hc"
            ? EROFSMkfs19Fixtures.image(EROFSMkfs19Fixtures.lz4hcImage, size: EROFSMkfs19Fixtures.lz4hcSize)
            : EROFSMkfs19Fixtures.image(EROFSMkfs19Fixtures.lzmaImage, size: EROFSMkfs19Fixtures.lzmaSize)
        let text = variant == "lz4hc" ? EROFSMkfs19Fixtures.lz4hcKernelManifest : EROFSMkfs19Fixtures.lzmaKernelManifest
        let kernel = try text.split(separator: "\n").map { try JSONDecoder().decode(ManifestEntry.self, from: Data($0.utf8)) }
        #expect(kernel.count == 22)
        let reader = try EROFSReader(source: MemorySource(bytes), name: "mkfs19-\(variant).img")
        #expect(reader.superBlock.featureIncompat.contains(.fragments) && reader.superBlock.packedNid != 0)
        let (entries, problems) = try Manifest.of(reader)
        #expect(problems.isEmpty, "\(problems)")
        let diffs = Manifest.differences(expected: kernel, actual: entries)
        #expect(diffs.isEmpty, "\(diffs.joined(separator: "\n"))")
    }

    /// Linux's EROFS driver is an independent implementation: mount each image read-only and
    /// compare its manifest with the reader's, every field (root only).
    @Test("the reader's view equals the kernel's loop mount", arguments: EROFSFixtures.allVariants)
    func matchesKernel(variant: String) throws {
        guard TestImages.canLoopMount("erofs") else { return }
        let reader = try EROFSFixtures.open(variant)
        let (entries, problems) = try Manifest.of(reader)
        #expect(problems.isEmpty, "\(problems)")
        let mountPoint = FileManager.default.temporaryDirectory.appendingPathComponent("erofs-\(variant)-\(getpid())").path
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: mountPoint) }
        try TestImages.run(["mount", "-t", "erofs", "-o", "loop,ro", try EROFSFixtures.image(variant), mountPoint])
        defer { _ = try? TestImages.run(["umount", mountPoint]) }
        let kernel = try Manifest.ofDirectory(mountPoint)
        #expect(kernel.count == entries.count)
        let diffs = Manifest.differences(expected: kernel, actual: entries)
        #expect(diffs.isEmpty, "\(diffs.joined(separator: "\n"))")
    }

    /// fsck.erofs --extract (erofs-utils' own decompressor) writes every file; contents and
    /// symlink targets must agree (it does not restore owners or times, so those are not compared).
    @Test("file contents agree with fsck.erofs --extract", arguments: EROFSFixtures.extendedVariants + EROFSFixtures.chunkVariants)
    func matchesFsckExtract(variant: String) throws {
        let reader = try EROFSFixtures.open(variant)
        let (entries, _) = try Manifest.of(reader)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("erofs-extract-\(variant)-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try TestImages.run(["fsck.erofs", "--extract=\(dir)", try EROFSFixtures.image(variant)])
        let extracted = Dictionary(try Manifest.ofDirectory(dir).map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        var compared = 0
        for e in entries where e.type == "regular" || e.type == "symlink" {
            let x = try #require(extracted[e.path], "\(e.path) not extracted")
            #expect(x.size == e.size && x.crc32 == e.crc32 && x.target == e.target, "\(e.path)")
            compared += 1
        }
        #expect(compared > 20)
    }

    @Test("the superblock is decoded: block size, root, features, compression")
    func superBlock() throws {
        let plain = try EROFSFixtures.open("plain")
        #expect(plain.superBlock.blockSize == 4096)
        #expect(plain.formatName == "erofs")
        #expect(try plain.metadata(of: plain.rootInode).type == .directory)
        let big = try EROFSFixtures.open("lz4hc-big")
        #expect(big.superBlock.featureIncompat.contains(.compressionConfigs))
        #expect(big.availableAlgorithms & 1 == 1)
        let hostname = try #require(try plain.lookup("etc/hostname"))
        let meta = try plain.metadata(of: hostname)
        #expect(meta.mtime == Timestamp(seconds: 1_600_000_000, nanoseconds: 123_456_789))
        #expect(meta.xattr("user.comment") == Array("hello world".utf8))
        let ping = try #require(try plain.lookup("usr/bin/ping"))
        #expect(try plain.metadata(of: ping).xattr("security.capability")?.count == 20)
        // Hardlinks share the nid.
        #expect(try plain.lookup("bin/sh") == plain.lookup("usr/bin/busybox"))
    }
}

/// Damaged and hostile images: clear errors, the walk goes on, nothing hangs or allocates wildly.
@Suite("EROFS reader on bad input")
struct EROFSBadInputTests {
    static func bytes(_ variant: String) throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: try EROFSFixtures.image(variant))))
    }

    static func u64(_ b: [UInt8], _ at: Int) -> UInt64 { (0..<8).reduce(UInt64(0)) { $0 | UInt64(b[at + $1]) << (8 * $1) } }
    static func u16(_ b: [UInt8], _ at: Int) -> Int { Int(b[at]) | Int(b[at + 1]) << 8 }

    /// The root directory's dirents, (offset of the record, name), read independently of the
    /// reader: root inode at meta_blkaddr * 4096 + root_nid * 32, inline dirents after it.
    static func rootDirents(_ b: [UInt8]) -> [(offset: Int, name: String)] {
        let meta = (Int(b[1064]) | Int(b[1065]) << 8 | Int(b[1066]) << 16 | Int(b[1067]) << 24) * 4096
        let root = meta + u16(b, 1038) * 32
        let size = Int(u64(b, root + 8))
        let base = root + 64
        let count = u16(b, base + 8) / 12
        return (0..<count).map { i in
            let start = u16(b, base + 12 * i + 8)
            let end = i + 1 < count ? u16(b, base + 12 * (i + 1) + 8) : size
            return (base + 12 * i, String(decoding: b[(base + start)..<(base + end)], as: UTF8.self))
        }
    }

    @Test("a bad magic is refused as not EROFS")
    func badMagic() throws {
        var b = try Self.bytes("plain")
        b[1024] ^= 0xFF
        let error = try #require(throws: FWError.self) { try EROFSReader(source: MemorySource(b), name: "bad.img") }
        #expect(error.code == .corrupt && error.message.contains("magic") && error.disk == "bad.img")
    }

    @Test("an unknown incompatible feature is refused as not supported")
    func unknownFeature() throws {
        var b = try Self.bytes("plain")
        b[1024 + 81] |= 0x02      // feature_incompat bit 9
        let error = try #require(throws: FWError.self) { try EROFSReader(source: MemorySource(b), name: "new.img") }
        #expect(error.code == .unsupported && error.message.contains("not supported"), "\(error)")
        var c = try Self.bytes("plain")
        c[1024 + 80] |= 0x80      // 48BIT
        #expect(throws: FWError.self) { try EROFSReader(source: MemorySource(c), name: "48bit.img") }
    }

    @Test("a truncated image and a root nid past the end fail at open")
    func truncated() throws {
        let b = try Self.bytes("plain")
        #expect(throws: FWError.self) { try EROFSReader(source: MemorySource(Array(b[0..<1100])), name: "short.img") }
        var c = b
        c[1038] = 0xFF; c[1039] = 0xFF
        let error = try #require(throws: FWError.self) { try EROFSReader(source: MemorySource(c), name: "nid.img") }
        #expect(error.code == .corrupt, "\(error)")
    }

    @Test("a dirent pointing past the end and a directory loop become walk problems")
    func badDirents() throws {
        var b = try Self.bytes("plain")
        let dirents = Self.rootDirents(b)
        let etc = try #require(dirents.first { $0.name == "etc" })
        let bin = try #require(dirents.first { $0.name == "bin" })
        let root = try #require(dirents.first { $0.name == "." })
        for i in 0..<8 { b[etc.offset + i] = 0xEE }                       // nid far past the end
        for i in 0..<8 { b[bin.offset + i] = b[root.offset + i] }         // bin -> the root itself
        let reader = try EROFSReader(source: MemorySource(b), name: "loop.img")
        let (entries, problems) = try Manifest.of(reader)
        #expect(problems.contains { $0.path == "/etc" && $0.error.code == .corrupt }, "\(problems)")
        #expect(problems.contains { $0.path == "/bin" && $0.error.message.contains("contains itself") }, "\(problems)")
        #expect(entries.contains { $0.path == "usr/lib/numbers.txt" })
        #expect(!entries.contains { $0.path.hasPrefix("etc/") })
    }

    @Test("corrupt lz4 pclusters fail that file with a clear error; other files still read")
    func corruptLZ4() throws {
        var b = try Self.bytes("lz4")
        let good = try EROFSReader(source: MemorySource(b), name: "lz4.img")
        let nid = try #require(try good.lookup("usr/lib/numbers.txt"))
        // dump.erofs -e lists the file's extents with their physical offsets (independent tool).
        let dump = String(decoding: try TestImages.run(["dump.erofs", "-e", "--nid=\(nid)", try EROFSFixtures.image("lz4")]), as: UTF8.self)
        // Rows: " 1:     4096..    8192 |    4096 :     315392..    319488 |    4096".
        var physical: [Int] = []
        for line in dump.split(separator: "\n") {
            let fields = line.split(whereSeparator: { ": |.".contains($0) }).compactMap { Int($0) }
            if fields.count == 7 { physical.append(fields[4]) }
        }
        #expect(physical.count > 3, "\(dump)")
        for p in physical.dropFirst() where p + 4096 <= b.count {
            for i in 0..<4096 where b[p + i] != 0 { b[p + i] = UInt8(truncatingIfNeeded: i &* 131 &+ 7) }
        }
        let reader = try EROFSReader(source: MemorySource(b), name: "lz4.img")
        let file = try reader.openFile(nid)
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        let error = try #require(throws: FWError.self) {
            while try buffer.withUnsafeMutableBytes({ try file.read(into: $0) }) > 0 {}
        }
        #expect(error.code == .corrupt && error.message.contains("lz4"), "\(error)")
        let passwd = try #require(try reader.lookup("etc/passwd"))
        #expect(try reader.readSmallFile(passwd) == Array("root:x:0:0:root:/root:/bin/sh\n".utf8))
    }

    @Test("corrupt MicroLZMA pclusters fail that file only")
    func corruptLZMA() throws {
        var b = try Self.bytes("lzma")
        let nid = try #require(try EROFSReader(source: MemorySource(b), name: "lzma.img").lookup("text.txt"))
        // text.txt: an extended inode without xattrs at meta_blkaddr * 4096 + nid * 32, its map
        // header right after it, 8 reserved bytes, then lcluster 0's record (blkaddr at 4).
        let meta = (Int(b[1064]) | Int(b[1065]) << 8) * 4096
        let record = meta + Int(nid) * 32 + 64 + 16
        let block = Int(b[record + 4]) | Int(b[record + 5]) << 8 | Int(b[record + 6]) << 16
        for i in (block * 4096 + 2048)..<((block + 1) * 4096) { b[i] = UInt8(truncatingIfNeeded: i &* 151) }
        let reader = try EROFSReader(source: MemorySource(b), name: "lzma.img")
        let text = try #require(try reader.lookup("text.txt"))
        let error = try #require(throws: FWError.self) { try reader.readSmallFile(text) }
        #expect(error.code == .corrupt && error.message.contains("microlzma"), "\(error)")
        let whole = try #require(try reader.lookup("whole-fragment.txt"))
        #expect(try reader.readSmallFile(whole).count == 7000)
    }

    @Test("an inode claiming 2^64-1 bytes neither traps nor allocates it", arguments: ["plain", "lz4"])
    func hugeSize(variant: String) throws {
        var b = try Self.bytes(variant)
        let good = try EROFSReader(source: MemorySource(b), name: "\(variant).img")
        for path in ["usr/lib/numbers.txt", "etc/hostname"] {
            let nid = try #require(try good.lookup(path))
            let meta = (Int(b[1064]) | Int(b[1065]) << 8) * 4096
            for i in 0..<8 { b[meta + Int(nid) * 32 + 8 + i] = 0xFF }      // extended i_size
        }
        let reader = try EROFSReader(source: MemorySource(b), name: "huge.img")
        for path in ["usr/lib/numbers.txt", "etc/hostname"] {
            let nid = try #require(try reader.lookup(path))
            #expect(try reader.metadata(of: nid).size == UInt64.max)
            let file = try reader.openFile(nid)
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            var total = 0
            do {
                for _ in 0..<64 {
                    let n = try buffer.withUnsafeMutableBytes { try file.read(into: $0) }
                    total += n
                }
            } catch let error as FWError {
                #expect(error.code == .corrupt || error.code == .limitExceeded, "\(error)")
            }
            #expect(total <= 64 << 16)
            #expect(throws: FWError.self) { try reader.readSmallFile(nid) }
        }
    }

    /// Seeded random damage to the metadata of real images: every outcome must be a value or an
    /// FWError, never a trap, a hang or a huge allocation.
    @Test("randomly damaged images never trap", arguments: ["lz4", "ztail-compact", "lz4hc-big", "chunk", "lzma"])
    func randomDamage(variant: String) throws {
        let original = try Self.bytes(variant)
        let iterations = Int(ProcessInfo.processInfo.environment["EROFS_FUZZ_ITERATIONS"] ?? "") ?? 60
        var rng = SplitMix(seed: UInt64(variant.utf8.reduce(0) { $0 &* 31 &+ Int($1) }))
        for iteration in 0..<iterations {
            // Every other round hits the first 64 KiB (superblock, root, most inodes and index
            // packs), the others anywhere.
            let span = iteration % 2 == 0 ? min(original.count, 64 * 1024) : original.count
            var b = original
            for _ in 0..<(1 + Int(rng.next() % 8)) {
                let at = 1024 + Int(rng.next() % UInt64(span - 1024))
                b[at] = UInt8(truncatingIfNeeded: rng.next())
            }
            guard let reader = try? EROFSReader(source: MemorySource(b), name: "fuzz.img") else { continue }
            var walk = TreeWalk(reader)
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            var visited = 0
            while let entry = walk.next(), visited < 5000 {
                visited += 1
                guard entry.metadata.type == .regular, let file = try? reader.openFile(entry.metadata.inode) else { continue }
                var total = 0
                while total < 4 << 20, let n = try? buffer.withUnsafeMutableBytes({ try file.read(into: $0) }), n > 0 { total += n }
            }
        }
    }
}

/// A small deterministic generator for the damage test.
struct SplitMix {
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
