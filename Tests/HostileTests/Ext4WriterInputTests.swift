import DiskImage
import Ext4Image
import FileSystemTar
import FileSystems
import Foundation
import TestSupport
import Testing

/// Issue 22, the ext4 writer on hostile input: link counts past ext4's limit, directories a tar
/// only implies. Images are checked by e2fsck -fn and read back with debugfs.
@Suite("Hostile tar input: Ext4ImageWriter")
struct Ext4WriterInputTests {
    /// An empty image of `blocks` 4 KiB blocks in a scratch folder, and the writer over it.
    static func writer(_ dir: String, blocks: UInt64 = 16384, inodes: UInt32 = 8192, maximumLinks: UInt16 = 65_000) throws -> (String, Ext4ImageWriter) {
        let image = dir + "/out.ext4"
        #expect(FileManager.default.createFile(atPath: image, contents: nil))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: image))
        try handle.truncate(atOffset: blocks * 4096)
        try handle.close()
        let geometry = Ext4ImageGeometry(blocks: blocks, inodes: inodes, uuid: Array(repeating: 7, count: 16),
                                         hashSeed: Array(repeating: 9, count: 16), timestamp: 1_700_000_000)
        return (image, try Ext4ImageWriter(path: image, geometry: geometry, maximumLinks: maximumLinks))
    }

    static func debugfs(_ image: String, _ request: String) throws -> String {
        String(decoding: try TestImages.run(["debugfs", "-R", request, image]), as: UTF8.self)
    }

    /// `links` hardlinks to one file, 500 per directory (so no directory grows large).
    static func linksTar(_ links: Int) throws -> String {
        try TarInputTests.tar("""
        entry("f", data=b"content\\n", mode=0o640, uid=1000)
        for i in range(\(links)):
            entry("l%d/h%d" % (i // 500, i), tarfile.LNKTYPE, link="f", mode=0o640, uid=1000)
        """)
    }

    /// Past the link limit (EMLINK in the kernel) a further path becomes a copy: a new inode with
    /// the same content and metadata, to which the following links go. No overflow of the 16-bit
    /// count, e2fsck finds nothing, and the copies are counted. The limit is lowered to 100 here
    /// (ext4's is 65,000: `realLinkLimit` below).
    @Test(.timeLimit(.minutes(1))) func linksPastTheLimitBecomeCopies() throws {
        let tar = try Self.linksTar(250)
        let dir = (tar as NSString).deletingLastPathComponent
        defer { TarInputTests.cleanup(tar) }
        let start = Date()
        let (image, writer) = try Self.writer(dir, maximumLinks: 100)
        let r = try TarInputTests.reader(tar)
        _ = try writer.add(tree: r, check: {})
        try writer.finish()
        #expect(Date().timeIntervalSince(start) < 10)
        // 1 + 250 paths: 100 on the file, then a copy with 100, then a copy with 51.
        #expect(writer.linkLimitCopies == 2 && writer.linkLimitPaths.count == 2)
        #expect(writer.hardlinks == 248)
        _ = try TestImages.run(["e2fsck", "-fn", image])
        #expect(try Self.debugfs(image, "stat /f").contains("Links: 100"))
        let copy = try Self.debugfs(image, "stat \(writer.linkLimitPaths[0])")
        #expect(copy.contains("Links: 100") && copy.contains("Mode:  0640") && copy.contains("User:  1000"), "\(copy)")
        #expect(try TestImages.run(["debugfs", "-R", "cat /l0/h249", image]) == Data("content\n".utf8))
        #expect(writer.inodesUsed > 0 && writer.inodesUsed < 8192)
    }

    /// The same through the walk of a namespace (`add(walk:)`, the booted disk's path), where a
    /// file with many links seen through two mounts overflowed the 16-bit count: two views of one
    /// directory of 150 links, limit 100.
    @Test func linksPastTheLimitFromAWalkBecomeCopies() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fwa-walk-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fs = MemoryFileSystem()
        let file = fs.addFile("/a/f", Array("walk\n".utf8))
        for i in 0..<149 { fs.addHardlink("/a/h\(i)", to: file) }
        for i in 0..<150 { fs.addHardlink("/b/h\(i)", to: file) }
        let (image, writer) = try Self.writer(dir, maximumLinks: 100)
        var walk = TreeWalk(fs)
        _ = try writer.add(walk: &walk, dropDevices: false, check: {})
        try writer.finish()
        // 300 paths: 100 + 100 + 100, two copies.
        #expect(writer.linkLimitCopies == 2 && writer.hardlinks == 297)
        _ = try TestImages.run(["e2fsck", "-fn", image])
        #expect(try TestImages.run(["debugfs", "-R", "cat /b/h149", image]) == Data("walk\n".utf8))
    }

    /// The real limit: 65,001 links to one file (its count overflowed 16 bits and trapped after
    /// about 60 s before).
    @Test(.timeLimit(.minutes(3))) func realLinkLimit() throws {
        let tar = try Self.linksTar(65_001)
        let dir = (tar as NSString).deletingLastPathComponent
        defer { TarInputTests.cleanup(tar) }
        let (image, writer) = try Self.writer(dir, blocks: 32768, inodes: 16384)
        _ = try writer.add(tree: try TarInputTests.reader(tar), check: {})
        try writer.finish()
        #expect(writer.linkLimitCopies == 1)
        _ = try TestImages.run(["e2fsck", "-fn", image])
        #expect(try Self.debugfs(image, "stat /f").contains("Links: 65000"))
    }

    /// The image's size from the disk's content: checked sums (a file may claim 2^64 - 1 bytes;
    /// `--padding` 8 EiB overflowed a multiplication and trapped), nil past ext4's 2^32 - 1 blocks.
    @Test func imageSizeIsCheckedArithmetic() {
        #expect(Ext4ImageGeometry.penguin(tarBytes: UInt64.max, padding: 1, entries: 0) == nil)
        #expect(Ext4ImageGeometry.penguin(tarBytes: UInt64.max - 100, padding: 0, entries: 0) == nil)
        let most = (Ext4ImageGeometry.maximumBlocks - 4096) * 4096
        #expect(Ext4ImageGeometry.penguin(tarBytes: most, padding: 0, entries: 0)?.blocks == Ext4ImageGeometry.maximumBlocks)
        #expect(Ext4ImageGeometry.penguin(tarBytes: most, padding: 1, entries: 0) == nil)
        #expect(Ext4ImageGeometry.penguin(tarBytes: 1024, padding: 16 << 20, entries: Int.max)?.inodes == UInt32.max - 1)
    }

    /// A tar holding only tmp/x, added over an image whose /tmp is 01777: /tmp keeps its mode and
    /// time; a directory the tar implies that is not there yet is made 0755 root, time 0.
    @Test func anImpliedDirectoryKeepsTheImagesMetadata() throws {
        let base = try TarInputTests.tar("""
        entry("tmp", tarfile.DIRTYPE, mode=0o1777, mtime=1600000000)
        """)
        let added = try TarInputTests.tar("""
        entry("tmp/x", data=b"x")
        entry("new/y", data=b"y")
        """)
        defer { TarInputTests.cleanup(base); TarInputTests.cleanup(added) }
        let (image, writer) = try Self.writer((base as NSString).deletingLastPathComponent)
        _ = try writer.add(tree: try TarInputTests.reader(base), check: {})
        _ = try writer.add(tree: try TarInputTests.reader(added), check: {})
        try writer.finish()
        _ = try TestImages.run(["e2fsck", "-fn", image])
        let tmp = try Self.debugfs(image, "stat /tmp")
        #expect(tmp.contains("Mode:  01777") && tmp.contains("0x5f5e1000"), "\(tmp)")
        let new = try Self.debugfs(image, "stat /new")
        #expect(new.contains("Mode:  0755") && new.contains("mtime: 0x00000000"), "\(new)")
    }
}
