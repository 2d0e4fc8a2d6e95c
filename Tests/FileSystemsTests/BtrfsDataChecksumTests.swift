import DiskImage
@testable import FileSystemBtrfs
import FileSystems
import Foundation
import Testing
import TestSupport

/// Data checksums (the csum tree) verified as files are read: a flipped byte in a copy of a
/// kernel-written image is reported for the files whose extent holds it, and the bytes are given
/// as stored; a mirror with a good copy is read instead, silently.
enum BtrfsDamage {
    /// A sparse copy of `path` in a fresh temporary folder, removed by the caller.
    static func copy(_ path: String) throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("btrfs-csum-\(getpid())-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let copy = folder + "/" + URL(fileURLWithPath: path).lastPathComponent
        try TestImages.run(["cp", "--sparse=always", path, copy])
        return copy
    }

    static func remove(_ copy: String) {
        do {
            try FileManager.default.removeItem(atPath: URL(fileURLWithPath: copy).deletingLastPathComponent().path)
        } catch {
            Issue.record("removing \(copy): \(error)")
        }
    }

    /// XORs the byte at `offset` of the file at `path` with 0xFF.
    static func flip(_ path: String, at offset: UInt64) throws {
        let handle = try #require(FileHandle(forUpdatingAtPath: path))
        defer { handle.closeFile() }
        try handle.seek(toOffset: offset)
        let byte = try #require(try handle.read(upToCount: 1)?.first)
        try handle.seek(toOffset: offset)
        try handle.write(contentsOf: [byte ^ 0xFF])
    }

    /// The logical address of the first byte of `path`'s first regular (uncompressed) extent.
    static func firstExtent(_ reader: BtrfsReader, _ path: String) throws -> UInt64 {
        let inode = try #require(try reader.lookup(path))
        let (tree, object) = try reader.decode(inode)
        let (key, item) = try #require(try reader.trees.first(in: try reader.treeRoot(tree), objectID: object, type: .extentData))
        let extent = try Btrfs.FileExtent(key: key, item, nodeSize: Int(reader.superBlock.nodeSize)) { _, b, _ in b }
        guard case let .regular(bytenr, _, offset, _, compression) = extent.kind, bytenr != 0, compression == 0, key.offset == 0 else {
            Issue.record("\(path) does not start with a regular uncompressed extent")
            return 0
        }
        return bytenr + offset
    }

    static func read(_ reader: BtrfsReader, _ path: String) throws -> (bytes: [UInt8], warnings: [String]) {
        let file = try reader.openFile(try #require(try reader.lookup(path)))
        let bytes = try file.readPrefix(Int(file.size))
        return (bytes, file.warnings)
    }
}

@Suite("btrfs data checksums", .serialized)
struct BtrfsDataChecksumTests {
    @Test("a kernel-written image with one data byte flipped: both files sharing the extent warn, naming file offset and logical address; bytes as stored",
          .enabled(if: BtrfsFixtures.available, "fs-btrfs.img not built"))
    func flippedSector() throws {
        let original = try BtrfsFixtures.image("fs-btrfs")
        let clean = try BtrfsReader(source: try FileSource(path: original), name: original, subvolume: .id(5))
        #expect(clean.dataChecksumTree != nil)
        let logical = try BtrfsDamage.firstExtent(clean, "var/overwritten.bin")
        let physical = try #require(try clean.physicalOffset(logical))
        let before = try BtrfsDamage.read(clean, "var/overwritten.bin")
        #expect(before.warnings.isEmpty && before.bytes.count == 1 << 20)
        // Every file of the image reads clean before the damage.
        for path in ["var/reflink.bin", "var/prealloc.bin"] {
            #expect(try BtrfsDamage.read(clean, path).warnings.isEmpty, "\(path)")
        }

        let copy = try BtrfsDamage.copy(original)
        defer { BtrfsDamage.remove(copy) }
        try BtrfsDamage.flip(copy, at: physical + 5000)   // the second sector of the extent
        let damaged = try BtrfsReader(source: try FileSource(path: copy), name: copy, subvolume: .id(5))
        let after = try BtrfsDamage.read(damaged, "var/overwritten.bin")
        var expected = before.bytes
        expected[5000] ^= 0xFF
        #expect(after.bytes == expected)
        #expect(after.warnings.count == 1)
        #expect(after.warnings.first?.contains("crc32c") == true)
        #expect(after.warnings.first?.contains("file offset 4096 (logical \(logical + 4096))") == true, "\(after.warnings)")
        // cp --reflink shares the extent: its copy warns too; files elsewhere do not.
        #expect(try BtrfsDamage.read(damaged, "var/reflink.bin").warnings.count == 1)
        #expect(try BtrfsDamage.read(damaged, "var/prealloc.bin").warnings.isEmpty)
        // A read in small pieces meets the sector in two reads and reports it once.
        let file = try damaged.openFile(try #require(try damaged.lookup("var/overwritten.bin")))
        var piece = [UInt8](repeating: 0, count: 3000)
        while try piece.withUnsafeMutableBytes({ try file.read(into: $0) }) > 0 {}
        #expect(file.warnings == after.warnings)
    }

    /// No false alarms: every file of every kernel-written image (plain, reflinked, prealloc,
    /// zlib/LZO/zstd compressed, in each checksum algorithm) reads without a warning, while the
    /// csum tree is there to check them.
    @Test("every file of the kernel-written images reads without a checksum warning", arguments: BtrfsFixtures.variants)
    func noFalseAlarms(name: String) throws {
        guard BtrfsFixtures.available else { return }
        let reader = try BtrfsFixtures.open(name, .id(5))
        #expect(reader.dataChecksumTree != nil)
        var files = 0, compressed = 0
        for entry in TreeWalk(reader) where entry.metadata.type == .regular {
            let file = try reader.openFile(entry.metadata.inode)
            while try file.readPrefix(1 << 20).count > 0 {}
            #expect(file.warnings.isEmpty, "\(entry.displayPath): \(file.warnings)")
            files += 1
            if entry.displayPath.hasPrefix("/subvol/zstd/") || entry.displayPath.contains("/zlib/") || entry.displayPath.contains("/lzo/") { compressed += 1 }
        }
        #expect(files > 4000 && compressed > 0, "\(files) files, \(compressed) compressed")
    }

    @Test("RAID5 (kernel-written, three devices): a data sector that fails its checksum is rebuilt from parity, without a warning",
          .enabled(if: BtrfsFixtures.available, "fs-btrfs.img not built"))
    func raid5Parity() throws {
        let paths = try ["a", "b", "c"].map { try BtrfsFixtures.image("fs-btrfs-raid5-\($0)") }
        func open(_ chosen: [String]) throws -> BtrfsReader {
            try BtrfsReader(source: try FileSource(path: chosen[0]), name: chosen[0],
                            devices: try chosen.dropFirst().map { BtrfsDevice(source: try FileSource(path: $0), name: $0) })
        }
        let clean = try open(paths)
        let names = try clean.directoryEntries(of: try #require(try clean.lookup("files"))).map { String(decoding: $0.name, as: UTF8.self) }
        let path = "files/" + (try #require(names.sorted().first))
        let expected = try BtrfsDamage.read(clean, path)
        #expect(expected.bytes.count == 4096 && expected.warnings.isEmpty)
        let logical = try BtrfsDamage.firstExtent(clean, path)
        let location = try clean.trees.volume.chunks.locate(logical)
        #expect(location.row?.count == 3)
        let stripe = try #require(location.copies.first)
        let device = try #require(clean.devices.first { $0.id == stripe.deviceID }?.name)
        let copies = try paths.map(BtrfsDamage.copy)
        defer { copies.forEach(BtrfsDamage.remove) }
        try BtrfsDamage.flip(try #require(copies.first { URL(fileURLWithPath: $0).lastPathComponent == URL(fileURLWithPath: device).lastPathComponent }),
                             at: stripe.offset + 123)
        let damaged = try open(copies)
        // The stripe as stored is damaged; parity (mirror 1) gives the data back.
        #expect(try damaged.trees.volume.bytes(logical, count: 4096) != expected.bytes)
        #expect(try damaged.trees.volume.bytes(logical, count: 4096, mirror: 1) == expected.bytes)
        let rebuilt = try BtrfsDamage.read(damaged, path)
        #expect(rebuilt.bytes == expected.bytes && rebuilt.warnings.isEmpty, "\(rebuilt.warnings)")
    }

    @Test("RAID1 (dissect.btrfs's raid1 pair): a bad sector on one device is read from the other without a warning; bad on both, a warning",
          .enabled(if: DissectBtrfs.available, "dissect.btrfs's test data not fetched"))
    func mirrorFallback() throws {
        let paths = [DissectBtrfs.path("raid1-1"), DissectBtrfs.path("raid1-2")]
        let clean = try DissectBtrfs.open(["raid1-1", "raid1-2"])
        let logical = try BtrfsDamage.firstExtent(clean, "large.txt")
        let copies = try clean.trees.volume.chunks.locate(logical).copies
        #expect(copies.count == 2 && Set(copies.map(\.deviceID)) == [1, 2])
        let expected = [UInt8](repeating: 0x61, count: 5_242_880) + [0x0A]

        let damaged = try paths.map(BtrfsDamage.copy)
        defer { damaged.forEach(BtrfsDamage.remove) }
        func open() throws -> BtrfsReader {
            try BtrfsReader(source: try FileSource(path: damaged[0]), name: damaged[0],
                            devices: [BtrfsDevice(source: try FileSource(path: damaged[1]), name: damaged[1])])
        }
        let first = try #require(copies.first)
        try BtrfsDamage.flip(damaged[Int(first.deviceID) - 1], at: first.offset + 10)
        let one = try BtrfsDamage.read(try open(), "large.txt")
        #expect(one.bytes == expected && one.warnings.isEmpty, "\(one.warnings)")

        let second = copies[1]
        try BtrfsDamage.flip(damaged[Int(second.deviceID) - 1], at: second.offset + 10)
        let both = try BtrfsDamage.read(try open(), "large.txt")
        var stored = expected
        stored[10] ^= 0xFF
        #expect(both.bytes == stored)
        #expect(both.warnings.count == 1 && both.warnings.first?.contains("file offset 0 (logical \(logical))") == true, "\(both.warnings)")
    }
}
