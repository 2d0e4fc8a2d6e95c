import DiskImage
import FileSystems
import FileSystemSquashFS
import Foundation
import Testing
import TestSupport

/// The images of images/disks/fs-squashfs.sh: one per compressor and layout variant, all made by
/// mksquashfs from the same `make_tree` source whose manifest sits beside them.
let squashfsVariants = ["gzip", "gzip-w12", "lzo", "lz4", "xz", "lzma", "zstd", "frag", "nofrag", "nocomp"]

enum SquashFSFixtures {
    static func image(_ variant: String) throws -> String {
        try TestImages.path("fs-squashfs-\(variant).img")
    }

    static func open(_ variant: String) throws -> SquashFSReader {
        let path = try image(variant)
        return try SquashFSReader(source: try FileSource(path: path), name: path)
    }

    /// The source tree's manifest, written by the recipe with images/manifest.py.
    static func sourceManifest() throws -> [ManifestEntry] {
        return try Manifest.load("fs-squashfs.manifest")
    }
}

@Suite("SquashFS reader")
struct SquashFSReaderTests {
    @Test("every field matches the source tree (mtime in seconds)", arguments: squashfsVariants)
    func matchesSource(variant: String) throws {
        let reader = try SquashFSFixtures.open(variant)
        let (entries, problems) = try Manifest.of(reader)
        #expect(problems.isEmpty, "\(problems)")
        let expected = try SquashFSFixtures.sourceManifest()
        #expect(expected.count > 40)
        let diffs = Manifest.differences(expected: expected, actual: entries, ignoring: [.mtimeNanoseconds])
        #expect(diffs.isEmpty, "\(diffs.joined(separator: "\n"))")
    }

    @Test("the superblock's compressor and block size are reported", arguments: [
        ("gzip", "gzip", 131072), ("gzip-w12", "gzip", 4096), ("lzo", "lzo", 131072), ("lz4", "lz4", 131072),
        ("xz", "xz", 1 << 20), ("lzma", "lzma", 131072), ("zstd", "zstd", 131072), ("frag", "gzip", 4096),
    ])
    func superblock(variant: String, compressor: String, blockSize: Int) throws {
        let reader = try SquashFSFixtures.open(variant)
        #expect(reader.compression.name == compressor)
        #expect(Int(reader.blockSize) == blockSize)
        #expect(reader.formatName == "squashfs")
    }

    /// unsquashfs's own listing (written by the recipe): type and permission string, numeric
    /// owner, file size and symlink target of every path. Device numbers are left to the kernel
    /// check (unsquashfs 4.5.1 prints large minors with the old 8-bit split).
    @Test("owners, modes, sizes and link targets agree with unsquashfs -lln", arguments: squashfsVariants)
    func agreesWithUnsquashfs(variant: String) throws {
        let text = try String(contentsOfFile: try TestImages.path("fs-squashfs-\(variant).lln"), encoding: .utf8)
        let line = try Regex(#"^(\S{10}) (\d+)/(\d+) +(.+?) \d{4}-\d\d-\d\d \d\d:\d\d (.*)$"#)
        var listed: [String: (mode: String, uid: UInt32, gid: UInt32, size: String, target: String?)] = [:]
        for raw in text.split(separator: "\n") {
            let match = try #require(try line.wholeMatch(in: String(raw)), "unparsed line: \(raw)")
            let mode = String(try #require(match.output[1].substring))
            var path = String(try #require(match.output[5].substring))
            var target: String?
            if mode.hasPrefix("l"), let arrow = path.range(of: " -> ") {
                target = String(path[arrow.upperBound...])
                path = String(path[..<arrow.lowerBound])
            }
            path = path == "squashfs-root" ? "" : String(path.dropFirst("squashfs-root/".count))
            listed[path] = (mode, UInt32(match.output[2].substring ?? "") ?? .max, UInt32(match.output[3].substring ?? "") ?? .max,
                            String(match.output[4].substring ?? ""), target)
        }
        let reader = try SquashFSFixtures.open(variant)
        var walk = TreeWalk(reader)
        var seen = 0
        while let entry = walk.next() {
            let path = String(decoding: entry.path, as: UTF8.self)
            let want = try #require(listed[path], "unsquashfs does not list \(path)")
            let m = entry.metadata
            #expect(Self.modeString(m) == want.mode, "\(path)")
            #expect(m.uid == want.uid && m.gid == want.gid, "\(path)")
            if m.type == .regular || m.type == .symlink { #expect(String(m.size) == want.size, "\(path)") }
            if m.type == .symlink { #expect(m.symlinkTarget.map { String(decoding: $0, as: UTF8.self) } == want.target, "\(path)") }
            seen += 1
        }
        #expect(walk.problems.isEmpty)
        #expect(seen == listed.count)
    }

    static func modeString(_ m: Metadata) -> String {
        let kind: Character = switch m.type {
        case .regular: "-"; case .directory: "d"; case .symlink: "l"; case .characterDevice: "c"
        case .blockDevice: "b"; case .fifo: "p"; case .socket: "s"
        }
        let p = m.permissions
        func triple(_ shift: UInt16, special: UInt16, _ on: Character, _ off: Character) -> String {
            let r: Character = p >> shift & 4 != 0 ? "r" : "-"
            let w: Character = p >> shift & 2 != 0 ? "w" : "-"
            let x = p >> shift & 1 != 0
            let s = p & special != 0
            return String([r, w, s ? (x ? on : off) : (x ? "x" : "-")])
        }
        return String(kind) + triple(6, special: 0o4000, "s", "S") + triple(3, special: 0o2000, "s", "S") + triple(0, special: 0o1000, "t", "T")
    }

    /// The kernel's view of the same image, through a read-only loop mount (root only; the kernel
    /// has no legacy lzma support, so that variant is covered by the source and unsquashfs checks).
    @Test("equals the kernel's loop mount of the image", arguments: squashfsVariants.filter { $0 != "lzma" })
    func matchesKernel(variant: String) throws {
        guard TestImages.canLoopMount("squashfs") else { return }
        let image = try SquashFSFixtures.image(variant)
        let mountPoint = FileManager.default.temporaryDirectory.appendingPathComponent("fwa-sqfs-\(variant)-\(getpid())").path
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: mountPoint) }
        try TestImages.run(["mount", "-t", "squashfs", "-o", "loop,ro", image, mountPoint])
        defer { _ = try? TestImages.run(["umount", mountPoint]) }
        let kernel = try Manifest.ofDirectory(mountPoint)
        let (entries, problems) = try Manifest.of(SquashFSFixtures.open(variant))
        #expect(problems.isEmpty)
        let diffs = Manifest.differences(expected: kernel, actual: entries)
        #expect(diffs.isEmpty, "\(diffs.joined(separator: "\n"))")
    }

    @Test("hardlinks share one inode; lookup, devices and xattrs read back")
    func details() throws {
        let reader = try SquashFSFixtures.open("gzip")
        let busybox = try #require(try reader.lookup("/usr/bin/busybox"))
        #expect(try reader.lookup("/bin/sh") == busybox)
        #expect(try reader.lookup("usr/bin/ls") == busybox)
        #expect(try reader.metadata(of: busybox).linkCount == 3)
        let bigdev = try reader.metadata(of: #require(try reader.lookup("/dev/bigdev")))
        #expect(bigdev.device == DeviceNumber(major: 300, minor: 70000))
        let ping = try reader.metadata(of: #require(try reader.lookup("/usr/bin/ping")))
        #expect(ping.xattr("security.capability") == [0x01, 0, 0, 0x02, 0, 0x20] + [UInt8](repeating: 0, count: 14))
        #expect(try reader.lookup("/etc/missing") == nil)
        let fstab = try #require(try reader.lookup("/etc/fstab"))
        #expect(try reader.readSmallFile(fstab) == Array("# fstab\n".utf8))
        #expect(throws: FWError.self) { try reader.directoryEntries(of: fstab) }
        #expect(throws: FWError.self) { try reader.openFile(reader.rootInode) }
    }

    /// As in a partition: the image inside a larger disk, followed by unrelated bytes (squashfs
    /// partitions are padded, OpenWrt puts rootfs_data after the squashfs).
    @Test("an image at an offset in a larger source, with trailing bytes, reads the same")
    func embedded() throws {
        let image = [UInt8](try Data(contentsOf: URL(fileURLWithPath: SquashFSFixtures.image("lz4"))))
        let disk = MemorySource([UInt8](repeating: 0xEE, count: 1 << 20) + image + [UInt8](repeating: 0x5A, count: 300_000), name: "disk.img")
        let partition = try disk.slice(offset: 1 << 20, length: UInt64(image.count + 300_000), name: "disk.img partition 2")
        let reader = try SquashFSReader(source: partition, name: partition.name)
        let (entries, problems) = try Manifest.of(reader, readContents: false)
        #expect(problems.isEmpty)
        let (direct, _) = try Manifest.of(SquashFSFixtures.open("lz4"), readContents: false)
        #expect(Manifest.differences(expected: direct, actual: entries).isEmpty)
        let hostname = try #require(try reader.lookup("/etc/hostname"))
        #expect(try reader.readSmallFile(hostname) == Array("hello\n".utf8))
    }

    @Test("a sparse file streams as zeros around its data, in reads of any size")
    func sparse() throws {
        let reader = try SquashFSFixtures.open("gzip-w12")
        let file = try reader.openFile(#require(try reader.lookup("/var/sparse.img")))
        #expect(file.size == 1 << 30)
        var head = [UInt8](repeating: 0xFF, count: 7)
        let n = try head.withUnsafeMutableBytes { try file.read(into: $0) }
        #expect(n == 7)
        #expect(head == Array("start".utf8) + [0, 0])
    }
}
