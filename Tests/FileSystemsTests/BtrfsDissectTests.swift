import DiskImage
@testable import FileSystemBtrfs
import FileSystems
import Foundation
import Testing
import TestSupport

/// dissect.btrfs's test data (images/fetch-dissect-btrfs.sh, fetched by `make test`, never
/// committed): images made elsewhere, the members of multi-device filesystems in every profile
/// among them. Each check is an assertion of dissect.btrfs 1.10's tests/test_btrfs.py; its
/// `extents()` tuples (its internal API) become the EXTENT_DATA items and the holes between them.
/// Skipped when the data is absent.
enum DissectBtrfs {
    static let directory = TestImages.repositoryRoot.appendingPathComponent(".build-dissect-btrfs").path
    static var available: Bool { FileManager.default.fileExists(atPath: directory + "/btrfs-default.bin") }

    static func path(_ name: String) -> String { directory + "/btrfs-\(name).bin" }

    /// The filesystem of the first file, with the others as its other devices.
    static func open(_ names: [String], subvolume: BtrfsSubvolume = .default) throws -> BtrfsReader {
        let sources = try names.map { (try FileSource(path: path($0)), path($0)) }
        return try BtrfsReader(source: sources[0].0, name: sources[0].1,
                               devices: sources.dropFirst().map { BtrfsDevice(source: $0.0, name: $0.1) }, subvolume: subvolume)
    }

    static func open(_ name: String) throws -> BtrfsReader { try open([name]) }

    /// The members of a profile's filesystem (`btrfs-raid1c3-1.bin` ...), in device order.
    static func members(_ profile: String) -> [String] {
        (1...4).map { "\(profile)-\($0)" }.filter { FileManager.default.fileExists(atPath: path($0)) }
    }

    static let profiles = ["dup", "raid0", "raid1", "raid1c3", "raid1c4", "raid5", "raid6", "raid10"]

    static func contents(_ fs: BtrfsReader, _ path: String) throws -> [UInt8] {
        let file = try fs.openFile(try #require(try fs.lookup(path), "\(path)"))
        return try file.readPrefix(Int(file.size))
    }

    static func names(_ fs: BtrfsReader, _ path: String) throws -> [String] {
        try fs.directoryEntries(of: try #require(try fs.lookup(path), "\(path)")).map { String(decoding: $0.name, as: UTF8.self) }
    }

    /// `assert_test_data`.
    static func expectTestData(_ fs: BtrfsReader) throws {
        #expect(try fs.metadata(of: fs.rootInode).type == .directory)
        let path = try fs.metadata(of: try #require(try fs.lookup("path")))
        #expect(path.type == .directory && path.size == 4 && path.uid == 1000 && path.gid == 1000)
        let file = try fs.metadata(of: try #require(try fs.lookup("path/to/a/file.txt")))
        #expect(file.type == .regular && file.size == 12)
        #expect(try contents(fs, "path/to/a/file.txt") == Array("file in dir\n".utf8))
        #expect(try fs.metadata(of: try #require(try fs.lookup("small.txt"))).size == 29)
        #expect(try contents(fs, "small.txt") == Array("small file content goes here\n".utf8))
        #expect(try fs.metadata(of: try #require(try fs.lookup("large.txt"))).size == 5_242_881)
        #expect(try contents(fs, "large.txt") == [UInt8](repeating: 0x61, count: 5_242_880) + [0x0A])
        let link = try fs.metadata(of: try #require(try fs.lookup("link.txt")))
        #expect(link.type == .symlink && link.symlinkTarget == Array("path/to/a/file.txt".utf8))
    }

    /// A file's extents in file order as dissect's `extents()` gives them, without its first two
    /// fields: (disk_bytenr, disk_num_bytes, offset, num_bytes), a hole as (0, 0, 0, length).
    static func extents(_ fs: BtrfsReader, _ path: String) throws -> [[UInt64]] {
        let inode = try #require(try fs.lookup(path))
        let (tree, object) = try fs.decode(inode)
        let size = try fs.metadata(of: inode).size
        var result: [[UInt64]] = []
        var end: UInt64 = 0
        for (key, item) in try fs.trees.items(in: try fs.treeRoot(tree), objectID: object, type: .extentData) {
            if key.offset > end { result.append([0, 0, 0, key.offset - end]) }
            let extent = try Btrfs.FileExtent(key: key, item, nodeSize: Int(fs.superBlock.nodeSize)) { _, bytes, _ in bytes }
            guard case let .regular(bytenr, diskBytes, offset, _, _) = extent.kind else {
                Issue.record("\(path): an extent that is not regular")
                return []
            }
            result.append([bytenr, diskBytes, offset, extent.length])
            end = key.offset + extent.length
        }
        if end < size { result.append([0, 0, 0, size - end]) }
        return result
    }

    static func repeated(_ byte: UInt8, blocks: Int) -> [UInt8] { [UInt8](repeating: byte, count: blocks * 4096) }
}

@Suite("btrfs reader: dissect.btrfs's images", .enabled(if: DissectBtrfs.available, "dissect.btrfs's test data not fetched (images/fetch-dissect-btrfs.sh)"))
struct BtrfsDissectTests {
    @Test("test_btrfs: label, uuid, the root's entries in readdir order, the test data, mode and times")
    func defaultImage() throws {
        let fs = try DissectBtrfs.open("default")
        #expect(fs.superBlock.label == "btrfs-default")
        #expect(fs.superBlock.uuidString == "74387226-fa97-4f42-a276-9bb07ce5e62d")
        #expect(try DissectBtrfs.names(fs, "/") == ["path", "link.txt", "small.txt", "large.txt"])
        try DissectBtrfs.expectTestData(fs)
        let path = try fs.metadata(of: try #require(try fs.lookup("path")))
        #expect(path.mode == 0o40755)
        // 2023-06-28 03:04:16 and 03:04:12 UTC, whole seconds as dissect compares them
        #expect(path.atime?.seconds == 1_687_921_456 && path.ctime?.seconds == 1_687_921_452 && path.mtime.seconds == 1_687_921_452)
        #expect(fs.dataChecksumTree != nil)
    }

    @Test("test_btrfs_subvolume: the subvolume's entries, files, an empty file, a symlink out of it")
    func subvolume() throws {
        let fs = try DissectBtrfs.open("subvolume")
        #expect(fs.superBlock.label == "btrfs-subvolume")
        #expect(fs.superBlock.uuidString == "74387226-fa97-4f42-a276-9bb07ce5e62d")
        #expect(try fs.subvolumes().map(\.path).contains("subvol"))
        #expect(try DissectBtrfs.names(fs, "subvol") == ["cross-volume-link.txt", "small.txt", "large.txt", "some"])
        try DissectBtrfs.expectTestData(fs)
        let empty = try fs.metadata(of: try #require(try fs.lookup("subvol/some/more/dirs/empty.txt")))
        #expect(empty.type == .regular && empty.size == 0)
        #expect(try DissectBtrfs.contents(fs, "subvol/some/more/dirs/empty.txt") == [])
        #expect(try DissectBtrfs.contents(fs, "subvol/small.txt") == Array("file in subvolume\n".utf8))
        #expect(try DissectBtrfs.contents(fs, "subvol/large.txt") == [UInt8](repeating: 0x62, count: 5_242_880) + [0x0A])
        let link = try fs.metadata(of: try #require(try fs.lookup("subvol/cross-volume-link.txt")))
        #expect(link.type == .symlink && link.symlinkTarget == Array("../link.txt".utf8))
        // The same tree seen as a mount of the subvolume (subvol=subvol).
        let view = try fs.view(.path("subvol"))
        #expect(try DissectBtrfs.contents(view, "small.txt") == Array("file in subvolume\n".utf8))
    }

    @Test("test_btrfs_subvolume_custom_default and _snapshot: label, uuid, the test data")
    func customDefaultAndSnapshot() throws {
        let custom = try DissectBtrfs.open("subvolume-custom-default")
        #expect(custom.superBlock.label == "btrfs-subvolume-custom-default")
        #expect(custom.superBlock.uuidString == "74387226-fa97-4f42-a276-9bb07ce5e62d")
        let snapshot = try DissectBtrfs.open("subvolume-snapshot")
        #expect(snapshot.superBlock.label == "btrfs-subvolume-snapshot")
        #expect(snapshot.superBlock.uuidString == "74387226-fa97-4f42-a276-9bb07ce5e62d")
        try DissectBtrfs.expectTestData(snapshot)
    }

    @Test("test_btrfs_subvolume_nested: four subvolumes with their paths; default/volume is 258")
    func nested() throws {
        let fs = try DissectBtrfs.open("subvolume-nested")
        #expect(fs.superBlock.label == "btrfs-subvolume-nested")
        #expect(fs.superBlock.uuidString == "983bda53-2928-4182-a53d-041eade66473")
        let list = try fs.subvolumes().map { "\($0.id) \($0.path)" }.sorted()
        #expect(list == ["256 dir/volume", "257 default", "258 default/volume", "5 "])
        #expect(try fs.view(.path("default/volume")).rootSubvolumeID == 258)
    }

    @Test("test_btrfs_compression: zlib, LZO and zstd files, inline ones, and zstd_lorem_ipsum.txt's SHA-256")
    func compression() throws {
        let fs = try DissectBtrfs.open("compression")
        func times(_ word: String, _ n: Int) -> [UInt8] { Array(String(repeating: word, count: n).utf8) + [0x0A] }
        for word in ["zlib", "lzo", "zstd"] {
            #expect(try DissectBtrfs.contents(fs, "\(word).txt") == times(word, 5 << 20), "\(word).txt")
            #expect(try DissectBtrfs.contents(fs, "\(word)_inline.txt") == times(word, 256), "\(word)_inline.txt")
        }
        var hash = SHA256()
        try DissectBtrfs.contents(fs, "zstd_lorem_ipsum.txt").withUnsafeBytes { hash.update($0) }
        let hex = hash.finalize().map { String(format: "%02x", $0) }.joined()
        #expect(hex == "ac9db55e11e804c58cb5ac8baded462cd3e7a570e4f3c980298ef2b417467b1d")
        // dissect counts 160, 120, 160 and 4 compressed extents: the same EXTENT_DATA items here.
        for (name, count, type) in [("zlib.txt", 160, 1), ("lzo.txt", 120, 2), ("zstd.txt", 160, 3), ("zstd_lorem_ipsum.txt", 4, 3)] {
            let inode = try #require(try fs.lookup(name))
            let (tree, object) = try fs.decode(inode)
            let items = try fs.trees.items(in: try fs.treeRoot(tree), objectID: object, type: .extentData)
            #expect(try items.filter { try $0.1.u8(at: 16) == UInt8(type) }.count == count, "\(name)")
        }
    }

    @Test("test_btrfs_profiles: every profile read with all its devices", arguments: DissectBtrfs.profiles)
    func profile(_ profile: String) throws {
        let members = DissectBtrfs.members(profile)
        #expect(members.count >= 2)
        let fs = try DissectBtrfs.open(members)
        #expect(fs.devices.count == members.count && fs.ignoredDevices.isEmpty)
        try DissectBtrfs.expectTestData(fs)
        // Any member may be the one opened.
        try DissectBtrfs.expectTestData(try DissectBtrfs.open(members.reversed()))
    }

    /// dissect drops the first device (the last for dup, whose chunks all sit on device 2):
    /// dup and raid0 then fail with "Missing stripe disk"; the mirrored profiles read as before;
    /// dissect asserts nothing for raid5/raid6, where this reader rebuilds the missing data
    /// stripes from P (RAID5's two devices, RAID6's three less one): the test data again.
    @Test("test_btrfs_profiles_partial: dup/raid0 name the missing device; the mirrors and raid5/6 (from parity) read", arguments: DissectBtrfs.profiles)
    func partial(_ profile: String) throws {
        var members = DissectBtrfs.members(profile)
        if profile == "dup" { members.removeLast() } else { members.removeFirst() }
        if profile == "dup" || profile == "raid0" {
            let missing = profile == "dup" ? "missing device 2 (devid)" : "missing device 1 (devid)"
            do {
                let fs = try DissectBtrfs.open(members)
                try DissectBtrfs.expectTestData(fs)
                Issue.record("\(profile) without a device read")
            } catch let error as FWError {
                #expect(error.message.contains(missing) && error.message.contains("chunk at logical"), "\(error)")
                #expect(error.description.contains(DissectBtrfs.path(members[0])), "\(error)")
            }
            return
        }
        let fs = try DissectBtrfs.open(members)
        try DissectBtrfs.expectTestData(fs)
        if profile == "raid5" || profile == "raid6" {
            // Some of large.txt's data stripes were on the missing device: rebuilt, and their
            // data checksums matched (a mismatch would be a warning of the file).
            let present = Set(fs.devices.map(\.id))
            var rebuilt = 0
            for extent in try DissectBtrfs.extents(fs, "large.txt") where extent[0] != 0 {
                for sector in stride(from: extent[0] + extent[2], to: extent[0] + extent[2] + extent[3], by: 4096) {
                    if try fs.trees.volume.chunks.locate(sector).copies.allSatisfy({ !present.contains($0.deviceID) }) { rebuilt += 1 }
                }
            }
            #expect(rebuilt > 0)
            let file = try fs.openFile(try #require(try fs.lookup("large.txt")))
            _ = try file.readPrefix(Int(file.size))
            #expect(file.warnings.isEmpty && fs.dataChecksumTree != nil)
        }
    }

    @Test("RAID6 over three devices, two missing: each row's data rebuilt from the P or the Q left, equal content", arguments: 1...3)
    func raid6TwoMissing(left: Int) throws {
        // One data stripe a row: P is a copy of it, and Q = g^0 · D is one too.
        let fs = try DissectBtrfs.open(["raid6-\(left)"])
        try DissectBtrfs.expectTestData(fs)
        let file = try fs.openFile(try #require(try fs.lookup("large.txt")))
        _ = try file.readPrefix(Int(file.size))
        #expect(file.warnings.isEmpty, "\(file.warnings)")
    }

    @Test("a device of another filesystem, or a device id given twice, is ignored with the reason")
    func foreignDevices() throws {
        let fs = try DissectBtrfs.open(["raid1-1", "default", "raid1-1", "raid1-2"])
        #expect(fs.devices.map(\.id) == [1, 2])
        let reasons = fs.ignoredDevices.map(\.reason)
        #expect(reasons.count == 2)
        #expect(reasons.contains { $0.contains("another btrfs filesystem") })
        #expect(reasons.contains { $0.contains("device id 1 is already read") })
        try DissectBtrfs.expectTestData(fs)
    }

    /// A member whose superblock is edited (its checksum made right again): another device uuid
    /// for its id is refused; another generation makes it a stale member, ignored.
    @Test("a member whose device uuid is not the chunk tree's is refused; one at another generation is ignored as stale")
    func doctoredMembers() throws {
        let first = try FileSource(path: DissectBtrfs.path("raid1-1"))
        let original = Array(try Data(contentsOf: URL(fileURLWithPath: DissectBtrfs.path("raid1-2"))))
        func edited(_ change: (inout [UInt8]) -> Void) -> MemorySource {
            var bytes = original
            for base in [0x10000, 0x400_0000] where base + 4096 <= bytes.count {
                var block = Array(bytes[base..<(base + 4096)])
                change(&block)
                let crc = CRC32C.checksum(Array(block[0x20...]))
                for i in 0..<4 { block[i] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(i))) }
                bytes.replaceSubrange(base..<(base + 4096), with: block)
            }
            return MemorySource(bytes)
        }
        let otherUUID = edited { $0[0x10b] ^= 0xFF }   // dev_item.uuid
        #expect {
            _ = try BtrfsReader(source: first, name: "raid1-1", devices: [BtrfsDevice(source: otherUUID, name: "doctored")])
        } throws: { error in
            let message = (error as? FWError)?.message ?? ""
            return message.contains("doctored says it is device 2") && message.contains("is not the chunk tree's")
        }
        let stale = edited { $0[0x48] &-= 1 }   // generation
        let fs = try BtrfsReader(source: first, name: "raid1-1", devices: [BtrfsDevice(source: stale, name: "stale")])
        #expect(fs.devices.map(\.id) == [1])
        #expect(fs.ignoredDevices.first?.reason.contains("(a stale member)") == true, "\(fs.ignoredDevices)")
        try DissectBtrfs.expectTestData(fs)   // RAID1: all of it on device 1
    }

    @Test("test_btrfs_sparse: contents and hole positions, a snapshot's partly rewritten files")
    func sparse() throws {
        let fs = try DissectBtrfs.open("sparse")
        let one = DissectBtrfs.repeated(1, blocks: 20), hole20 = DissectBtrfs.repeated(0, blocks: 20)
        let cases: [(String, UInt64, [[UInt64]], [UInt8])] = [
            ("sparse_start", 0x3C000, [[0, 0, 0, 40 * 4096], [0xD28000, 20 * 4096, 0, 20 * 4096]], hole20 + hole20 + one),
            ("sparse_hole", 0x3C000, [[0xD00000, 20 * 4096, 0, 20 * 4096], [0, 0, 0, 20 * 4096], [0xD14000, 20 * 4096, 0, 20 * 4096]],
             one + hole20 + one),
            ("sparse_end", 0x3C000, [[0xD3C000, 20 * 4096, 0, 20 * 4096], [0, 0, 0, 40 * 4096]], one + hole20 + hole20),
            ("sparse_all", 0x500000, [[0, 0, 0, 1280 * 4096]], DissectBtrfs.repeated(0, blocks: 1280)),
            ("snapshot/sparse_hole", 0x3C000,
             [[0xD00000, 20 * 4096, 0, 10 * 4096], [0xD50000, 4096, 0, 4096], [0, 0, 0, 39 * 4096], [0xD52000, 10 * 4096, 0, 10 * 4096]],
             DissectBtrfs.repeated(1, blocks: 10) + DissectBtrfs.repeated(0, blocks: 50)),
            ("snapshot/sparse_end", 0x3C000,
             [[0xD3C000, 20 * 4096, 0, 4096], [0xD5C000, 4096, 0, 4096], [0xD3C000, 20 * 4096, 2 * 4096, 18 * 4096], [0, 0, 0, 40 * 4096]],
             [UInt8](repeating: 1, count: 4096 + 123) + [2] + [UInt8](repeating: 1, count: 4096 * 19 - 124) + hole20 + hole20),
        ]
        for (path, size, extents, bytes) in cases {
            #expect(try fs.metadata(of: try #require(try fs.lookup(path))).size == size, "\(path)")
            #expect(try DissectBtrfs.extents(fs, path) == extents, "\(path)")
            #expect(try DissectBtrfs.contents(fs, path) == bytes, "\(path)")
        }
    }
}
