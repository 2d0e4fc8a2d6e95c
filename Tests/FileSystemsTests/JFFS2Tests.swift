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
        let text = try String(contentsOfFile: try TestImages.path(name), encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONDecoder().decode(ManifestEntry.self, from: Data($0.utf8)) }
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
