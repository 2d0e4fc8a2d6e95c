import DiskImage
import FileSystemJFFS2
import FileSystems
import Foundation
import Testing
import TestSupport

/// The images of images/disks/fs-jffs2.sh, made by mkfs.jffs2 (mtd-utils) from one source tree.
enum JFFS2Fixtures {
    static let compressors = ["none", "zlib", "rtime", "lzo"]
    /// Every image holding the source tree as it is.
    static let variants = compressors.flatMap { ["le-\($0)", "be-\($0)"] } + ["le-size", "le-nocm"]

    static func image(_ variant: String) throws -> String { try TestImages.path("fs-jffs2-\(variant).img") }

    static func open(_ variant: String) throws -> JFFS2Reader {
        let path = try image(variant)
        return try JFFS2Reader(source: try FileSource(path: path), name: path)
    }

    static func manifest(_ name: String) throws -> [ManifestEntry] {
        return try Manifest.load(name)
    }

    /// The source tree as JFFS2 stores it: times in whole seconds (compared with the
    /// nanoseconds ignored), the root without an inode node of its own (Linux shows a 0755
    /// directory with time 0), and device numbers in Linux's old 16-bit encoding, which
    /// mkfs.jffs2 writes for every device: 300:70000 keeps (300 << 8 | 70000) & 0xFFFF = 61:112.
    static func asStored(_ tree: [ManifestEntry]) -> [ManifestEntry] {
        tree.map { e in
            var e = e
            if e.path == "." { e.mtime = 0; e.perm = 0o755; e.uid = 0; e.gid = 0; e.xattrs = [:] }
            if let rdev = e.rdev, rdev.count == 2 {
                let old = (rdev[0] << 8 | rdev[1]) & 0xFFFF
                e.rdev = [old >> 8, old & 0xFF]
            }
            return e
        }
    }

    static func compare(_ reader: JFFS2Reader, with expected: [ManifestEntry]) throws {
        let (entries, problems) = try Manifest.of(reader)
        #expect(problems.isEmpty, "\(problems)")
        #expect(expected.count > 40)
        let diffs = Manifest.differences(expected: asStored(expected), actual: entries, ignoring: [.mtimeNanoseconds])
        #expect(diffs.isEmpty, "\(diffs.joined(separator: "\n"))")
    }
}

@Suite("JFFS2 reader")
struct JFFS2ReaderTests {
    @Test("mkfs.jffs2 images, both byte orders and every compressor, match the source tree", arguments: JFFS2Fixtures.variants)
    func matchesSource(variant: String) throws {
        let reader = try JFFS2Fixtures.open(variant)
        #expect(reader.endianness == (variant.hasPrefix("be") ? .big : .little))
        #expect(reader.skippedNodeCount == 0, "\(reader.skippedNodes)")
        try JFFS2Fixtures.compare(reader, with: try JFFS2Fixtures.manifest("fs-jffs2.manifest"))
    }

    @Test("xattrs: security.capability, trusted.overlay.opaque, user.* and a POSIX ACL converted to Linux's xattr form")
    func xattrs() throws {
        let reader = try JFFS2Fixtures.open("le-zlib")
        let fstab = try #require(reader.probeMetadata("/etc/fstab"))
        #expect(fstab.xattr("system.posix_acl_access")?.count == 4 + 5 * 8)   // user_obj, user:1000, group_obj, mask, other
        #expect(reader.probeMetadata("/usr/bin/ping")?.xattr("security.capability")?.count == 20)
        #expect(reader.probeMetadata("/srv/opaque")?.xattr("trusted.overlay.opaque") == Array("y".utf8))
    }

    @Test("nodes appended by mkfs.jffs2 -i: the newer dirents and inodes win")
    func appended() throws {
        let reader = try JFFS2Fixtures.open("le-append")
        #expect(reader.skippedNodeCount == 0, "\(reader.skippedNodes)")
        try JFFS2Fixtures.compare(reader, with: try JFFS2Fixtures.manifest("fs-jffs2-append.manifest"))
        let hostname = try #require(reader.probe("/etc/hostname"))
        #expect(try reader.readSmallFile(hostname) == Array("changed\n".utf8))
    }

    @Test("the magic table tells JFFS2 by its first node, in either byte order", arguments: ["le-zlib", "be-zlib", "le-nocm"])
    func detected(variant: String) throws {
        let head = try FileSource(path: try JFFS2Fixtures.image(variant)).bytes(at: 0, count: 4096)
        #expect(FileSystemKind.detect(head) == .jffs2)
    }

    @Test("a damaged data node is skipped (bad CRC), the rest reads; a truncated image reads what it holds")
    func damage() throws {
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: try JFFS2Fixtures.image("le-none"))))
        let target = Array("line 000000 of compressible".utf8)
        let at = try #require(bytes.indices.first { bytes[$0...].starts(with: target) })
        bytes[at] ^= 0xFF
        let reader = try JFFS2Reader(source: MemorySource(bytes), name: "damaged")
        #expect(reader.skippedNodeCount == 1)
        let (_, problems) = try Manifest.of(reader)
        #expect(problems.isEmpty, "\(problems)")
        let mixed = try #require(reader.probe("/usr/share/mixed.bin"))
        let first = try reader.openFile(mixed).readPrefix(4096)
        #expect(first == [UInt8](repeating: 0, count: 4096))   // no older version: a hole

        let cut = try JFFS2Reader(source: MemorySource(Array(bytes[..<(bytes.count / 2)])), name: "cut")
        _ = try Manifest.of(cut)
        #expect(throws: FWError.self) { try JFFS2Reader(source: MemorySource([UInt8](repeating: 0xFF, count: 65536)), name: "blank") }
    }
}

/// dissect.jffs's test data (images/fetch-dissect-jffs.sh, fetched by `make test`, never
/// committed): dumps made elsewhere, one of a real OpenWrt router's rootfs_data. Each check is an
/// assertion of dissect.jffs's own tests (tests/test_jffs2.py). Skipped when the data is absent.
@Suite("JFFS2 reader: dissect.jffs's dumps")
struct JFFS2DissectTests {
    static let directory = TestImages.repositoryRoot.appendingPathComponent(".build-dissect-jffs").path

    static func open(_ name: String) throws -> JFFS2Reader? {
        let path = directory + "/" + name
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        return try JFFS2Reader(source: try FileSource(path: path), name: path)
    }

    static func sha1(_ reader: JFFS2Reader, _ path: String) throws -> (Int, String) {
        let data = try reader.readSmallFile(try #require(try reader.lookup(path)), limit: 1 << 20)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("jffs2-sha1-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        try Data(data).write(to: URL(fileURLWithPath: file))
        let digest = try TestImages.run(["sha1sum", file])
        return (data.count, String(decoding: digest.prefix(40), as: UTF8.self))
    }

    @Test("uncompressed: root entries, times, contents, a symlink")
    func uncompressed() throws {
        guard let fs = try Self.open("jffs2.bin") else { return }
        #expect(try fs.directoryEntries(of: fs.rootInode).map { String(decoding: $0.name, as: UTF8.self) }.sorted() == ["foo", "test.txt"])
        let file = try #require(try fs.lookup("/test.txt"))
        let meta = try fs.metadata(of: file)
        #expect(meta.type == .regular && meta.linkCount == 1)
        // 2023-06-23 20:27:20 UTC
        #expect(meta.mtime.seconds == 1_687_552_040 && meta.atime?.seconds == 1_687_552_040 && meta.ctime?.seconds == 1_687_552_040)
        #expect(try fs.readSmallFile(file) == Array("contents\n".utf8))
        let link = try fs.metadata(of: try #require(try fs.lookup("/foo/bar/link.txt")))
        #expect(link.type == .symlink && link.symlinkTarget == Array("/test.txt".utf8))
    }

    @Test("zlib: a 103911-byte PNG with dissect.jffs's SHA-1, times")
    func zlib() throws {
        guard let fs = try Self.open("jffs2.zlib.bin") else { return }
        #expect(try fs.directoryEntries(of: fs.rootInode).map { String(decoding: $0.name, as: UTF8.self) }.sorted()
                == ["folder", "fox-banner.png", "link.txt", "readme.md"])
        let meta = try fs.metadata(of: try #require(try fs.lookup("/fox-banner.png")))
        #expect(meta.size == 103_911 && meta.mtime.seconds == 1_695_989_363)   // 2023-09-29 12:09:23 UTC
        let (count, digest) = try Self.sha1(fs, "/fox-banner.png")
        #expect(count == 103_911 && digest == "a0dc9f8d64cd34a96778984f3f13ca75cc99bbe4")
    }

    /// dissect.jffs's deletion dirent for fox-banner.png (ino 0, version 1, the version of the
    /// dirent it deletes) keeps the node CRC of the dirent it was made from: Linux skips such a
    /// node (bad node CRC), and so does the reader. With the node CRC made right, the later
    /// dirent of equal version wins, as jffs2_add_fd_to_list keeps the newcomer: the name goes.
    @Test("dissect.jffs's appended deletion dirent: skipped for its bad node CRC; with the CRC fixed, it removes the name")
    func deletion() throws {
        let path = Self.directory + "/jffs2.zlib.bin"
        guard FileManager.default.fileExists(atPath: path) else { return }
        let hex = "851901e036000000a4e155df01000000010000000000000073be16650e08000099e595847c15af55666f782d62616e6e65722e706e67"
        var tail = stride(from: 0, to: hex.count, by: 2).map { UInt8(hex.dropFirst($0).prefix(2), radix: 16) ?? 0 }
        let image = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        let asGiven = try JFFS2Reader(source: MemorySource(image + tail), name: "deleted")
        #expect(asGiven.skippedNodeCount == 1 && asGiven.skippedNodes.first?.contains("bad node CRC") == true)
        #expect(try asGiven.lookup("/fox-banner.png") != nil)
        let crc = CRC32.kernel(tail[0..<32], seed: 0)
        for i in 0..<4 { tail[32 + i] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(i))) }
        let fixed = try JFFS2Reader(source: MemorySource(image + tail), name: "deleted")
        #expect(fixed.skippedNodeCount == 0)
        #expect(try fixed.lookup("/fox-banner.png") == nil)
        #expect(try fixed.lookup("/readme.md") != nil)
    }

    @Test("an OpenWrt router's rootfs_data: a JPEG under upper/ with dissect.jffs's SHA-1")
    func router() throws {
        guard let fs = try Self.open("router.bin") else { return }
        #expect(fs.skippedNodeCount == 0, "\(fs.skippedNodes)")
        let (count, digest) = try Self.sha1(fs, "/upper/www/src/static/images/background.jpg")
        #expect(count == 45_469 && digest == "669b00be651d29e618befddbfecf9f9ee82b93f9")
        let (entries, problems) = try Manifest.of(fs)
        #expect(problems.isEmpty, "\(problems)")
        #expect(entries.count > 100)
    }
}
